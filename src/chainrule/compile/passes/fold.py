"""Constant folding: an equation whose inputs are all known at compile time is computed
once, here, with its primitive's impl.

Graph inputs are never constant; constants are Vars with ``.const``. A value that is one
number everywhere (a ``broadcast_to`` of a scalar, or any uniform result) is kept small:
it stays a ``broadcast_to`` of a 0-d constant, NumPy's zero-stride view at run time,
instead of a full array in memory (``simplify`` then drops the broadcast where an
elementwise op broadcasts by itself). Elementwise ops of such values are computed on the
small arrays and broadcast afterwards. Results above ``FOLD_LIMIT`` elements are left to
run time. Only primitives of the table are folded (all pure); fused groups and custom
functions are not.
"""
from __future__ import annotations

import numpy as np

from ...core.primitive import PRIMITIVES
from ..ir import Eqn, Graph, constant
from ._rewrite import ELEMENTWISE, Subst, compact, registered

FOLD_LIMIT = 1 << 20   # elements of a folded result kept as a constant
READ_LIMIT = 1 << 24   # elements a non-elementwise impl may read at compile time


def _evaluate(e: Eqn, vals: list) -> np.ndarray | None:
    """The compacted value of ``e`` from its inputs' compacted values, or None."""
    name = e.prim.name
    with np.errstate(all="ignore"):
        try:
            if name == "broadcast_to":
                r = vals[0]
            elif name in ELEMENTWISE:
                r = e.prim.impl(*vals, **e.params)
            else:
                if sum(int(np.prod(v.shape)) for v in e.ins) > READ_LIMIT:
                    return None
                full = [np.broadcast_to(c, v.shape) for c, v in zip(vals, e.ins)]
                r = e.prim.impl(*full, **e.params)
        except Exception:  # noqa: BLE001 -- left to run time, where errors name the op
            return None
    r = compact(np.asarray(r))
    if r.dtype != e.out.dtype or r.size > FOLD_LIMIT or r.ndim > len(e.out.shape):
        return None
    try:
        if np.broadcast_shapes(r.shape, e.out.shape) != e.out.shape:
            return None
    except ValueError:
        return None
    return r


def fold(graph: Graph) -> Graph:
    """Replace equations computable at compile time by constants (or broadcasts of
    0-d constants); graph outputs keep an equation, so each call returns a fresh array."""
    subst = Subst(graph)
    known: dict[int, np.ndarray] = {}  # Var id -> compacted value, for splats and consts
    bcast = PRIMITIVES["broadcast_to"]
    eqns: list[Eqn] = []

    def value(v):
        if v.id not in known and v.const is not None:
            known[v.id] = compact(v.const)
        return known.get(v.id)

    for e in graph.eqns:
        e = subst.eqn(e)
        vals = [value(v) for v in e.ins]
        r = (_evaluate(e, vals) if registered(e.prim) and all(x is not None for x in vals)
             else None)
        if r is None:
            eqns.append(e)
            continue
        known[e.out.id] = r
        if r.size == int(np.prod(e.out.shape)):
            if subst.replace(e.out, constant(r.reshape(e.out.shape))):
                continue
        elif (e.out.id not in subst.outputs
              and not (e.prim is bcast and e.ins[0].const is not None
                       and e.ins[0].const.shape == r.shape)):
            e = Eqn(bcast, (constant(r),), {"shape": e.out.shape}, e.out)
        eqns.append(e)
        subst.defined(e)
    return subst.graph(graph, eqns)
