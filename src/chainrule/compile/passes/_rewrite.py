"""What the rewriting passes share: Var substitution that keeps graph outputs fresh, the
elementwise primitive set, uniform constants, and the pattern rows of simplify and safe.

A pattern row reads like the algebra it encodes::

    Row(Op("mul", "x", Const(1)), "x")                          # x * 1 -> x
    Row(Op("log", Op("softmax", "x", name="s")), New("log_softmax", "x", params="s"))

``Op(prim, *args)`` matches a Var computed by that registered primitive from Vars matching
``args``; a string captures a Var (the same name twice must be the same Var);
``Const(v)`` matches a constant whose elements all equal ``v``, also when it reaches the
equation through ``broadcast_to`` or ``reshape``. The result is a captured name (the
equation's value is that Var) or a ``New`` term (new equations; the outermost one defines
the original Var). ``Same(*args)`` is the root's primitive and params on other inputs.
A row applies only where its result has exactly the shape and dtype of the Var it
replaces, so ``x * 1`` stays when the multiply broadcasts or promotes ``x``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ...core.abstract import ShapedArray
from ...core.primitive import PRIMITIVES
from ..ir import Eqn, Graph, Var

UNARY = frozenset("neg exp log log1p expm1 sqrt sin cos tanh sigmoid softplus abs sign relu erf "
                  "cast logical_not isnan isinf isfinite".split())
BINARY = frozenset("add sub mul div pow maximum minimum eq ne lt le gt ge logical_and "
                   "logical_or".split())
ELEMENTWISE = UNARY | BINARY | {"where"}
"""Primitives computed element by element whose impls broadcast their inputs (ufuncs)."""

_UNIFORM_CHECK = 1 << 16  # largest (compacted) constant searched for a uniform value


def registered(prim) -> bool:
    """Whether ``prim`` is a row of the primitive table (not a fused group or a custom
    function's per-call primitive, which may share a table name)."""
    return PRIMITIVES.get(prim.name) is prim


def aval(v: Var) -> ShapedArray:
    return ShapedArray(v.shape, v.dtype, v)


# ------------------------------------------------------------------ substitution

class Subst:
    """The Var replacements one pass makes.

    A graph output only takes a replacement that an equation computes, not as a view,
    and that no other output names: each call then still returns fresh arrays of its
    own, never a graph input (or a view of one), a shared read-only constant, or one
    buffer under two names (two ``.grad`` that alias each other would both see an
    in-place change to either). Passes call ``defined(e)`` for equations they add.
    """

    def __init__(self, graph: Graph):
        self.map: dict[int, Var] = {}
        self.outputs = {v.id for v in graph.outputs}
        self.taken = {v.id for v in graph.inputs} | self.outputs
        for e in graph.eqns:
            self.defined(e)

    def defined(self, e: Eqn) -> None:
        if getattr(e.prim, "view", False):
            self.taken.add(e.out.id)

    def __call__(self, v: Var) -> Var:
        while v.id in self.map:
            v = self.map[v.id]
        return v

    def replace(self, old: Var, new: Var) -> bool:
        """Make ``old`` read as ``new``; False (nothing done) where an output would lose
        its own buffer."""
        if old.id in self.outputs:
            if new.const is not None or new.id in self.taken:
                return False
            self.taken.add(new.id)
        self.map[old.id] = new
        return True

    def eqn(self, e: Eqn) -> Eqn:
        """``e`` reading the replacements (a new Eqn; ``e`` itself if none applies)."""
        ins = tuple(self(v) for v in e.ins)
        if all(a is b for a, b in zip(ins, e.ins)):
            return e
        return Eqn(e.prim, ins, e.params, e.out)

    def graph(self, graph: Graph, eqns: list) -> Graph:
        return graph.replace(eqns=eqns, outputs=[self(v) for v in graph.outputs])


# ---------------------------------------------------------------- constant values

def compact(arr: np.ndarray) -> np.ndarray:
    """The smallest array that broadcasts back to ``arr``: broadcast (stride 0) axes
    become 1, and a uniform array (same value and sign bit everywhere) becomes 0-d."""
    arr = np.asarray(arr)
    if arr.size <= 1:
        return arr.reshape(()) if arr.size == 1 else arr
    if 0 in arr.strides:
        arr = arr[tuple(slice(0, 1) if st == 0 else slice(None)
                        for st in arr.strides)]
    if arr.size == 1:
        return arr.reshape(())
    if arr.size <= _UNIFORM_CHECK:
        first = arr[(0,) * arr.ndim]
        same = arr == first
        if arr.dtype.kind in "fc":
            same &= np.signbit(arr.real) == np.signbit(first.real)
        if same.all():
            return np.asarray(first)
    return arr


def uniform(v: Var, defs: dict) -> np.ndarray | None:
    """The single value (0-d) of a Var known to hold one value everywhere: a uniform
    constant, seen through ``broadcast_to``/``reshape`` equations in ``defs``."""
    while v.const is None:
        e = defs.get(v.id)
        if e is None or e.prim.name not in ("broadcast_to", "reshape") or not registered(e.prim):
            return None
        v = e.ins[0]
    c = compact(v.const)
    return c if c.ndim == 0 else None


# ------------------------------------------------------------------- pattern rows

class Op:
    """Pattern: a Var computed by ``prim`` (a name or a set of names) from ``args``;
    ``name`` binds the matched equation (for its params)."""

    def __init__(self, prim, *args, name: str | None = None):
        self.prims = frozenset([prim] if isinstance(prim, str) else prim)
        self.args = args
        self.name = name


class Const:
    """Pattern: a Var holding ``value`` in every element (bool only matches bool);
    ``name`` captures the Var."""

    def __init__(self, value, name: str | None = None):
        self.value, self.name = value, name

    def matches(self, v: Var, defs: dict) -> bool:
        u = uniform(v, defs)
        if u is None or (u.dtype.kind == "b") != isinstance(self.value, bool):
            return False
        return bool(u == self.value)


class New:
    """Result term: primitive ``prim`` on the terms ``args``. ``params``: a dict, the
    name of a bound equation whose params are copied, or ``f(match) -> dict``."""

    def __init__(self, prim: str, *args, params=None):
        self.prim, self.args, self.params = prim, args, params


class Same(New):
    """Result term: the root equation's primitive and params on the terms ``args``."""

    def __init__(self, *args):
        super().__init__(None, *args)


class Row:
    """``pattern -> result`` where ``when(match)`` holds (always, if not given)."""

    def __init__(self, pattern: Op, result, when: Callable | None = None):
        self.pattern, self.result, self.when = pattern, result, when


class _NoMatch(Exception):
    pass


def _match(pat, v: Var, defs: dict, m: dict) -> bool:
    if isinstance(pat, str):
        if pat in m:
            return m[pat] is v
        m[pat] = v
        return True
    if isinstance(pat, Const):
        if not pat.matches(v, defs):
            return False
        if pat.name:
            m[pat.name] = v
        return True
    e = defs.get(v.id)
    return e is not None and _match_eqn(pat, e, defs, m)


def _match_eqn(pat: Op, e: Eqn, defs: dict, m: dict) -> bool:
    if e.prim.name not in pat.prims or len(e.ins) != len(pat.args) or not registered(e.prim):
        return False
    if pat.name:
        m[pat.name] = e
    return all(_match(p, v, defs, m) for p, v in zip(pat.args, e.ins))


def _build(t, m: dict, root: Eqn, out: list, top: bool = True) -> Var:
    """Append the equations of term ``t`` to ``out``; the outermost (``top``) defines
    ``root.out`` and must have its shape and dtype."""
    if isinstance(t, str):
        return m[t]
    args = [_build(a, m, root, out, False) for a in t.args]
    if isinstance(t, Same):
        prim, params = root.prim, root.params
    else:
        prim = PRIMITIVES[t.prim]
        params = (t.params(m) if callable(t.params) else m[t.params].params
                  if isinstance(t.params, str) else dict(t.params or {}))
    try:
        shape, dtype = prim.shape(*[aval(a) for a in args], **params)
    except (ValueError, TypeError, IndexError):
        raise _NoMatch from None
    shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
    if top:
        if (shape, dtype) != (root.out.shape, root.out.dtype):
            raise _NoMatch
        var = root.out
    else:
        var = Var(shape, dtype)
    out.append(Eqn(prim, args, params, var))
    return var


_MAX_DEPTH = 16  # rewrites of rewrites of one equation; rows terminate well before


def rewrite(graph: Graph, rows: list) -> Graph:
    """Apply pattern ``rows`` to every equation in order (the first row that applies
    wins); new equations are rewritten again, so chains collapse in one sweep.
    Equations a rewrite leaves unused stay for ``prune``."""
    index: dict[str, list] = {}
    for row in rows:
        for name in row.pattern.prims:
            index.setdefault(name, []).append(row)
    subst = Subst(graph)
    defs: dict[int, Eqn] = {}
    eqns: list[Eqn] = []

    def emit(e: Eqn, depth: int) -> None:
        e = subst.eqn(e)
        for row in index.get(e.prim.name, ()) if depth < _MAX_DEPTH else ():
            m: dict = {}
            if not _match_eqn(row.pattern, e, defs, m) or (row.when and not row.when(m)):
                continue
            if isinstance(row.result, str):
                v = m[row.result]
                if (v.shape, v.dtype) == (e.out.shape, e.out.dtype) and subst.replace(e.out, v):
                    return
                continue
            new: list[Eqn] = []
            try:
                _build(row.result, m, e, new)
            except _NoMatch:
                continue
            for n in new:
                emit(n, depth + 1)
            return
        eqns.append(e)
        defs[e.out.id] = e
        subst.defined(e)

    for e in graph.eqns:
        emit(e, 0)
    return subst.graph(graph, eqns)
