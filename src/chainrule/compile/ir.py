"""The compiler's graph: SSA equations over primitives.

A ``Graph`` has input ``Var``s, a list of ``Eqn``s in execution order (each applies one
primitive to Vars and defines one new Var) and output Vars. A Var either comes from an
input, from an equation, or is a constant (``Var.const`` holds the array). Passes are
pure functions ``Graph -> Graph``: they build new equation lists and never mutate the
graph they were given (Vars and params are immutable and shared).

``str(graph)`` is a readable listing::

    graph(%0: f32[128,784], %1: f32[784,512]) {
      %2: f32[128,512] = matmul %0 %1
      %3: f32[128,512] = relu %2
      return %3
    }
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

_ids = itertools.count()

_SHORT = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "bool": "bool",
          "float16": "f16", "int8": "i8", "uint8": "u8"}


class Var:
    """One value of the graph: shape, dtype, and the constant array if it is one."""

    __slots__ = ("id", "shape", "dtype", "const")

    def __init__(self, shape: tuple, dtype, const: np.ndarray | None = None):
        self.id = next(_ids)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.const = const

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def type(self) -> str:
        return f"{_SHORT.get(self.dtype.name, self.dtype.name)}[{','.join(map(str, self.shape))}]"

    def __repr__(self) -> str:
        return f"Var(%{self.id}: {self.type})"


def constant(value) -> Var:
    """A constant Var holding a read-only copy-free view of ``value``."""
    arr = np.asarray(value)
    if arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return Var(arr.shape, arr.dtype, arr)


class Eqn:
    """``out = prim(*ins, **params)``. ``prim`` is a Primitive, or a fused group
    (anything with ``name`` and ``impl``)."""

    __slots__ = ("prim", "ins", "params", "out")

    def __init__(self, prim, ins: tuple, params: dict, out: Var):
        self.prim = prim
        self.ins = tuple(ins)
        self.params = params
        self.out = out

    def __repr__(self) -> str:
        return f"<Eqn {self.prim.name} -> %{self.out.id}>"


class Graph:
    """Inputs, equations in order, outputs. ``meta`` carries notes passes leave (peak
    bytes from the buffer plan, for instance)."""

    def __init__(self, inputs: list, eqns: list, outputs: list, meta: dict | None = None):
        self.inputs = list(inputs)
        self.eqns = list(eqns)
        self.outputs = list(outputs)
        self.meta = dict(meta or {})

    def replace(self, **kw) -> "Graph":
        """A new Graph with some fields replaced (passes use this)."""
        fields = dict(inputs=self.inputs, eqns=self.eqns, outputs=self.outputs, meta=self.meta)
        fields.update(kw)
        return Graph(**fields)

    def __len__(self) -> int:
        return len(self.eqns)

    def op_counts(self) -> dict:
        counts: dict[str, int] = {}
        for e in self.eqns:
            counts[e.prim.name] = counts.get(e.prim.name, 0) + 1
        return counts

    def __str__(self) -> str:
        def name(v: Var) -> str:
            if v.const is not None:
                if v.const.size == 1:
                    return repr(v.const.reshape(-1)[0].item())
                return f"const{v.type}"
            return f"%{v.id}"

        ins = ", ".join(f"%{v.id}: {v.type}" for v in self.inputs)
        lines = [f"graph({ins}) {{"]
        for e in self.eqns:
            args = " ".join(name(v) for v in e.ins)
            ps = _params(e.params)
            lines.append(f"  %{e.out.id}: {e.out.type} = {e.prim.name}"
                         f"{'[' + ps + ']' if ps else ''} {args}".rstrip())
            for sub in getattr(e.prim, "listing", lambda: [])():
                lines.append("      " + sub)
        lines.append("  return " + ", ".join(name(v) for v in self.outputs))
        lines.append("}")
        return "\n".join(lines)

    __repr__ = __str__


def _params(params: dict) -> str:
    out = []
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            v = f"array{list(v.shape)}"
        elif isinstance(v, tuple) and any(isinstance(i, np.ndarray) for i in v):
            v = "(" + ", ".join(f"array{list(i.shape)}" if isinstance(i, np.ndarray) else repr(i)
                                for i in v) + ")"
        elif isinstance(v, np.dtype):
            v = v.name
        out.append(f"{k}={v}")
    return ", ".join(out)


def param_key(params: dict) -> Any:
    """A hashable key for params (arrays by value), for CSE and caches."""
    def key(v):
        if isinstance(v, np.ndarray):
            return ("nd", v.dtype.str, v.shape, v.tobytes())
        if isinstance(v, (tuple, list)):
            return (type(v).__name__,) + tuple(key(i) for i in v)
        if isinstance(v, dict):
            return ("dict",) + tuple((k, key(i)) for k, i in sorted(v.items()))
        if isinstance(v, slice):
            return ("slice", v.start, v.stop, v.step)
        return v
    return tuple((k, key(v)) for k, v in sorted(params.items()))


def uses(graph: Graph) -> dict:
    """How many times each Var id is read by equations and outputs."""
    n: dict[int, int] = {}
    for e in graph.eqns:
        for v in e.ins:
            n[v.id] = n.get(v.id, 0) + 1
    for v in graph.outputs:
        n[v.id] = n.get(v.id, 0) + 1
    return n
