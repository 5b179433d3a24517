"""Indexing by integer tensors: the index is an operand, not a parameter.

``getitem`` takes its index as a parameter (a fixed array), which is what basic and
mixed indexing need. Gathering by a tensor of indices that changes from call to call
(class targets, token ids) needs the index as an input of the op, so that ``jit`` can
trace it. Two pairs of linear rows, each the other's transpose:

* ``take(x, idx, axis)`` is ``np.take``: the slices of ``x`` along ``axis`` picked by
  ``idx`` (any shape). Its vjp is ``take_add`` (a scatter-add); with ``sparse`` along
  axis 0 it is a ``RowSparseGrad`` instead (embedding tables).
* ``take_along(x, idx, axis)`` is ``torch.gather`` (``np.take_along_axis``, where the
  index may be smaller than ``x`` in the other dims); its vjp is ``take_along_add``.

The integer operand gets no gradient. Repeated indices add up in the gradients.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..core.dispatch import bind, user_site
from ..core.primitive import defprim
from ..core.sparse import RowSparseGrad
from ..core.tensor import Tensor
from . import elementwise as ew
from . import movement as mv
from ._util import const, norm_axis
from .creation import arange


def _take_rule(x, idx, *, axis, sparse=False):
    return tuple(x.shape[:axis]) + tuple(idx.shape) + tuple(x.shape[axis + 1:]), x.dtype


def _take_vjp(g, out, x, idx, *, axis, sparse=False):
    if sparse and idx.data.__class__ is np.ndarray:  # only the touched rows
        rows = idx.data.reshape(-1)
        return RowSparseGrad(rows, mv.reshape(g, (rows.size,) + tuple(x.shape[1:])),
                             x.shape), None
    return take_add(g, idx, axis, x.shape), None


def _scatter(idx, axis, ndim_before):
    return (slice(None),) * ndim_before + (idx,)


def _take_add_impl(g, idx, *, axis, shape):
    out = np.zeros(shape, g.dtype)
    np.add.at(out, _scatter(idx, axis, axis), g)
    return out


P_take = defprim("take", lambda x, idx, *, axis, sparse=False: np.take(x, idx, axis=axis),
                 _take_rule, _take_vjp,
                 lambda t, out, x, idx, *, axis, sparse=False: take(t[0], idx, axis),
                 saves=(1,))

P_take_add = defprim(
    "take_add", _take_add_impl, lambda g, idx, *, axis, shape: (tuple(shape), g.dtype),
    lambda g, out, src, idx, *, axis, shape: (take(g, idx, axis), None),
    lambda t, out, src, idx, *, axis, shape: take_add(t[0], idx, axis, shape), saves=(1,))


def _grid(idx, axis) -> tuple:
    """The fancy index that picks ``x[..., idx, ...]`` element by element (idx may be
    smaller than x in the other dims, as torch.gather allows): ``np.ogrid``'s open grid,
    built directly (ogrid's generic code costs ~15 us a call)."""
    nd = idx.ndim
    return tuple(idx if k == axis else
                 np.arange(n).reshape((1,) * k + (n,) + (1,) * (nd - k - 1))
                 for k, n in enumerate(idx.shape))


def _along_add_impl(g, idx, *, axis, shape):
    out = np.zeros(shape, g.dtype)
    if idx.shape[axis] == 1:  # one index per line: no position repeats, so assign
        out[_grid(idx, axis)] = g
    else:
        np.add.at(out, _grid(idx, axis), g)
    return out


P_take_along = defprim(
    "take_along", lambda x, idx, *, axis: x[_grid(idx, axis)],
    lambda x, idx, *, axis: (tuple(idx.shape), x.dtype),
    lambda g, out, x, idx, *, axis: (take_along_add(g, idx, axis, x.shape), None),
    lambda t, out, x, idx, *, axis: take_along(t[0], idx, axis), saves=(1,))

P_take_along_add = defprim(
    "take_along_add", _along_add_impl,
    lambda g, idx, *, axis, shape: (tuple(shape), g.dtype),
    lambda g, out, src, idx, *, axis, shape: (take_along(g, idx, axis), None),
    lambda t, out, src, idx, *, axis, shape: take_along_add(t[0], idx, axis, shape),
    saves=(1,))


# ------------------------------------------------------------------ public

def _index(idx, op: str) -> Tensor:
    idx = idx if isinstance(idx, Tensor) else const(np.asarray(idx))
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer tensor, got {idx.dtype}, at "
                        f"{user_site()}")
    return idx if idx.dtype == backend.int64 else ew.cast(idx, backend.int64)


