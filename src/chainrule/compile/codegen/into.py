"""Registered primitives that can write their result into a given array.

``impl_into(out, *arrays, **params)`` computes what ``impl`` computes, into ``out`` (an
array of the equation's shape and dtype), and returns it. For the ufunc-based
primitives the table holds the ufunc itself, which the executor calls as
``ufunc(*arrays, out=out)`` (one Python call less per equation). The buffer plan
(``passes/plan.py``) gives such equations a reusable buffer; the executor looks the
function up here (a fused group carries its own ``impl_into``).

``FRESH`` names the primitives whose result never shares memory with an input: the plan
treats every other primitive (the views, and anything it does not know) as possibly
returning a view that keeps its inputs' memory in use.
"""
from __future__ import annotations

import numpy as np

from ...core.primitive import PRIMITIVES
from ...ops.linalg import by_columns
from ...ops.reduce import add_reduce
from . import OPS
from .numpy_target import INTO as _NUMPY_INTO, UFUNCS


def _reduce(u):
    def into(out, x, *, axis, keepdims):
        return u.reduce(x, axis=axis, keepdims=keepdims, out=out)
    return into


def _matmul(out, a, b):
    return np.matmul(a, b, out=out)


def _linear(out, x, w, *b):
    if by_columns(x.shape[0], w.shape[0]):  # out is F-ordered, as eager's (passes/order.py)
        np.matmul(w, x.T, out=out.T)
    else:
        np.matmul(x, w.T, out=out)
    return np.add(out, b[0], out=out) if b else out


INTO = {
    **UFUNCS,
    **_NUMPY_INTO,
    "matmul": _matmul,
    "linear": _linear,
    "sum": lambda out, x, *, axis, keepdims: add_reduce(x, axis, keepdims, out),
    "prod": _reduce(np.multiply),
    "amax": _reduce(np.maximum),
    "amin": _reduce(np.minimum),
}

# elementwise with no broadcasting: an operand of the result's shape and dtype that
# dies here may share the result's buffer (ufuncs read each element before writing it)
IN_PLACE = frozenset(UFUNCS) | {"relu"}

FRESH = frozenset(OPS) | {"matmul", "linear", "sum", "prod", "amax", "amin", "argmax", "argmin",
                          "cumsum", "softmax", "log_softmax", "logsumexp", "cat", "pad",
                          "take", "take_add", "take_along", "take_along_add", "index_add",
                          "index_put", "col2im"}


def registered(prim) -> bool:
    """A row of the primitive table (not a custom function's primitive of that name)."""
    return PRIMITIVES.get(prim.name) is prim


def impl_into(e):
    """The function that writes equation ``e``'s result into a given array, or None."""
    f = getattr(e.prim, "impl_into", None)
    if f is not None:
        return f
    if not registered(e.prim):
        return None
    if e.prim.name == "matmul" and min(len(v.shape) for v in e.ins) < 2:
        return None  # vector products: NumPy's out= wants the exact result rank
    return INTO.get(e.prim.name)


def fresh(e) -> bool:
    """Whether ``e``'s result surely owns its memory (never a view of an input)."""
    return hasattr(e.prim, "outs") or (registered(e.prim) and e.prim.name in FRESH)
