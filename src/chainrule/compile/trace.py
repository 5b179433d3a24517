"""Tracing: run a function on abstract tensors and record the ops it binds as a Graph.

``Trace`` is an interpreter (see ``core.dispatch``). Every op reaches ``process``, which
records an equation and returns a new tracer: a Tensor whose ``data`` is a
``ShapedArray`` carrying its graph variable. Tape recording still happens in ``bind``,
so ``backward()``, ``autograd.grad`` and the transforms inside the function are traced
too: backward, its rules and the optimizer update all land in one graph.

Concrete tensors the function reads but did not receive as arguments (a model's
parameters, optimizer state, a tensor it closes over) are *captured*: they become extra
graph inputs, read by reference at every call. Read-only arrays (cached scalars) and
arrays created while tracing become constants. A captured tensor written in place is a
*write*: its final value is an extra output, copied back into its buffer after each
call. A captured tensor whose ``.grad`` the function sets (``backward()``) gets that
gradient as an extra output too. While tracing, both are rebound to tracers, and
restored when the trace ends.
"""
from __future__ import annotations

import numpy as np

from ..core import dispatch
from ..core.abstract import ShapedArray, TracerError
from ..core.dispatch import Interpreter
from ..core.tensor import Tensor, _make
from .ir import Eqn, Graph, Var, constant


class Trace(Interpreter):
    def __init__(self):
        self.eqns: list[Eqn] = []
        self.vars: set[int] = set()        # ids of the Vars this trace defined
        self.captured: dict[int, tuple] = {}  # id(tensor) -> (tensor, Var)
        self.consts: dict[int, Var] = {}      # id(array) -> constant Var
        self.local: dict[int, np.ndarray] = {}  # arrays created while tracing
        self.written: dict[int, tuple] = {}   # id(tensor) -> (tensor, real array, version)
        self.grads: dict[int, tuple] = {}     # id(tensor) -> (tensor, .grad before)
        self.grad_of: dict[int, Tensor] = {}  # id(captured grad) -> the tensor it belongs to
        self.reset: set[int] = set()          # ids of tensors whose .grad the function resets
        self.modules: dict[int, tuple] = {}   # id(module) -> (module, its state when called)
        self.backward_ran = False             # the function called backward()

    # ------------------------------------------------------------- values
    def tracer(self, shape, dtype) -> Tensor:
        var = Var(shape, dtype)
        self.vars.add(var.id)
        return _make(ShapedArray(shape, dtype, var))

    def read(self, t: Tensor) -> Var:
        d = t.data
        if d.__class__ is ShapedArray:
            if d.var is None or d.var.id not in self.vars:
                raise TracerError(
                    f"jit: a traced tensor ({d.shape} {d.dtype}) from another trace was "
                    f"used here; it escaped its function (stored in a global or an "
                    f"attribute?), at {dispatch.user_site()}")
            return d.var
        return self.capture(t)

    def capture(self, t: Tensor) -> Var:
        e = self.captured.get(id(t))
        if e is not None:
            return e[1]
        arr = t.data
        if not arr.flags.writeable or id(arr) in self.local:
            v = self.consts.get(id(arr))
            if v is None:
                v = self.consts[id(arr)] = constant(arr)
            return v
        v = Var(arr.shape, arr.dtype)
        self.captured[id(t)] = (t, v)
        self.grad_read(t)
        return v

    def grad_read(self, t: Tensor) -> None:
        """``t`` was captured, or code reads its ``.grad``: remember the gradient it had at
        entry, so a captured tensor that is that gradient is read through ``t``."""
        self.grads.setdefault(id(t), (t, t.grad))

    def grad_reset(self, t: Tensor) -> None:
        """The function resets ``t.grad`` itself (zero_grad): remember the state it had
        at entry, so no guard ties the graph to it."""
        self.grads.setdefault(id(t), (t, t.grad))
        self.reset.add(id(t))

    def module_called(self, m) -> None:
        self.modules.setdefault(id(m), (m, module_state(m)))

    def created(self, arr: np.ndarray) -> None:
        """A creation op made ``arr`` while tracing: it is a constant of the graph."""
        self.local[id(arr)] = arr

    # ------------------------------------------------------------ the hook
    def process(self, prim, args, params):
        ins = tuple(self.read(a) for a in args)
        shape, dtype = prim.shape(*[a.data for a in args], **params)
        out = self.tracer(shape, dtype)
        self.eqns.append(Eqn(prim, ins, params, out.data.var))
        if prim.view:  # views keep their path to the base, so in-place ops on them work
            dispatch.mark_view(prim, params, args[0], out)
        return out

    def inplace(self, x: Tensor, new: Tensor) -> None:
        if x.data.__class__ is np.ndarray:
            if id(x.data) not in self.local:
                self.read(x)  # its value before the write is an input
                self.written.setdefault(id(x), (x, x.data, x._version[0]))
        x.data = new.data if new.data.__class__ is ShapedArray else self.tracer_of(new)

    def tracer_of(self, t: Tensor) -> ShapedArray:
        return ShapedArray(t.shape, t.dtype, self.read(t))