def _check_range(idx: Tensor, size: int, op: str) -> None:
    """Bounds check when the indices are known (they are not while jit traces)."""
    d = idx.data
    if d.__class__ is np.ndarray and d.size and (d.min() < -size or d.max() >= size):
        raise IndexError(f"{op}: index out of range: indices span [{d.min()}, {d.max()}] "
                         f"for a dimension of size {size}, at {user_site()}")


def take(x, idx, axis: int = 0, sparse: bool = False) -> Tensor:
    """``np.take``: slices of ``x`` along ``axis`` picked by the integer tensor ``idx``."""
    x = x if isinstance(x, Tensor) else const(x)
    idx = _index(idx, "take")
    axis = norm_axis(axis, x.ndim, "take")[0]
    _check_range(idx, x.shape[axis], "take")
    return bind(P_take, x, idx, axis=axis, sparse=bool(sparse) and axis == 0)


def take_add(src: Tensor, idx: Tensor, axis: int, shape) -> Tensor:
    """The transpose of ``take``: zeros of ``shape`` with ``src`` added at ``idx``."""
    return bind(P_take_add, src, idx, axis=axis, shape=tuple(shape))


def take_along(x, idx, axis: int) -> Tensor:
    """``np.take_along_axis`` (``torch.gather``): ``idx`` has ``x``'s number of dims."""
    x = x if isinstance(x, Tensor) else const(x)
    idx = _index(idx, "gather")
    axis = norm_axis(axis, x.ndim, "gather")[0]
    if idx.ndim != x.ndim:
        raise ValueError(f"gather: index has {idx.ndim} dims but input has {x.ndim}, at "
                         f"{user_site()}")
    _check_range(idx, x.shape[axis], "gather")
    return bind(P_take_along, x, idx, axis=axis)


def take_along_add(src: Tensor, idx: Tensor, axis: int, shape) -> Tensor:
    """The transpose of ``take_along``: zeros of ``shape`` with ``src`` added at ``idx``."""
    return bind(P_take_along_add, src, idx, axis=axis, shape=tuple(shape))


def gather(x, dim, index) -> Tensor:
    """``out[i][j] = x[index[i][j]][j]`` for dim 0 (and so on), as ``torch.gather``."""
    return take_along(x, index, dim)


take_along_dim = gather


def one_hot(index, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding with a new last dimension (not differentiable). With
    ``num_classes=-1`` the count is read from the data (not possible under jit)."""
    idx = _index(index, "one_hot")
    if num_classes == -1:
        d = idx.data
        if d.__class__ is not np.ndarray:
            raise TypeError(f"one_hot: pass num_classes under jit (the largest class is "
                            f"not known while tracing), at {user_site()}")
        num_classes = int(d.max()) + 1 if d.size else 0
    n = int(num_classes)
    d = idx.data
    if d.__class__ is np.ndarray and d.size and (d.min() < 0 or d.max() >= n):
        raise ValueError(f"one_hot: class values must be in [0, {n}), got range "
                         f"[{d.min()}, {d.max()}], at {user_site()}")
    return ew.cast(ew.eq(mv.unsqueeze(idx, -1), arange(n)), backend.int64)
