"""Forward mode: an interpreter that carries a tangent beside every value.

``JVPInterpreter.process`` computes the primal one level down (``lower``) and then the
tangent with the primitive's jvp rule, also one level down. Rules are written in
chainrule ops, so a rule run at the level below is itself seen by the interpreters
there: nested forward mode (``jvp(jvp(f))``), forward over reverse (``jvp(grad(f))``,
the rules of backward get tangents too) and reverse over forward (the tangent ops are
recorded on the tape like any op) all follow from this one function. Each level keeps
its own tangent table, so perturbations of different levels never mix.
"""
from __future__ import annotations

from ..core import dispatch
from ..core.dispatch import Interpreter, interpreter, user_site
from ..core.tensor import Tensor
from ..ops import creation, movement

_FLOAT = "fc"


class JVPInterpreter(Interpreter):
    """One level of forward mode. Tangents are kept by tensor identity; ``None`` means a
    zero tangent (never materialized)."""

    def __init__(self):
        self.tangents: dict[int, tuple] = {}  # id(tensor) -> (tensor, tangent)
        self.by_array: dict[int, tuple] = {}  # id(output array) -> (array, tangent)

    def tangent(self, t: Tensor):
        e = self.tangents.get(id(t))
        if e is not None:
            return e[1]
        # The backward engine re-wraps a saved output array in a new Tensor (node.out):
        # it is the same value, so it has the same tangent.
        node = t._node
        if node is not None and node.out is t.data:
            e = self.by_array.get(id(t.data))
            if e is not None:
                return e[1]
        return None

    def set_tangent(self, t: Tensor, tan: Tensor) -> None:
        self.tangents[id(t)] = (t, tan)
        self.by_array[id(t.data)] = (t.data, tan)

    def process(self, prim, args, params):
        tangents = tuple(self.tangent(a) for a in args)
        out = dispatch.lower(self, prim, args, params)
        if prim.jvp is None or out.dtype.kind not in _FLOAT or all(
                t is None for t in tangents):
            return out
        dispatch._interpreters.pop()
        try:
            tan = prim.jvp(tangents, out, *args, **params)
        finally:
            dispatch._interpreters.append(self)
        if tan is not None:
            if tan.shape != out.shape or tan.dtype != out.dtype:
                raise RuntimeError(
                    f"internal error in the jvp rule of '{prim.name}': tangent "
                    f"{tuple(tan.shape)} {tan.dtype} for an output of {tuple(out.shape)} "
                    f"{out.dtype}")
            self.set_tangent(out, tan)
        return out

    def inplace(self, x: Tensor, new: Tensor) -> None:
        tan = self.tangent(new)
        if tan is not None:
            self.set_tangent(x, tan)
        else:
            self.tangents.pop(id(x), None)


def jvp_flat(fn, primals: list, tangents: list):
    """Run ``fn(*primals)`` with ``tangents`` attached; returns (outputs, interpreter),
    where ``interp.tangent(o)`` reads the output tangents."""
    interp = JVPInterpreter()
    with interpreter(interp):
        xs = []
        for i, (p, t) in enumerate(zip(primals, tangents)):
            if not isinstance(p, Tensor):
                raise TypeError(f"jvp: primal {i} is a {type(p).__name__}, not a Tensor, "
                                f"at {user_site()}")
            if t is not None:
                if not isinstance(t, Tensor):
                    t = creation.as_tensor(t, dtype=p.dtype)
                if t.shape != p.shape:
                    raise ValueError(f"jvp: tangent {i} has shape {tuple(t.shape)} but its "
                                     f"primal has shape {tuple(p.shape)}, at {user_site()}")
                if p.dtype.kind not in _FLOAT:
                    raise TypeError(f"jvp: primal {i} has dtype {p.dtype}; only floating "
                                    f"point inputs take tangents, at {user_site()}")
                if t.dtype != p.dtype:
                    raise TypeError(f"jvp: tangent {i} has dtype {t.dtype} but its primal "
                                    f"has dtype {p.dtype}, at {user_site()}")
            x = movement.alias(p)  # a value of this level: p itself may carry another
            if t is not None:       # tangent at an outer level
                interp.set_tangent(x, t)
            xs.append(x)
        outs = fn(*xs)
    return outs, interp

