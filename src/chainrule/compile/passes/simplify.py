"""Algebraic simplification: a table of pattern rows (see ``_rewrite`` for the notation).

Every row is exact: the rewritten graph computes the same values bit for bit (up to the
sign of a zero: ``x + 0 -> x`` keeps ``-0.0`` where NumPy would give ``0.0``, as XLA
does). A row that returns an existing Var applies only where that Var has the result's
shape and dtype, so a multiply by one that broadcasts or promotes ``x`` stays.

Traced graphs are full of explicit ``broadcast_to`` (autograd's rules need equal shapes);
an elementwise op computes the same from the unbroadcast input, since its impl (a NumPy
ufunc) broadcasts by itself, so those rows drop the broadcast where the result's shape
is unchanged. The broadcast becomes dead and ``prune`` removes it.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from ._rewrite import BINARY, Const, New, Op, Row, Same, rewrite

ONE, ZERO = Const(1), Const(0)
BCAST = "broadcast_to"


def _identity(m) -> bool:
    axes = m["t"].params["axes"]
    return tuple(int(a) for a in axes) == tuple(range(len(axes)))


def _composed(m) -> dict:
    inner, outer = m["inner"].params["axes"], m["t"].params["axes"]
    return {"axes": tuple(int(inner[int(a)]) for a in outer)}


def _splat(k: str) -> New:
    """``k`` (a uniform Var) broadcast to the shape of the root equation, bound as "r"."""
    return New(BCAST, k, params=lambda m: {"shape": m["r"].out.shape})


def _whole(m) -> bool:
    """index_put at ``...`` or ``[:, :]``: every element is overwritten."""
    return all(i is Ellipsis or (isinstance(i, slice) and i == slice(None))
               for i in m["p"].params["index"])


def _round_trip(m) -> bool:
    """cast(cast(x, wide), x.dtype) is x when ``wide`` holds every value of x's dtype."""
    x, wide = m["x"], m["inner"].out
    return np.can_cast(x.dtype, wide.dtype, "safe")


RULES = [
    # pattern                                             result
    # identity elements
    Row(Op("mul", "x", ONE),                                "x"),
    Row(Op("mul", ONE, "x"),                                "x"),
    Row(Op("add", "x", ZERO),                               "x"),
    Row(Op("add", ZERO, "x"),                               "x"),
    Row(Op("sub", "x", ZERO),                               "x"),
    Row(Op("div", "x", ONE),                                "x"),
    Row(Op("pow", "x", ONE),                                "x"),
    Row(Op("pow", "x", Const(2)),                           New("mul", "x", "x")),
    Row(Op("neg", Op("neg", "x")),                          "x"),
    Row(Op("logical_and", "x", Const(False, name="k"), name="r"), _splat("k")),
    Row(Op("logical_and", Const(False, name="k"), "x", name="r"), _splat("k")),
    Row(Op("logical_or", "x", Const(True, name="k"), name="r"),   _splat("k")),
    Row(Op("logical_or", Const(True, name="k"), "x", name="r"),   _splat("k")),
    Row(Op("where", Const(True), "a", "b"),                 "a"),
    Row(Op("where", Const(False), "a", "b"),                "b"),
    # movement and casts: no-ops, chains
    Row(Op("transpose", "x", name="t"),                     "x", when=_identity),
    Row(Op("transpose", Op("transpose", "x", name="inner"), name="t"),
        New("transpose", "x", params=_composed)),
    Row(Op("reshape", "x"),                                 "x"),
    Row(Op("reshape", Op("reshape", "x"), name="r"),        New("reshape", "x", params="r")),
    Row(Op(BCAST, "x"),                                     "x"),
    Row(Op(BCAST, Op(BCAST, "x"), name="b"),                New(BCAST, "x", params="b")),
    Row(Op("index_put", "x", "v", name="p"),                "v", when=_whole),
    Row(Op("cast", "x"),                                    "x"),
    Row(Op("cast", Op("cast", "x", name="inner")),          "x", when=_round_trip),
    # elementwise ops broadcast by themselves
    Row(Op(BINARY, Op(BCAST, "a"), "b"),                    Same("a", "b")),
    Row(Op(BINARY, "a", Op(BCAST, "b")),                    Same("a", "b")),
    Row(Op("where", Op(BCAST, "c"), "a", "b"),              Same("c", "a", "b")),
    Row(Op("where", "c", Op(BCAST, "a"), "b"),              Same("c", "a", "b")),
    Row(Op("where", "c", "a", Op(BCAST, "b")),              Same("c", "a", "b")),
]


def simplify(graph: Graph) -> Graph:
    """Apply the ``RULES`` table."""
    return rewrite(graph, RULES)
