"""In-place ops: they write into the tensor's buffer (views see the change) and bump
its version counter, so backward can detect a saved value that changed."""
from __future__ import annotations

import numpy as np

from ..core import dispatch
from ..core.tensor import Tensor, _make
from . import elementwise as ew
from . import movement as mv
from ._util import const

_UFUNCS = {ew.add: np.add, ew.sub: np.subtract, ew.mul: np.multiply, ew.div: np.true_divide}


def _bump(x: Tensor, name: str) -> None:
    cell = x._version
    cell[0] += 1
    cell[1] = (name, dispatch.user_frame())  # formatted only if an error needs it


def _records(x, other) -> bool:
    return dispatch._grad_enabled and (
        x.requires_grad or (isinstance(other, Tensor) and other.requires_grad))


def _check_target(x: Tensor, name: str) -> None:
    if x._node is None and x.requires_grad:
        raise RuntimeError(f"{name}: a leaf tensor that requires grad is being used in an "
                           f"in-place operation (shape {tuple(x.shape)}); wrap the update "
                           f"in `with chainrule.no_grad():`, at {dispatch.user_site()}")
    if x._base is not None and x._base.requires_grad:
        raise RuntimeError(f"{name}: in-place change of a view of a tensor that requires "
                           f"grad is not supported; use an out-of-place op, at "
                           f"{dispatch.user_site()}")


def _write(x: Tensor, res: Tensor, name: str) -> None:
    if res.shape != x.shape:
        raise RuntimeError(f"{name}: result of shape {tuple(res.shape)} cannot be written "
                           f"in place into a tensor of shape {tuple(x.shape)}, at "
                           f"{dispatch.user_site()}")
    if not np.can_cast(res.dtype, x.dtype, "same_kind"):
        raise TypeError(f"{name}: result type {res.dtype} can't be cast to the in-place "
                        f"tensor's dtype {x.dtype}, at {dispatch.user_site()}")
    np.copyto(x.data, res.data, casting="same_kind")


def inplace(x: Tensor, fn, other, name: str) -> Tensor:
    """Compute ``fn(x, other)`` and store it in ``x``'s own buffer."""
    if _records(x, other):
        _check_target(x, name)
        old = _make(x.data.copy(), x._node)  # the old value, for the new node to save
        old.requires_grad = x.requires_grad
        res = fn(old, other)
        _write(x, res, name)
        x._node = res._node
        x.requires_grad = res.requires_grad
        x._version[2] += 1  # views taken before now hang off the old node: stale
    else:
        ufunc = _UFUNCS.get(fn)
        if ufunc is not None and not dispatch._interpreters:
            o = other.data if isinstance(other, Tensor) else other
            try:
                ufunc(x.data, o, out=x.data, casting="same_kind")
            except (TypeError, ValueError) as exc:
                raise dispatch.error_kind(exc)(
                    f"{name}: {exc} (tensor {tuple(x.shape)} {x.dtype}), at "
                    f"{dispatch.user_site()}") from None
        else:
            _write(x, fn(x, other), name)
    _bump(x, name)
    return x


def setitem_(x: Tensor, index, value) -> None:
    """``x[index] = value``."""
    if _records(x, value):
        inplace(x, lambda a, v: mv.index_put(a, v, index), value, "setitem")
        return
    v = value.data if isinstance(value, Tensor) else value
    try:
        x.data[mv.norm_index(index)] = v
    except (ValueError, IndexError, TypeError) as exc:
        raise dispatch.error_kind(exc)(f"setitem: {exc} (tensor {tuple(x.shape)} {x.dtype}), at "
                        f"{dispatch.user_site()}") from None
    _bump(x, "setitem")


def fill_(x: Tensor, value) -> Tensor:
    """Set every element to ``value`` (its gradient to x is zero)."""
    if _records(x, value):
        return inplace(x, lambda a, v: mv.masked_fill(a, True, v), value, "fill_")
    x.data.fill(value.item() if isinstance(value, Tensor) else value)
    _bump(x, "fill_")
    return x


def clone(x) -> Tensor:
    """A copy with its own buffer; gradients flow through unchanged."""
    x = x if isinstance(x, Tensor) else const(x)
    if x.dtype.kind == "b":
        return _make(x.data.copy())
    return ew.mul(x, 1)
