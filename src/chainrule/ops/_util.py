"""Small helpers shared by the op modules: constants, axes, shape rules."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..core.tensor import Tensor, _make


def const(value, like=None) -> Tensor:
    """Wrap non-tensor data; a Python scalar takes ``like``'s dtype where NumPy 2 would
    (Python scalars are weak: ``float32_tensor * 2.5`` stays float32)."""
    if isinstance(value, Tensor):
        return value
    cls = value.__class__
    if like is not None and (cls is float or cls is int or cls is bool):
        dt = like.data.dtype
        kind = dt.kind
        weak = kind == "f" or (kind in "iu" and cls is not float) or (kind == "b" and cls is bool)
        if not weak:
            dt = backend.result_type(like.data.dtype, value)
        return scalar(value, dt)
    return _make(backend.asarray(value))


_SCALARS: dict = {}


def scalar(value, dtype) -> Tensor:
    """A read-only 0-d constant, cached: rules and scalar operands reuse the same ones."""
    key = (value, dtype)
    t = _SCALARS.get(key)
    if t is None:
        arr = np.asarray(value, dtype=dtype)
        arr.flags.writeable = False
        t = _make(arr)
        if len(_SCALARS) < 4096:
            _SCALARS[key] = t
    return t


_BATCH: dict = {}


def per_batch(kind: str, n: int, dtype):
    """A read-only vector of length ``n`` made once (at most 64 kept): constants that the
    kernels of one batch size use at every call: ``"ones"`` (a bias gradient's gemv) or
    ``"rows"`` (``arange``: a row index for class targets)."""
    key = (kind, n, dtype)
    a = _BATCH.get(key)
    if a is None:
        if len(_BATCH) >= 64:  # (batch sizes seen: a few per run)
            _BATCH.clear()
        a = _BATCH[key] = np.ones(n, dtype) if kind == "ones" else np.arange(n, dtype=dtype)
        a.flags.writeable = False
    return a


def norm_axis(axis, ndim: int, op: str = "op"):
    """Canonical axis param: None or a sorted tuple of non-negative ints."""
    if axis is None:
        return None
    if axis.__class__ is int and 0 <= axis < ndim:
        return (axis,)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise IndexError(f"{op}: dimension {a} is out of range for a tensor with "
                             f"{ndim} dimensions")
        out.append(a % max(ndim, 1))
    if ndim == 0:
        return ()
    return tuple(sorted(set(out)))


def broadcast_rule(op_impl):
    """Shape rule for elementwise primitives: NumPy broadcasting, dtype from the impl."""

    def rule(*avals, **params):
        shape = np.broadcast_shapes(*[a.shape for a in avals])
        dtype = op_impl(*[np.ones(1, a.dtype) for a in avals], **params).dtype
        return shape, dtype

    return rule


def reduced_shape(shape, axis, keepdims):
    if axis is None:
        axis = tuple(range(len(shape)))
    if keepdims:
        return tuple(1 if i in axis else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axis)
