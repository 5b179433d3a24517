"""Custom differentiation rules: ``autograd.Function`` (PyTorch style) and the
``custom_vjp``/``custom_jvp`` decorators (JAX style).

Each call becomes an opaque primitive made for that call: its impl returns the output
that the user's forward already computed, its vjp and jvp call the user's rules. It then
goes through ``bind`` like any op, so the tape, forward mode and nesting treat it as a
primitive. A function with several outputs binds one primitive per output; their rules
share the call's context, and the vjp of output i is the user's backward with zero
cotangents for the others (backward is linear in the cotangents, so the sum is exact).
"""
from __future__ import annotations

import functools

import numpy as np

from ..core import dispatch
from ..core.dispatch import bind, no_grad, user_site
from ..core.primitive import Primitive
from ..core.tensor import Tensor, _make
from ..ops import creation, elementwise as ew, movement
from ..tree import tree_flatten, tree_unflatten

__all__ = ["Function", "FunctionCtx", "custom_vjp", "custom_jvp"]


class _suspended:
    """Run the user's own forward with no interpreter and no recording: it is opaque."""

    def __enter__(self):
        self.stack = dispatch._interpreters[:]
        dispatch._interpreters.clear()
        self.ng = no_grad().__enter__()

    def __exit__(self, *exc):
        self.ng.__exit__(*exc)
        dispatch._interpreters[:] = self.stack
        return False


def _fresh(t: Tensor, inputs) -> Tensor:
    """An output that is one of the inputs gets a tensor of its own (it will get a node)."""
    return _make(t.data) if any(t is a for a in inputs) else t


def _tracked(args) -> bool:
    """Whether a call must be differentiable: a tape to record on, or an interpreter."""
    return bool(dispatch._interpreters) or (dispatch._mode.grad and any(
        isinstance(a, Tensor) and a.requires_grad for a in args))


def _run_opaque(fn, args):
    """Run the user's function opaquely; returns its output leaves (each a tensor of its
    own), their structure, and the positions of the tensor arguments."""
    with _suspended():
        out = fn(*args)
    leaves, td = tree_flatten(out)
    leaves = [_fresh(o, args) if isinstance(o, Tensor) else o for o in leaves]
    return leaves, td, [k for k, a in enumerate(args) if isinstance(a, Tensor)]


def _keep_second(pair, into: list):
    """``fwd`` returns (out, residuals): keep the residuals, pass the output on."""
    out, res = pair
    into.append(res)
    return out


def _bind_outputs(name, args, outs, vjp_one, jvp_one, saves):
    """Bind one opaque primitive per differentiable output; others pass through."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    results = []
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor) or o.dtype.kind != "f":
            results.append(o)
            continue
        data = o.data
        prim = Primitive(
            name, (lambda *arrays, _d=data: _d),
            (lambda *avals, _d=data: (_d.shape, _d.dtype)),
            (lambda g, out, *inputs, _i=i: vjp_one(_i, g, out, inputs)),
            (lambda tans, out, *inputs, _i=i: jvp_one(_i, tans, out, inputs)),
            saves=saves, save_out=True)
        results.append(bind(prim, *tensors))
    return results


def _fit(g, like, name: str, k: int):
    """A user rule's cotangent for input ``k``: summed to a broadcast shape and cast."""
    if g is None:
        return None
    if not isinstance(g, Tensor):
        g = creation.as_tensor(g, dtype=like.dtype)
    want = tuple(like.shape)
    if g.shape != want:
        try:
            fits = np.broadcast_shapes(want, g.shape) == g.shape
        except ValueError:
            fits = False
        summed = movement.sum_to(g, want) if fits else None
        if summed is None or summed.shape != want:
            raise RuntimeError(f"{name}: the gradient returned for input {k} has shape "
                               f"{tuple(g.shape)}, expected {want}")
        g = summed
    return g if g.dtype == like.dtype else ew.cast(g, like.dtype)


# ------------------------------------------------------------------ Function

