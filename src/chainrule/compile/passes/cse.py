"""Common-subexpression elimination: equations that apply the same primitive to the same
Vars with equal params compute once; later duplicates read the first one's result.

Small constants with equal dtype, shape and bytes become one Var first (a folded 2.0 and
a traced 2.0 are then the same input), and the inputs of commutative primitives are
compared as a set, so ``a * b`` and ``b * a`` merge. Params compare by value
(``ir.param_key``: arrays by their bytes). Every primitive of the table is pure, so a
duplicate can always read the first result; a graph output keeps its own equation when
the first result is itself an output (two outputs never share one buffer).
"""
from __future__ import annotations

from ..ir import Eqn, Graph, Var, param_key
from ._rewrite import Subst

# maximum and minimum are not here: np.maximum(-0.0, 0.0) is 0.0, np.maximum(0.0, -0.0) -0.0
COMMUTATIVE = frozenset({"add", "mul", "eq", "ne", "logical_and", "logical_or"})
SMALL_CONST = 64  # elements: constants up to this size are unified by value


def cse(graph: Graph) -> Graph:
    """Merge duplicate equations and equal small constants."""
    subst = Subst(graph)
    consts: dict[tuple, Var] = {}
    seen: dict[tuple, Var] = {}
    eqns: list[Eqn] = []

    def canon(v: Var) -> Var:
        v = subst(v)
        c = v.const
        if c is None or c.size > SMALL_CONST:
            return v
        return consts.setdefault((c.dtype.str, c.shape, c.tobytes()), v)

    for e in graph.eqns:
        ins = tuple(canon(v) for v in e.ins)
        ids = tuple(v.id for v in ins)
        if e.prim.name in COMMUTATIVE:
            ids = tuple(sorted(ids))
        try:
            key = (id(e.prim), ids, param_key(e.params))
            first = seen.get(key)
        except TypeError:  # a param that cannot be compared by value: keep the equation
            key = first = None
        if first is not None and subst.replace(e.out, first):
            continue
        if key is not None and first is None:
            seen[key] = e.out
        eqns.append(e if all(a is b for a, b in zip(ins, e.ins))
                    else Eqn(e.prim, ins, e.params, e.out))
    return subst.graph(graph, eqns)
