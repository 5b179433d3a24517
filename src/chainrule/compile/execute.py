"""Running a graph: equations in order on NumPy arrays, each value freed after its last use.

``Program(graph)`` resolves every equation once: the callable, where its inputs come
from (environment slot or constant), and which slots die after it. ``run(inputs)``
is then a tight loop.

A fused equation (``codegen.FusedGroup``) may define several values: its primitive's
``outs``; ``impl`` then returns a tuple. When the buffer-planning pass ran,
``graph.meta["buffers"]`` maps a value to a buffer index and ``meta["buffer_specs"]``
gives each buffer's size in bytes; an equation with planned outputs calls
``impl_into(out, *arrays, **params)`` (the fused group's own, or the primitive's from
``codegen/into.py``) with a view of a prefix of its buffer at the value's shape and dtype,
F-ordered for the values ``passes/order.py`` found F-ordered in eager (for
a fused group with several outputs, a tuple with None for the unplanned ones). The
buffers are allocated at the first call and kept for the next ones (a call running
while another holds them allocates its own set); graph outputs never live in them.

``Program(graph, donors)`` also takes (output position, input position) pairs from
``passes.plan.donations``: ``run(inputs, donate)`` then writes each such output into
the input array itself, for the input positions in ``donate`` (the caller has checked
that no one else sees those arrays); the others are computed as usual.
"""
from __future__ import annotations

import numpy as np

from ..core.dispatch import error_kind
from .codegen import eqn_outs
from .codegen.into import impl_into
from .ir import Graph


def _view(flat: np.ndarray, v, orders: dict) -> np.ndarray:
    """``flat`` at ``v``'s shape, in the memory order eager gives it (passes/order.py)."""
    if orders.get(v.id) == "F":
        return flat.reshape(v.shape[::-1]).T
    return flat.reshape(v.shape)


class Program:
    def __init__(self, graph: Graph, donors: list = ()):
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
        self.buffer_specs = graph.meta.get("buffer_specs", [])
        self.n_buffers = len(self.buffer_specs)
        steps = []
        self._planned = []  # per step: (buffer index, Var) per output, or None
        given = {graph.outputs[p].id: q for p, q in donors}  # out var id -> input position
        self._donors: dict = {}  # step -> (into, is a ufunc, ((out, input position), ..), outs)
        for i, e in enumerate(graph.eqns):
            ins = tuple((None, v.const) if v.const is not None else (slot[v.id], None)
                        for v in e.ins)
            outs = eqn_outs(e)
            for o in outs:
                slot[o.id] = len(slot)
            dead = tuple(slot[v.id] for v in {v.id: v for v in e.ins}.values()
                         if v.const is None and last.get(v.id) == i and v.id not in keep)
            dead += tuple(slot[o.id] for o in outs if o.id not in last and o.id not in keep)
            planned = [(buffers.get(o.id), o) for o in outs]
            into = impl_into(e) if any(b is not None for b, _ in planned) else None
            self._planned.append(planned if into is not None else None)
            out_slots = slot[outs[0].id] if len(outs) == 1 else tuple(slot[o.id] for o in outs)
            # how to call: impl(*args, **params) / into(buffer, *args, **params) / a
            # ufunc into its buffer: ufunc(*args, out=buffer)
            mode = 0 if into is None else 2 if isinstance(into, np.ufunc) else 1
            pairs = tuple((j, given[o.id]) for j, o in enumerate(outs) if o.id in given)
            if pairs:
                f = impl_into(e)
                self._donors[i] = (f, isinstance(f, np.ufunc), pairs, len(outs))
            steps.append((e, e.prim.impl if into is None else into, mode, i, ins, e.params,
                          out_slots, dead))
        self.steps = steps
        self._orders = graph.meta.get("orders", {})  # values eager holds F-ordered
        self.n_slots = len(slot)
        self.inputs = [slot[v.id] for v in graph.inputs]
        self.outputs = [(None, v.const) if v.const is not None else (slot[v.id], None)
                        for v in graph.outputs]
        self._pool: list = []  # buffer sets (per-step views) free for the next call

    def _buffers(self) -> list:
        """Per step: the view(s) its planned outputs write into (None if unplanned)."""
        raw = [np.empty(shape, dtype).reshape(-1).view(np.uint8)
               for shape, dtype in self.buffer_specs]
        views = []
        for planned in self._planned:
            if planned is None:
                views.append(None)
                continue
            vs = tuple(None if b is None else _view(raw[b][:o.nbytes].view(o.dtype), o,
                                                    self._orders) for b, o in planned)
            views.append(vs[0] if len(vs) == 1 else vs)
        return views

    def run(self, inputs: list, donate: tuple = ()) -> list:
        env = [None] * self.n_slots
        for s, a in zip(self.inputs, inputs):
            env[s] = a
        views = self._pool.pop() if self._pool else (self._buffers() if self.n_buffers
                                                      else None)
        donors = self._donors if donate else None
        try:
            for e, call, mode, k, ins, params, out, dead in self.steps:
                args = [env[s] if s is not None else c for s, c in ins]
                try:
                    r = self._donated(k, donate, inputs, views, args, params) \
                        if donors and k in donors else None
                    if r is None:  # (no output donated at this step: as planned)
                        r = (call(*args, **params) if not mode else
                             call(views[k], *args, **params) if mode == 1 else
                             call(*args, out=views[k]))
                except Exception as exc:
                    shapes = ", ".join(f"{tuple(np.shape(a))} {np.asarray(a).dtype}"
                                       for a in args)
                    raise error_kind(exc)(f"jit: {e.prim.name} failed at run time: {exc} "
                                          f"(inputs: {shapes})") from None
                if out.__class__ is int:
                    env[out] = r if r.__class__ is np.ndarray else np.asarray(r)
                else:
                    for s, a in zip(out, r):
                        env[s] = a
                for s in dead:
                    env[s] = None
        finally:
            if views is not None:
                self._pool.append(views)
        return [env[s] if s is not None else c for s, c in self.outputs]

    def _donated(self, k, donate, inputs, views, args, params):
        """Step ``k`` with its donated outputs written into their input arrays; None when
        this call donates none of them (the step then runs as usual)."""
        into, ufunc, pairs, n = self._donors[k]
        if not any(q in donate for _, q in pairs):
            return None
        planned = views[k] if views is not None and self._planned[k] is not None else None
        outs = [planned] if n == 1 else list(planned) if planned is not None else [None] * n
        for j, q in pairs:
            if q in donate:
                outs[j] = inputs[q]
        out = outs[0] if n == 1 else tuple(outs)
        return into(*args, out=out) if ufunc else into(out, *args, **params)