class FunctionCtx:
    """The ``ctx`` of a ``Function``: save tensors for backward, read flags."""

    def __init__(self, needs_input_grad: tuple):
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._saved = ()
        self._non_diff = set()
        self._map = {}  # id(tensor seen in forward) -> tensor with history for backward

    def save_for_backward(self, *tensors) -> None:
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple:
        return tuple(self._map.get(id(t), t) if t is not None else None for t in self._saved)

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_diff.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)


class Function:
    """Subclass with ``forward(ctx, *args)`` and ``backward(ctx, *grads)`` static methods
    (and optionally ``jvp(ctx, *tangents)`` for forward mode); call ``Cls.apply(*args)``.
    A backward written in chainrule ops is differentiable again (double backward)."""

    @staticmethod
    def forward(ctx, *args):  # pragma: no cover - always overridden
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):  # pragma: no cover - always overridden
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        name = cls.__name__
        ctx = FunctionCtx(tuple(isinstance(a, Tensor) and a.requires_grad for a in args))
        with _suspended():
            res = cls.forward(ctx, *args)
        single = not isinstance(res, tuple)
        outs = [_fresh(o, args) if isinstance(o, Tensor) else o
                for o in ((res,) if single else res)]
        tensors = [a for a in args if isinstance(a, Tensor)]
        track = (dispatch._mode.grad and any(ctx.needs_input_grad)) or dispatch._interpreters
        if not track:
            return outs[0] if single else tuple(outs)
        pos = [k for k, a in enumerate(args) if isinstance(a, Tensor)]
        saved_ids = {id(t) for t in ctx._saved if isinstance(t, Tensor)}
        saves = tuple(j for j, t in enumerate(tensors) if id(t) in saved_ids)
        diff = [k for k, o in enumerate(outs) if isinstance(o, Tensor) and o.dtype.kind == "f"
                and id(o) not in ctx._non_diff]
        out_ids = [id(o) for o in outs]

        def vjp_one(i, g, out, inputs):
            ctx._map[out_ids[i]] = out
            grads = [None] * len(outs)
            grads[i] = g
            if ctx.materialize_grads:
                grads = [gr if gr is not None or not isinstance(o, Tensor)
                         else creation.zeros(o.shape, dtype=o.dtype)
                         for gr, o in zip(grads, outs)]
            r = cls.backward(ctx, *grads)
            r = r if isinstance(r, tuple) else (r,)
            if len(r) != len(args):
                raise RuntimeError(f"{name}.backward returned {len(r)} gradients but forward "
                                   f"took {len(args)} arguments")
            return tuple(_fit(r[k], inputs[j], f"{name}.backward", k) if ctx.needs_input_grad[k]
                         else None for j, k in enumerate(pos))

        def jvp_one(i, tans, out, inputs):
            if not hasattr(cls, "jvp"):
                raise RuntimeError(f"{name}: forward-mode AD needs a jvp(ctx, *tangents) "
                                   f"static method on the Function, at {user_site()}")
            full = [None] * len(args)
            for j, k in enumerate(pos):
                t = tans[j]
                full[k] = t if t is not None else creation.zeros(args[k].shape,
                                                                dtype=args[k].dtype)
            r = cls.jvp(ctx, *full)
            r = r if isinstance(r, tuple) else (r,)
            return _fit(r[i], out, f"{name}.jvp", i)

        for t in tensors:
            ctx._map[id(t)] = t
        bound = _bind_outputs(name, args, [outs[k] if k in diff else None
                                           for k in range(len(outs))],
                              vjp_one, jvp_one, saves)
        outs = [bound[k] if k in diff else outs[k] for k in range(len(outs))]
        return outs[0] if single else tuple(outs)


# --------------------------------------------------------------- JAX style