def module_state(m) -> tuple:
    """What a compiled graph assumed of a module: its mode and which tensors it holds."""
    return (m.training, tuple(id(p) for p in m._parameters.values()),
            tuple(id(b) for b in m._buffers.values()))


def guard_holds(kind: str, obj, expected) -> bool:
    if kind == "grad":
        return (obj.grad is not None) == expected
    return module_state(obj) == expected


def trace(fn, args: tuple, kwargs: dict, tensor_slots: list):
    """Trace ``fn(*args, **kwargs)`` with the tensors at ``tensor_slots`` (positions in
    the flat argument list) replaced by tracers. Returns the graph and the bookkeeping
    the runner needs: captured tensors (extra inputs: ("tensor", t), or ("grad", owner)
    for a gradient read through its owner), written tensors (found the same way) and
    gradients (extra outputs) and the output structure."""
    from ..tree import tree_flatten, tree_unflatten
    tr = Trace()
    leaves, td = tree_flatten((args, kwargs))
    inputs = []
    arg_tracers = []
    for i in tensor_slots:
        tracer = tr.tracer(leaves[i].shape, leaves[i].dtype)
        inputs.append(tracer.data.var)
        arg_tracers.append((i, tracer, tracer.data.var))
        leaves[i] = tracer
    a, k = tree_unflatten(td, leaves)
    dispatch._interpreters.append(tr)
    dispatch._traces.append(tr)
    try:
        out = fn(*a, **k)
        out_leaves, out_def = tree_flatten(out)
        outs = []
        for o in out_leaves:
            if isinstance(o, Tensor):
                outs.append(tr.read(o))
            elif isinstance(o, (int, float, bool, str, type(None))):
                outs.append(o)
            else:
                raise TracerError(f"jit: the function returned a {type(o).__name__}; return "
                                  f"tensors, numbers or pytrees of them")
        writes = [(t, t.data.var if t.data.__class__ is ShapedArray else tr.read(t))
                  for t, *_ in tr.written.values()]
        # A captured tensor that was some tensor's .grad at entry is read through that
        # tensor at each call (backward() rebinds .grad to a new tensor every step),
        # whichever of the two the function read first.
        entry_grads = {id(before): owner for owner, before in tr.grads.values()
                       if before is not None}
        for t, _ in tr.captured.values():
            if id(t) in entry_grads and entry_grads[id(t)] is not t:
                tr.grad_of[id(t)] = entry_grads[id(t)]
        # arguments written in place: (slot in the flat arguments, final value)
        arg_writes = [(i, tracer.data.var) for i, tracer, var in arg_tracers
                      if tracer.data.__class__ is ShapedArray and tracer.data.var is not var]
        grads = []
        # Guards: what the graph assumed of Python state at entry. A .grad it reads must
        # exist; a .grad it assigns (not accumulates) must be None, unless the function
        # resets it itself; a module must be in the same mode with the same parameters.
        guards = [("grad", owner, True) for owner in tr.grad_of.values()]
        guards += [("module", m, state) for m, state in tr.modules.values()]
        for t, before in tr.grads.values():
            g = t.grad
            if g is before:
                continue
            if g is None or isinstance(g, Tensor):
                grads.append((t, None if g is None else tr.read(g)))
                if before is None and id(t) not in tr.reset:
                    guards.append(("grad", t, False))
    finally:
        dispatch._interpreters.remove(tr)
        dispatch._traces.remove(tr)
        for t, real, version in tr.written.values():  # (the calls count the writes)
            t.data, t._version[0] = real, version
        for t, before in tr.grads.values():
            t.grad = before
    # How each captured input (and each written tensor) is found at call time: the tensor
    # itself, or ("grad", owner) for a gradient, since .grad is rebound by every call.
    def where(t):
        return ("grad", tr.grad_of[id(t)]) if id(t) in tr.grad_of else ("tensor", t)
    captured = [where(t) for t, _ in tr.captured.values()]
    graph_outs = [v for v in outs if isinstance(v, Var)] + [v for _, v in writes] + \
        [v for _, v in grads if v is not None] + [v for _, v in arg_writes]
    # Outputs with history from a function that computed no gradient inside (no
    # backward(), no .grad changed): the caller may want to differentiate them, which a
    # compiled call cannot record. A training step's loss is not one of them.
    differentiable = not (grads or tr.backward_ran) and any(
        isinstance(o, Tensor) and o.requires_grad for o in out_leaves)
    graph = Graph(inputs + [v for _, v in tr.captured.values()], tr.eqns, graph_outs,
                  {"differentiable": differentiable, "guards": guards,
                   "arg_writes": [i for i, _ in arg_writes]})
    return graph, captured, [(where(t), v) for t, v in writes], grads, (outs, out_def)
