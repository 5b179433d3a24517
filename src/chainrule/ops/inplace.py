"""In-place ops: they write into the tensor's buffer (views see the change) and bump
its version counter, so backward can detect a saved value that changed."""
from __future__ import annotations

import sys

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


def _records_grad(x, other) -> bool:
    return dispatch._mode.grad and (
        x.requires_grad or (isinstance(other, Tensor) and other.requires_grad))


def _records(x, other) -> bool:
    """Whether the op must go the functional way: to record it on the tape, or because an
    interpreter (forward mode, jit) must see it as ops."""
    return _records_grad(x, other) or bool(dispatch._interpreters)


def _check_target(x: Tensor, name: str) -> None:
    if x._node is None and x.requires_grad:
        raise RuntimeError(f"{name}: a leaf tensor that requires grad is being used in an "
                           f"in-place operation (shape {tuple(x.shape)}); wrap the update "
                           f"in `with chainrule.no_grad():`, at {dispatch.user_site()}")


def _replay(base: Tensor, steps) -> Tensor:
    """The view that ``steps`` take of ``base``, recorded like any op."""
    for prim, params in steps:
        base = dispatch.bind(prim, base, **params)
    return base


def _put(base: Tensor, steps, value: Tensor) -> Tensor:
    """``base`` with the part that ``steps`` view replaced by ``value`` (functional)."""
    if not steps:
        return value
    (prim, params), rest = steps[0], steps[1:]
    value = _put(dispatch.bind(prim, base, **params), rest, value)
    if prim is mv.P_getitem:
        return mv.index_put(base, value, params["index"])
    if prim is mv.P_reshape:
        return mv.reshape(value, base.shape)
    if prim is mv.P_transpose:
        return mv.permute(value, tuple(np.argsort(params["axes"])))
    raise RuntimeError(f"in-place change of a '{prim.name}' view is not supported")


def _check_result(x: Tensor, res: Tensor, name: str) -> None:
    if res.shape != x.shape:
        raise RuntimeError(f"{name}: result of shape {tuple(res.shape)} cannot be written "
                           f"in place into a tensor of shape {tuple(x.shape)}, at "
                           f"{dispatch.user_site()}")
    if not np.can_cast(res.dtype, x.dtype, "same_kind"):
        raise TypeError(f"{name}: result type {res.dtype} can't be cast to the in-place "
                        f"tensor's dtype {x.dtype}, at {dispatch.user_site()}")


def _inplace_recorded(x: Tensor, fn, other, name: str) -> None:
    """An in-place op computed functionally: while recording, or because interpreters
    (forward mode, jit) must see it as ops. The new value is computed from a copy of the
    old one (which the new node may save) and written into the buffer. While recording,
    the tensor is rebased onto its node; on a view, the base is rebased onto a node that
    writes the view's new values into it, and the view onto a view of that node, as
    PyTorch does."""
    base, steps = (x._base, x._view_steps) if x._base is not None else (x, ())
    recording = _records_grad(x, other)
    if recording:
        _check_target(base, name)
    if dispatch._interpreters:  # a copy made by an op, so interpreters see it
        old = clone(base)
    else:  # the base's old value, with its history
        old = _make(base.data.copy(), base._node)
        old.requires_grad = base.requires_grad
    res = fn(_replay(old, steps), other)
    _check_result(x, res, name)
    new_base = _put(old, steps, ew.cast(res, x.dtype))
    if new_base.data.__class__ is np.ndarray:  # (under jit, _moved rebinds the tracer)
        np.copyto(base.data, new_base.data)
    if recording:
        base._node, base.requires_grad = new_base._node, new_base.requires_grad
        base._version[2] += 1  # views taken before now get rebased when next used
    _moved(base, new_base)
    if steps:
        view = _replay(new_base, steps)
        if recording:
            x._node, x.requires_grad = view._node, view.requires_grad
            x._view_epoch = base._version[2]
        _moved(x, view)


def _moved(x: Tensor, new: Tensor) -> None:
    """Tell the active interpreters (forward mode) that ``x`` now holds ``new``'s value."""
    for interp in dispatch._interpreters:
        interp.inplace(x, new)


def inplace(x: Tensor, fn, other, name: str) -> Tensor:
    """Compute ``fn(x, other)`` and store it in ``x``'s own buffer."""
    if _records(x, other):
        _inplace_recorded(x, fn, other, name)
    else:
        ufunc = _UFUNCS.get(fn)
        if ufunc is not None:
            o = other.data if isinstance(other, Tensor) else other
            try:
                ufunc(x.data, o, out=x.data, casting="same_kind")
            except (TypeError, ValueError) as exc:
                raise dispatch.error_kind(exc)(
                    f"{name}: {exc} (tensor {tuple(x.shape)} {x.dtype}), at "
                    f"{dispatch.user_site()}") from None
        else:
            res = fn(x, other)
            _check_result(x, res, name)
            np.copyto(x.data, res.data, casting="same_kind")
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


# ------------------------------------------------------------------ buffer takeover
# Writing a freshly computed array into a tensor's buffer costs a copy. When no one but
# the tensor sees its buffer and no one but the writer holds the new array, the tensor
# can take the new array instead: no one can tell the difference. Reference counts
# decide, as they do for NumPy's own elision of temporaries; each count that means
# "private" is measured once here through the same expressions the checks use.
def _private_counts() -> tuple[int, int]:
    if not hasattr(sys, "getrefcount"):  # not CPython: never take over, always copy
        return -1, -1
    items, t = [object()], _make(np.zeros(1))
    return sys.getrefcount(items[0]), sys.getrefcount(t.data)


_PRIVATE_ITEM, _PRIVATE_DATA = _private_counts()  # held by its list / its tensor alone


def held_by_list_alone(items, i: int) -> bool:
    """Whether ``items[i]`` is referenced by the list ``items`` and nothing else."""
    return _PRIVATE_ITEM > 0 and sys.getrefcount(items[i]) == _PRIVATE_ITEM


def held_by_tensor_alone(t: Tensor) -> bool:
    """Whether ``t``'s array is referenced by ``t`` and nothing else (no alias, no NumPy
    view, no other tensor)."""
    return _PRIVATE_DATA > 0 and sys.getrefcount(t.data) == _PRIVATE_DATA


def private(t: Tensor) -> bool:
    """Whether ``t``'s buffer is its own writeable memory (no base, not a view tensor)
    that nothing but ``t`` sees: then it may be replaced or written in place of a copy."""
    a = t.data
    ok = a.__class__ is np.ndarray and a.base is None and t._base is None and \
        a.flags.writeable
    del a
    return ok and held_by_tensor_alone(t)


def adopt(t: Tensor, arr: np.ndarray) -> np.ndarray | None:
    """Make the private array ``arr`` the buffer of ``t`` in place of a copy, when ``t``'s
    own buffer is private too and both have one layout (dtype, shape, strides, owned
    memory); returns the buffer ``t`` had, or None if it must copy. The version counter
    is the caller's to bump, as after a copy."""
    a = t.data
    if not (a.__class__ is arr.__class__ is np.ndarray and arr.base is None
            and arr.flags.writeable and a.dtype == arr.dtype and a.shape == arr.shape
            and a.strides == arr.strides):
        return None
    del a
    if not private(t):
        return None
    old, t.data = t.data, arr
    return old
