"""Numerically safe rewrites: compositions that overflow, underflow or cancel in floating
point become the primitive that computes the same function stably.

=============================  ===========================  eager float32 goes wrong at
``log(sigmoid(x))``            ``-softplus(-x)``            x = -200: -inf
``log(1 - sigmoid(x))``        ``-softplus(x)``             x = 200: -inf
``log(softmax(x, axis))``      ``log_softmax(x, axis)``     [0, -200]: -inf
``log(sum(exp(x), axis))``     ``logsumexp(x, axis)``       [1000]: inf
``log(1 + x)``, ``log(x + 1)`` ``log1p(x)``                 1e-10: 0
``log(1 - x)``                 ``log1p(-x)``                1e-10: 0
``exp(x) - 1``                 ``expm1(x)``                 1e-10: 0
``log(exp(x))``                ``x``                        1000: inf
``sqrt(x * x)``                ``abs(x)``                   1e20: inf
=============================  ===========================  =========================

The constant 1 may be a 0-d constant or a ``broadcast_to`` of one. Rows apply even where
the intermediate (the sigmoid, the softmax, the exp) has other uses, for instance when
backward reads it: correctness of the value first; the cost is at most one more
elementwise op or reduction, since the intermediate is then computed as well. Only the
forward value changes: a gradient traced from the eager formula is still the eager
gradient (write ``log_softmax`` in the model to have its stable backward too).
"""
from __future__ import annotations

from ..ir import Graph
from ._rewrite import Const, New, Op, Row, rewrite

ONE = Const(1)

RULES = [
    # pattern                                               result
    Row(Op("log", Op("sigmoid", "x")),                        New("neg", New("softplus",
                                                                             New("neg", "x")))),
    Row(Op("log", Op("sub", ONE, Op("sigmoid", "x"))),        New("neg", New("softplus", "x"))),
    Row(Op("log", Op("softmax", "x", name="s")),              New("log_softmax", "x", params="s")),
    Row(Op("log", Op("sum", Op("exp", "x"), name="s")),       New("logsumexp", "x", params="s")),
    Row(Op("log", Op("add", ONE, "x")),                       New("log1p", "x")),
    Row(Op("log", Op("add", "x", ONE)),                       New("log1p", "x")),
    Row(Op("log", Op("sub", ONE, "x")),                       New("log1p", New("neg", "x"))),
    Row(Op("log", Op("exp", "x")),                            "x"),
    Row(Op("sub", Op("exp", "x"), ONE),                       New("expm1", "x")),
    Row(Op("sqrt", Op("mul", "x", "x")),                      New("abs", "x")),
]


def safe(graph: Graph) -> Graph:
    """Apply the ``RULES`` table."""
    return rewrite(graph, RULES)
