"""``jit``: trace a function once per input signature, optimize the graph, run it fast.

    step = cr.jit(train_step)        # forward, backward() and optimizer.step() inside
    loss = step(x, y)                # traced and compiled at the first call
    print(step.lower(x, y))          # the graph before and after each pass

The signature is the pytree structure of the arguments, the shape and dtype of every
tensor in them, the values of the other leaves (numbers, strings) and of the
``static_argnums`` arguments. The first call with a new signature runs eagerly, so state
that Python code builds lazily (optimizer buffers, step counters) exists; the second
traces and compiles; later calls run the compiled graph. Python numbers read inside the
function (a learning rate in a float) are constants of the trace: pass values that
change as tensors (``SGD(params, lr=cr.tensor(0.1))``; the schedulers update a tensor
lr in place) or as arguments.

Inside a transform or another trace, or when an argument requires grad and recording
is on, the jitted function runs as ordinary ops (inlined), so ``grad(jit(f))`` and
``jit(grad(f))`` both work; the compiled fast path is for calls at the top level.
"""
from __future__ import annotations

import functools
import time
import warnings

import numpy as np

from ..core import dispatch
from ..core.dispatch import user_site
from ..core.tensor import Tensor, _make
from ..ops.inplace import adopt, held_by_list_alone, private
from ..tree import tree_flatten, tree_unflatten
from .execute import Program
from .ir import Graph, Var
from .passes import PIPELINE
from .passes.order import array_order
from .passes.plan import donations
from .trace import guard_holds, trace

__all__ = ["jit", "make_graph", "JittedFunction", "Lowered", "optimize"]


def optimize(graph: Graph, passes: dict | None = None, stages: list | None = None) -> Graph:
    """Run the pass pipeline; ``passes`` maps a pass name to False to skip it, or to a
    dict of its options (``{"fuse": {"target": "numba"}}``). ``stages``, if given,
    collects (name, graph) after each pass."""
    passes = passes or {}
    unknown = set(passes) - {name for name, _ in PIPELINE}
    if unknown:
        raise ValueError(f"jit: unknown passes {sorted(unknown)}; the passes are "
                         f"{[n for n, _ in PIPELINE]}")
    for name, fn in PIPELINE:
        options = passes.get(name, True)
        if options is not False:
            graph = fn(graph, **options) if isinstance(options, dict) else fn(graph)
            if stages is not None:
                stages.append((name, graph))
    return graph


class Lowered:
    """A traced signature: the graph after tracing and after each pass."""

    def __init__(self, stages: list, seconds: float):
        self.stages = stages
        self.seconds = seconds

    @property
    def graph(self) -> Graph:
        return self.stages[-1][1]

    def counts(self) -> list:
        """(stage, equation count) pairs."""
        return [(name, len(g)) for name, g in self.stages]

    def __str__(self) -> str:
        parts = []
        for name, g in self.stages:
            parts.append(f"== after {name}: {len(g)} equations ==\n{g}")
        return "\n\n".join(parts)


def make_graph(fn, static_argnums=()):
    """``make_graph(fn)(*args)`` traces ``fn`` and returns its Graph, unoptimized."""
    jf = JittedFunction(fn, static_argnums)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return jf._trace(args, kwargs)[0][0]
    return wrapper


class _Entry:
    """One compiled signature."""

    def __init__(self, program, captured, writes, grads, outs, out_def, differentiable,
                 lowered, donors=()):
        self.program, self.captured, self.writes, self.grads = program, captured, writes, grads
        self.donors = list(donors)  # (write index, input position): written in place
        self.outs, self.out_def = outs, out_def
        self.differentiable = differentiable
        self.lowered = lowered
        # The graph assumed these tensors had a .grad (it reads it) or had none (it
        # assigns one rather than accumulating): another state needs another trace.
        self.guards = lowered.stages[0][1].meta["guards"]
        self.arg_writes = lowered.stages[0][1].meta["arg_writes"]

    def valid(self) -> bool:
        return all(guard_holds(*g) for g in self.guards)


