"""Dead-code elimination: equations whose results no graph output needs are dropped.

This removes what tracing records but the caller never reads: the forward value under
``grad``, rule intermediates a rewrite left unused, the chains of values that only fed
a discarded result. Graph inputs stay (the caller passes them all), used or not.
"""
from __future__ import annotations

from ..ir import Graph


def prune(graph: Graph) -> Graph:
    """Keep only the equations that lead to an output (one backward sweep)."""
    live = {v.id for v in graph.outputs}
    keep = []
    for e in reversed(graph.eqns):
        if e.out.id in live:
            keep.append(e)
            live.update(v.id for v in e.ins)
    keep.reverse()
    return graph.replace(eqns=keep)
