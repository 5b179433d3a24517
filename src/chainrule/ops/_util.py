"""Small helpers shared by the op modules: constants, axes, shape rules."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..core.tensor import Tensor, _make


def const(value, like=None) -> Tensor:
    """Wrap non-tensor data; a Python scalar takes ``like``'s dtype where NumPy 2 would."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (int, float, bool)):
        return _make(np.asarray(value, dtype=backend.result_type(like.data, value)))
    return _make(backend.asarray(value))


def scalar(value, dtype) -> Tensor:
    return _make(np.asarray(value, dtype=dtype))


def norm_axis(axis, ndim: int, op: str = "op"):
    """Canonical axis param: None or a sorted tuple of non-negative ints."""
    if axis is None:
        return None
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