class JittedFunction:
    def __init__(self, fn, static_argnums=(), passes: dict | None = None):
        self.fn = fn
        self.static = ((static_argnums,) if isinstance(static_argnums, int)
                       else tuple(static_argnums))
        self.passes = passes
        self.cache: dict = {}
        self.warm: set = set()
        self._warned = False
        self._no_args = None  # _split's answer for a call without arguments
        functools.update_wrapper(self, fn)

    # ---------------------------------------------------------- signature
    def _split(self, args, kwargs):
        if not args and not kwargs:  # (an optimizer's update: one signature, kept)
            if self._no_args is None:
                self._no_args = self._split_any(args, kwargs)
            return self._no_args
        return self._split_any(args, kwargs)

    def _split_any(self, args, kwargs):
        n = len(args)
        static = tuple(a % n for a in self.static if -n <= a < n)
        dyn = tuple(a for i, a in enumerate(args) if i not in static)
        leaves, td = tree_flatten((dyn, kwargs))
        slots = [i for i, x in enumerate(leaves) if isinstance(x, Tensor)]
        try:
            key = (td, tuple((i, args[i]) for i in static),
                   tuple((x.shape, x.dtype.str) if isinstance(x, Tensor) else (type(x), x)
                         for x in leaves))
            hash(key)
        except TypeError:
            raise TypeError(f"jit: static arguments and non-tensor leaves must be hashable "
                            f"(got {[type(args[i]).__name__ for i in static]}), at "
                            f"{user_site()}") from None
        return static, leaves, td, slots, key

    def _rebuild(self, static, args):
        def call(dyn, kwargs):
            it = iter(dyn)
            full = [args[i] if i in static else next(it) for i in range(len(args))]
            return self.fn(*full, **kwargs)
        return call

    def _trace(self, args, kwargs):
        static, leaves, td, slots, key = self._split(args, kwargs)
        call = self._rebuild(static, args)
        (dyn, kw) = tree_unflatten(td, leaves)
        return trace(lambda *d, **k: call(d, k), dyn, kw,
                     [i for i in slots]), key, slots, leaves

    # ------------------------------------------------------------- calls
    def lower(self, *args, **kwargs) -> Lowered:
        """Trace and optimize for these arguments; the stages show each pass."""
        t0 = time.perf_counter()
        (graph, *_), *_ = self._trace(args, kwargs)
        stages = [("trace", graph)]
        optimize(graph, self.passes, stages)
        return Lowered(stages, time.perf_counter() - t0)

    def _compile(self, args, kwargs) -> _Entry:
        t0 = time.perf_counter()
        (graph, captured, writes, grads, (outs, out_def)), key, slots, leaves = \
            self._trace(args, kwargs)
        # the memory order of each input as this call passes it (eager's activations
        # follow it: passes/order.py)
        arrays = [leaves[i].data for i in slots] + [
            (t if kind == "tensor" else t.grad).data for kind, t in captured]
        graph = graph.replace(meta={**graph.meta, "input_orders": {
            v.id: o for v, a in zip(graph.inputs, arrays) if (o := array_order(a)) != "C"}})
        stages = [("trace", graph)]
        opt = optimize(graph, self.passes, stages)
        differentiable = graph.meta["differentiable"]
        # a written captured tensor whose new value can be computed in its own buffer
        n_out, n_in = sum(isinstance(v, Var) for v in outs), len(graph.inputs) - len(captured)
        where = {(kind, id(t)): n_in + k for k, (kind, t) in enumerate(captured)}
        pairs = [(n_out + k, where[kind, id(t)]) for k, ((kind, t), _) in enumerate(writes)
                 if (kind, id(t)) in where]
        donors = donations(opt, pairs)
        entry = _Entry(Program(opt, donors), captured, writes, grads, outs, out_def,
                       differentiable, Lowered(stages, time.perf_counter() - t0),
                       [(p - n_out, q) for p, q in donors])
        self.cache.setdefault(key, []).append(entry)
        return entry

    def __call__(self, *args, **kwargs):
        if dispatch._interpreters:
            return self.fn(*args, **kwargs)  # inside a transform or a trace: inline
        static, leaves, td, slots, key = self._split(args, kwargs)
        if dispatch._mode.grad and any(leaves[i].requires_grad for i in slots):
            return self.fn(*args, **kwargs)  # its inputs are differentiated: inline
        entry = next((e for e in self.cache.get(key, ()) if e.valid()), None)
        if entry is None:
            if key not in self.warm:  # first call: eager, so lazily built state exists
                self.warm.add(key)
                return self.fn(*args, **kwargs)
            entry = self._compile(args, kwargs)  # (also when .grad presence changed)
        if entry.differentiable and dispatch._mode.grad:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"jit({getattr(self.fn, '__name__', 'fn')}): its outputs need gradients "
                    f"with respect to tensors it reads (parameters), so it runs eagerly to "
                    f"record them; jit the whole training step (loss, backward, update), "
                    f"or call it under no_grad for inference", stacklevel=2)
            return self.fn(*args, **kwargs)
        targets = [t if kind == "tensor" else t.grad for (kind, t), _ in entry.writes]
        # writes computed in their tensor's own buffer, where no one else sees it (checked
        # before this frame holds the arrays)
        donate = tuple(q for k, q in entry.donors
                       if targets[k].data.flags.c_contiguous and private(targets[k]))
        inputs = [leaves[i].data for i in slots] + [
            (t if kind == "tensor" else t.grad).data for kind, t in entry.captured]
        results = entry.program.run(inputs, donate)
        n_out = sum(isinstance(v, Var) for v in entry.outs)
        n_w = len(entry.writes)
        # outputs are the caller's own: copied when they alias an input or a buffer about
        # to be overwritten
        inputs += [t.data for t in targets] + [leaves[i].data for i in entry.arg_writes]
        out_arrays = [a if a.flags.writeable and not any(
            np.may_share_memory(a, b) for b in inputs) else a.copy() for a in results[:n_out]]
        del inputs  # no longer held here, so the write-back can take buffers over
        for k, t in enumerate(targets):
            j = n_out + k  # a result no one else holds becomes t's buffer (no copy)
            if results[j] is not t.data and not (held_by_list_alone(results, j)
                                                 and adopt(t, results[j]) is not None):
                np.copyto(t.data, results[j])
            t._version[0] += 1
        gi = iter(results[n_out + n_w:])
        for t, v in entry.grads:
            t.grad = None if v is None else _make(next(gi))
        for slot in entry.arg_writes:  # arguments the function changed in place
            np.copyto(leaves[slot].data, next(gi))
            leaves[slot]._version[0] += 1
        it = iter(out_arrays)
        outs = [_make(next(it)) if isinstance(v, Var) else v for v in entry.outs]
        return tree_unflatten(entry.out_def, outs)


def jit(fn=None, *, static_argnums=(), passes: dict | None = None):
    """Compile ``fn``: ``jit(fn)``, or ``@jit(static_argnums=(1,))`` as a decorator.
    ``passes`` turns optimization passes off by name, e.g. ``{"fuse": False}``, or sets
    their options, e.g. ``{"fuse": {"target": "numba"}}``."""
    if fn is None:
        return lambda f: JittedFunction(f, static_argnums, passes)
    return JittedFunction(fn, static_argnums, passes)