class custom_vjp:
    """``f = custom_vjp(fun)``, then ``f.defvjp(fwd, bwd)``: ``fwd(*args) -> (out,
    residuals)``, ``bwd(residuals, cotangent) -> tuple`` with one cotangent per argument.
    Outputs may be pytrees. Without a tape to record on, ``fun`` itself runs."""

    def __init__(self, fun):
        self.fun = fun
        self.fwd = self.bwd = None
        functools.update_wrapper(self, fun)

    def defvjp(self, fwd, bwd):
        self.fwd, self.bwd = fwd, bwd
        return self

    def __call__(self, *args):
        name = getattr(self.fun, "__name__", "custom_vjp")
        if self.fwd is None:
            raise RuntimeError(f"custom_vjp {name}: call defvjp(fwd, bwd) before using it")
        if not _tracked(args):
            return self.fun(*args)
        res = []
        leaves, td, pos = _run_opaque(lambda *a: _keep_second(self.fwd(*a), res), args)
        res = res[0]

        def vjp_one(i, g, out_t, inputs):
            cts = [creation.zeros(o.shape, dtype=o.dtype) if isinstance(o, Tensor) else None
                   for o in leaves]
            cts[i] = g
            r = self.bwd(res, tree_unflatten(td, cts))
            r = tuple(r) if isinstance(r, (tuple, list)) else (r,)
            if len(r) != len(args):
                raise RuntimeError(f"custom_vjp {name}: bwd returned {len(r)} cotangents for "
                                   f"{len(args)} arguments")
            return tuple(_fit(r[k], inputs[j], f"custom_vjp {name}", k)
                         for j, k in enumerate(pos))

        def jvp_one(i, tans, out_t, inputs):
            raise TypeError(f"custom_vjp {name}: forward-mode AD (jvp, jacfwd) is not "
                            f"defined for a custom_vjp function; use custom_jvp, at "
                            f"{user_site()}")

        bound = _bind_outputs(name, args, leaves, vjp_one, jvp_one, ())
        return tree_unflatten(td, bound)


class custom_jvp:
    """``f = custom_jvp(fun)``, then ``f.defjvp(rule)``: ``rule(primals, tangents) ->
    (primal_out, tangent_out)``. Forward mode calls the rule; reverse mode transposes it
    (the tangent output is linear in the tangents, so its vjp is the gradient of
    <cotangent, tangent_out> with respect to the tangents)."""

    def __init__(self, fun):
        self.fun = fun
        self.rule = None
        functools.update_wrapper(self, fun)

    def defjvp(self, rule):
        self.rule = rule
        return rule

    def __call__(self, *args):
        name = getattr(self.fun, "__name__", "custom_jvp")
        if self.rule is None:
            raise RuntimeError(f"custom_jvp {name}: call defjvp(rule) before using it")
        if not _tracked(args):
            return self.fun(*args)
        leaves, td, pos = _run_opaque(self.fun, args)

        def primals_with(inputs):
            full = list(args)
            for j, k in enumerate(pos):
                full[k] = inputs[j]
            return tuple(full)

        def tangent_out(i, inputs, tans):
            _, t_out = self.rule(primals_with(inputs), tans)
            return tree_flatten(t_out)[0][i]

        def jvp_one(i, tans, out_t, inputs):
            full = [None] * len(args)
            for j, k in enumerate(pos):
                t = tans[j]
                full[k] = t if t is not None else creation.zeros(args[k].shape,
                                                                dtype=args[k].dtype)
            return _fit(tangent_out(i, inputs, tuple(full)), out_t, f"custom_jvp {name}", i)

        def vjp_one(i, g, out_t, inputs):
            from .backward import grad as engine_grad
            create = dispatch._mode.grad
            with dispatch.enable_grad():
                ts = [creation.zeros(a.shape, dtype=a.dtype, requires_grad=True)
                      if isinstance(a, Tensor) and a.dtype.kind == "f" else
                      (creation.zeros(a.shape, dtype=a.dtype) if isinstance(a, Tensor) else None)
                      for a in args]
                t_out = tangent_out(i, inputs, tuple(ts))
                wanted = [(j, ts[k]) for j, k in enumerate(pos) if ts[k].requires_grad]
                if not isinstance(t_out, Tensor) or not t_out.requires_grad or not wanted:
                    return (None,) * len(pos)
                gs = engine_grad([t_out], [t for _, t in wanted], [g],
                                 create_graph=create, allow_unused=True)
            res = [None] * len(pos)
            for (j, _), gj in zip(wanted, gs):
                res[j] = _fit(gj, inputs[j], f"custom_jvp {name}", pos[j])
            return tuple(res)

        bound = _bind_outputs(name, args, leaves, vjp_one, jvp_one, tuple(range(len(pos))))
        return tree_unflatten(td, bound)
