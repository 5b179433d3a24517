"""Running a graph: equations in order on NumPy arrays, each value freed after its last use.

``Program(graph)`` resolves every equation once: the callable, where its inputs come
from (environment slot or constant), and which slots die after it. ``run(inputs)``
is then a tight loop. An equation's primitive may offer ``impl_into(out, *arrays,
**params)`` and the graph's ``meta["buffers"]`` (from the buffer-planning pass) may
assign it a buffer to write into; otherwise ``impl`` allocates its result.
"""
from __future__ import annotations

import numpy as np

from ..core.dispatch import error_kind
from .ir import Graph


class Program:
    def __init__(self, graph: Graph):
        self.graph = graph
        slot: dict[int, int] = {}
        for v in graph.inputs:
            slot[v.id] = len(slot)
        last: dict[int, int] = {}
        for i, e in enumerate(graph.eqns):
            for v in e.ins:
                last[v.id] = i
        keep = {v.id for v in graph.outputs}
        buffers = graph.meta.get("buffers", {})  # out var id -> buffer index
        self.n_buffers = graph.meta.get("n_buffers", 0)
        self.buffer_specs = graph.meta.get("buffer_specs", [])
        steps = []
        for i, e in enumerate(graph.eqns):
            ins = tuple((None, v.const) if v.const is not None else (slot[v.id], None)
                        for v in e.ins)
            slot[e.out.id] = len(slot)
            dead = tuple(slot[v.id] for v in {v.id: v for v in e.ins}.values()
                         if v.const is None and last.get(v.id) == i and v.id not in keep)
            into = getattr(e.prim, "impl_into", None) if e.out.id in buffers else None
            steps.append((e, e.prim.impl, into, buffers.get(e.out.id), ins, e.params,
                          slot[e.out.id], dead))
        self.steps = steps
        self.n_slots = len(slot)
        self.inputs = [slot[v.id] for v in graph.inputs]
        self.outputs = [(None, v.const) if v.const is not None else (slot[v.id], None)
                        for v in graph.outputs]

    def run(self, inputs: list) -> list:
        env = [None] * self.n_slots
        for s, a in zip(self.inputs, inputs):
            env[s] = a
        bufs = [np.empty(shape, dtype) for shape, dtype in self.buffer_specs]
        for e, impl, into, buf, ins, params, out, dead in self.steps:
            args = [env[s] if s is not None else c for s, c in ins]
            try:
                if into is not None:
                    r = into(bufs[buf], *args, **params)
                else:
                    r = impl(*args, **params)
            except Exception as exc:
                shapes = ", ".join(f"{tuple(np.shape(a))} {np.asarray(a).dtype}" for a in args)
                raise error_kind(exc)(f"jit: {e.prim.name} failed at run time: {exc} "
                                      f"(inputs: {shapes})") from None
            env[out] = r if r.__class__ is np.ndarray else np.asarray(r)
            for s in dead:
                env[s] = None
        return [env[s] if s is not None else c for s, c in self.outputs]
