"""Drawing a compiled graph (``chainrule.compile.ir.Graph``) with the viz model.

    low = jit(step).lower(x, y)
    viz.render(low.graph, "step.svg")              # or viz.compiled_graph(low.graph)
    bad = viz.find_nonfinite(graph, arrays)        # the equation that made a NaN/Inf
    viz.render(graph, "nan.svg", highlight=bad)

One box per equation (its op and params, the output's shape, dtype and size, and
``%out <- operands`` as in ``str(graph)``); graph inputs, array constants and outputs are boxes of
their own, scalar constants are written into the op that reads them. A fused group (an
equation whose primitive lists ``members``, such as ``codegen.FusedGroup``) is drawn as a
cluster holding one box per member op, with edges from whatever each member reads:
another member, or the group's input. A group that only offers ``listing()`` is one
"group" box showing that listing.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Union

import numpy as np

from .graph import Graph, describe, format_bytes

__all__ = ["compiled_graph", "find_nonfinite", "is_compiled_graph"]

Mark = Union[None, Callable, Iterable, object]
PARAM_CHARS = 36  # longer params are cut in the box title


def is_compiled_graph(obj) -> bool:
    """Whether ``obj`` is a compiler graph (or a ``Lowered``, drawn as its final graph)."""
    from ..compile.ir import Graph as IRGraph
    from ..compile.jit import Lowered
    return isinstance(obj, (IRGraph, Lowered))


def _scalar(v) -> Optional[str]:
    if v.const is not None and v.const.size == 1:
        return repr(v.const.reshape(-1)[0].item())
    return None


def _params(params: dict) -> str:
    parts = []
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            v = f"array{list(v.shape)}"
        elif isinstance(v, np.dtype):
            v = v.name
        parts.append(f"{k}={v}")
    text = ", ".join(parts)
    return text if len(text) <= PARAM_CHARS else text[:PARAM_CHARS - 3] + "..."


def _marker(highlight: Mark) -> Callable:
    """A predicate on equations (fused members included) from ``highlight``: an
    equation, a Var or Var id (its producer), a collection of these, or a predicate."""
    if highlight is None:
        return lambda e: False
    if callable(highlight):
        return highlight
    items = [highlight] if not isinstance(highlight, (list, tuple, set, frozenset)) \
        else list(highlight)
    eqns = {id(h) for h in items if hasattr(h, "prim")}
    ids = {h if isinstance(h, int) else h.id for h in items if not hasattr(h, "prim")}
    return lambda e: id(e) in eqns or e.out.id in ids


def _arg(v, shape) -> str:
    """How an operand is written: its scalar value or ``%id``, with ``↑`` when it is
    broadcast to ``shape`` (fused members read the smaller array)."""
    name = _scalar(v) or f"%{v.id}"
    return name + ("\u2191" if shape is not None and v.shape != shape and _scalar(v) is None
                   else "")


def _op_lines(e, ins, member: bool) -> list:
    ps = _params(e.params)
    args = " ".join(_arg(v, e.out.shape if member else None) for v in ins)
    return [e.prim.name + (f"[{ps}]" if ps else ""),
            f"{describe(e.out.shape, e.out.dtype)}, {format_bytes(e.out.nbytes)}",
            f"%{e.out.id} \u2190 {args}".rstrip()]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def compiled_graph(graph, highlight: Mark = None, names: Optional[dict] = None) -> Graph:
    """The drawing (a ``viz.Graph``) of a compiled graph (or of a ``Lowered``'s final
    graph).

    ``highlight``: equations to draw in red — an ``Eqn`` (a fused group's member too),
    a ``Var`` or Var id (the equation producing it), a collection of these, or a
    predicate on equations; ``find_nonfinite`` gives the one that made a NaN.
    ``names`` labels graph inputs: ``{position or Var: "name"}``.
    """
    graph = getattr(graph, "graph", graph)  # a Lowered: its final graph
    marked = _marker(highlight)
    labels = {}
    for k, name in (names or {}).items():
        labels[graph.inputs[k].id if isinstance(k, int) else k.id] = str(name)
    g = Graph()
    producer: dict = {}  # var id -> node id

    for k, v in enumerate(graph.inputs):
        node = f"in{k}"
        g.add_node(node, [labels.get(v.id, f"input {k}"), describe(v.shape, v.dtype),
                          f"%{v.id}"], "leaf")
        producer[v.id] = node

    def source(v) -> Optional[str]:
        """The node that provides ``v``; None for a scalar constant (written inline)."""
        if v.id not in producer:
            if _scalar(v) is not None:
                return None
            if v.const is None:
                raise ValueError(f"viz: %{v.id} is read before any equation defines it")
            producer[v.id] = f"c{v.id}"
            g.add_node(f"c{v.id}", ["constant", describe(v.shape, v.dtype),
                                    format_bytes(v.nbytes)], "leaf")
        return producer[v.id]

    def add_op(node, e, ins, cluster=None):
        g.add_node(node, _op_lines(e, ins, cluster is not None), "op", cluster,
                   bool(marked(e)))
        for v in ins:
            src = source(v)
            if src is not None:
                g.add_edge(src, node)

    n_groups = n_members = 0
    for e in graph.eqns:
        members = getattr(e.prim, "members", None)
        if members:
            n_groups += 1
            n_members += len(members)
            cluster = f"fused group {n_groups}: {len(members)} ops" + (
                f" ({e.prim.target})" if getattr(e.prim, "target", None) else "")
            operand = getattr(e.prim, "operand", {})
            inner = {m.out.id for m in members}
            for m in members:
                ins = [v if v.id in inner else operand.get(v.id, v) for v in m.ins]
                add_op(f"v{m.out.id}", m, ins, cluster)
                producer[m.out.id] = f"v{m.out.id}"
            continue
        sub = getattr(e.prim, "listing", None)
        if sub is not None:  # a group that only lists its members
            node = f"v{e.out.id}"
            g.add_node(node, [e.prim.name, describe(e.out.shape, e.out.dtype),
                              f"%{e.out.id}"] + list(sub()), "group",
                       highlight=bool(marked(e)))
            for v in e.ins:
                src = source(v)
                if src is not None:
                    g.add_edge(src, node)
            for v in getattr(e.prim, "outs", None) or (e.out,):
                producer[v.id] = node
            continue
        add_op(f"v{e.out.id}", e, e.ins)
        producer[e.out.id] = f"v{e.out.id}"

    for k, v in enumerate(graph.outputs):
        node = f"out{k}"
        value = _scalar(v)
        g.add_node(node, [f"output {k}" + (f" = {value}" if value is not None else ""),
                          describe(v.shape, v.dtype)], "output")
        src = source(v)
        if src is not None:
            g.add_edge(src, node)

    caption = _plural(len(graph.eqns), "equation")
    if n_groups:
        caption += f", {_plural(n_groups, 'fused group')} of {n_members} ops"
    meta = graph.meta
    if "peak_bytes_after" in meta:  # the buffer plan's figures (passes/plan.py)
        caption += (f"; peak {format_bytes(meta['peak_bytes_after'])} planned, "
                    f"{format_bytes(meta['peak_bytes_freed'])} freeing at last use")
    g.caption = caption
    return g


def _nonfinite(a) -> bool:
    a = np.asarray(a)
    return a.dtype.kind in "fc" and not np.isfinite(a).all()


def find_nonfinite(graph, inputs: list):
    """Run ``graph`` on ``inputs`` (arrays or tensors, in ``graph.inputs`` order) one
    equation at a time and return the first equation whose floating-point result holds
    a NaN or an infinity while its inputs were finite — for a fused group, the member
    op that made it — or None if every value is finite (or the NaN came in)."""
    graph = getattr(graph, "graph", graph)
    env = {v.id: np.asarray(getattr(a, "data", a)) for v, a in zip(graph.inputs, inputs)}

    def val(v):
        return v.const if v.const is not None else env[v.id]

    with np.errstate(all="ignore"):
        for e in graph.eqns:
            args = [val(v) for v in e.ins]
            out = e.prim.impl(*args, **e.params)
            outs = getattr(e.prim, "outs", None) or (e.out,)
            results = out if len(outs) > 1 else (out,)
            for v, r in zip(outs, results):
                env[v.id] = np.asarray(r)
            if any(map(_nonfinite, args)) or not any(map(_nonfinite, results)):
                continue
            operand, inner = getattr(e.prim, "operand", {}), {}
            for m in getattr(e.prim, "members", None) or ():  # which member made it
                margs = [inner[v.id] if v.id in inner else val(operand.get(v.id, v))
                         for v in m.ins]
                inner[m.out.id] = np.asarray(m.prim.impl(*margs, **m.params))
                if _nonfinite(inner[m.out.id]) and not any(map(_nonfinite, margs)):
                    return m
            return e
    return None
