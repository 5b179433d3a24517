"""Memory order: which values eager would hold F-ordered, so the compiled graph does too.

Eager ``linear`` computes wide products as ``(w @ x.T).T`` (``ops.linalg.by_columns``):
F-ordered results, faster on OpenBLAS. NumPy keeps its inputs' order through elementwise
ops, so the activations after such a layer stay F-ordered, and so do their gradients. A
reduction rounds differently over an F-ordered array than over a C-ordered one (NumPy
sums along memory), so a compiled step that made C-ordered buffers where eager had F
ones would lose the bit-for-bit match with eager (the bias gradient, BatchNorm's
statistics). This pass predicts each value's order as eager makes it; ``Program`` then
views F-ordered buffers for those values, and fused kernels run over the transposed
arrays (``FusedGroup`` picks its transposed kernel for F-ordered outputs).

The rules, per equation:

* ``linear``: F when ``by_columns`` picks the transposed product;
* a 2-D ``transpose``: the other order of its input;
* elementwise ops and fused groups (member by member): F when every operand of the
  result's full shape is F-ordered (operands read through a broadcast do not vote), as
  NumPy's ufuncs allocate; C when they disagree (NumPy: "C wins");
* ``broadcast_to``: no order (a stride-0 view votes in no elementwise op);
* everything else (matmul, reductions, reshapes, indexing): C.

Graph inputs take the order of the arrays the first compiling call passed
(``meta["input_orders"]``, set by ``jit``); constants their own. ``meta["orders"]``
gets {Var id: "F"} for the values predicted F-ordered (all others are C). A wrong
prediction costs only the bitwise match, never a value: every kernel is correct for
either order.
"""
from __future__ import annotations

import numpy as np

from ...core.primitive import PRIMITIVES
from ...ops.linalg import by_columns
from ..codegen import OPS, eqn_outs
from ..ir import Eqn, Graph

__all__ = ["order", "array_order"]

_NONE = "-"  # a value with no order of its own (a broadcast view)


def array_order(a: np.ndarray) -> str:
    """"F" for an F-ordered array of at least 2 axes that is not also C-ordered, a
    broadcast (stride-0) view has none, else "C"."""
    if a.ndim >= 2 and 0 in a.strides and a.size > 1:
        return _NONE
    return "F" if a.ndim >= 2 and a.flags.f_contiguous and not a.flags.c_contiguous else "C"


def _elementwise(shape: tuple, operands: list) -> str:
    """NumPy's choice for a new elementwise result of ``shape``: [(shape, order)]."""
    if len(shape) < 2 or 1 in shape:
        return "C"  # (both at once, or no choice to make)
    votes = {o for s, o in operands if tuple(s) == tuple(shape) and o != _NONE}
    return "F" if votes == {"F"} else "C"


def order(graph: Graph) -> Graph:
    """Predict each value's memory order (see the module docstring)."""
    orders: dict = dict(graph.meta.get("input_orders", {}))

    def of(v) -> str:
        if v.const is not None:
            return array_order(v.const)
        return orders.get(v.id, "C")

    eqns = []
    for e in graph.eqns:
        eqns.append(e)
        name = e.prim.name
        members = getattr(e.prim, "members", None)
        if members is not None:  # a fused group: its members in order
            inner = {v.id: of(v) for v in e.ins}  # (the group's inputs)
            for m in members:
                src = [e.prim.operand.get(v.id, v) for v in m.ins]
                inner[m.out.id] = _elementwise(
                    m.out.shape, [(v.shape, inner.get(v.id) or of(v)) for v in src])
            outs = {inner[v.id] for v in e.prim.outs}
            got = outs.pop() if len(outs) == 1 else "C"  # mixed: all C (values still right)
            for v in e.prim.outs:
                orders[v.id] = got
            if got == "F":  # the group then writes (and allocates) F-ordered outputs
                eqns[-1] = Eqn(e.prim.transposed(), e.ins, e.params, e.out)
            continue
        if PRIMITIVES.get(name) is not e.prim:
            got = "C"  # a custom function's primitive
        elif name == "linear":
            x, w = e.ins[0], e.ins[1]
            got = "F" if by_columns(x.shape[0], w.shape[0]) else "C"
        elif name == "transpose" and len(e.out.shape) == 2:
            got = {"F": "C", "C": "F"}.get(of(e.ins[0]), "C")
        elif name == "broadcast_to":
            got = _NONE
        elif name in OPS:
            got = _elementwise(e.out.shape, [(v.shape, of(v)) for v in e.ins])
        else:
            got = "C"
        for o in eqn_outs(e):
            orders[o.id] = got
    return graph.replace(eqns=eqns, meta={
        **graph.meta, "orders": {k: v for k, v in orders.items() if v == "F"}})
