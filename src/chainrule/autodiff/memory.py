"""Memory: gradient checkpointing and a report of what backward keeps alive.

``checkpoint(fn, *args)`` runs ``fn`` recording the graph as usual, but the nodes made
inside keep no values: ``_record`` hands them to the active ``Region``, which keeps only
``fn``'s inputs and the RNG state. When backward first needs a value of such a node, the
region runs ``fn`` again under ``_Recompute``, an interpreter that gives each recorded
op's fresh result to the node recorded for it in the first run (same order, same
condition) and makes that result point at the node. So the graph, its parameters (even
those ``fn`` only closes over) and every higher-order derivative are exactly those of
the un-checkpointed run; the values are simply computed twice. After backward the
values are dropped again, so a later backward recomputes them.
"""
from __future__ import annotations

import numpy as np

from ..core import dispatch
from ..core.dispatch import InputMeta, Interpreter, interpreter, user_site
from ..core.tensor import Tensor
from ..ops import creation
from ..tree import tree_leaves

__all__ = ["checkpoint", "checkpoint_sequential", "saved_tensors_report"]


class Region:
    """One checkpointed call: its inputs, RNG state and the nodes recorded inside."""

    def __init__(self, fn, args, kwargs, rng_state):
        self.fn, self.args, self.kwargs, self.rng_state = fn, args, kwargs, rng_state
        self.versions = [(t._version, t._version[0]) for t in tree_leaves((args, kwargs))
                         if isinstance(t, Tensor)]
        self.nodes = []
        self.filled = False
        self.stack = list(dispatch._interpreters)  # the interpreters it was recorded under

    def adopt(self, node) -> None:
        node.inputs = tuple(x if isinstance(x, InputMeta) else InputMeta(x)
                            for x in node.inputs)
        node.out = None
        node.saved = []
        node.lazy = self
        self.nodes.append(node)

    def fill(self) -> None:
        """Recompute ``fn`` and hand every recorded node its saved values."""
        if self.filled:
            return
        for cell, version in self.versions:
            if cell[0] != version:
                raise RuntimeError(
                    f"checkpoint: an input of the checkpointed function was modified in "
                    f"place by {cell[1][0]} at {cell[1][1][0]}:{cell[1][1][1]} after the "
                    f"forward pass; backward must recompute from the same inputs")
        gen = creation.default_generator
        now = gen.get_state() if self.rng_state is not None else None
        if now is not None:
            gen.set_state(self.rng_state)
        prev, dispatch._mode.grad = dispatch._mode.grad, True
        rec = _Recompute(self.nodes)
        # Replay under the interpreters the forward pass ran under (forward mode records
        # tangent ops too; backward may run after that level has returned), with _Recompute
        # at the bottom, where ops are recorded, so it sees them in the order they were.
        stack = dispatch._interpreters
        saved = stack[:]
        stack[:] = [rec] + self.stack + [i for i in saved if i not in self.stack]
        try:
            self.fn(*self.args, **self.kwargs)
        finally:
            stack[:] = saved
            dispatch._mode.grad = prev
            if now is not None:
                gen.set_state(now)
        if rec.k != len(self.nodes):
            raise RuntimeError(
                f"checkpoint: recomputing {_name(self.fn)} ran {rec.k} recorded ops, the "
                f"forward pass ran {len(self.nodes)}; the function must do the same work "
                f"each time (no control flow on global state)")
        self.filled = True

    def release(self) -> None:
        if self.filled:
            for node in self.nodes:
                self.adopt_again(node)
            self.filled = False

    def adopt_again(self, node) -> None:
        node.inputs = tuple(InputMeta(x) if isinstance(x, Tensor) else x for x in node.inputs)
        node.out = None
        node.saved = []


class _Recompute(Interpreter):
    def __init__(self, nodes):
        self.nodes = nodes
        self.k = 0

    def process(self, prim, args, params):
        needs = prim.vjp is not None and any(a.requires_grad for a in args)
        prev, dispatch._mode.grad = dispatch._mode.grad, False
        try:
            out = dispatch.lower(self, prim, args, params)
        finally:
            dispatch._mode.grad = prev
        if not needs:
            return out
        if self.k >= len(self.nodes) or self.nodes[self.k].prim.name != prim.name:
            want = self.nodes[self.k].prim.name if self.k < len(self.nodes) else "nothing"
            raise RuntimeError(f"checkpoint: recomputation diverged at op {self.k}: it ran "
                               f"'{prim.name}' where the forward pass ran '{want}'")
        node = self.nodes[self.k]
        self.k += 1
        saves = prim.saves
        node.inputs = tuple(a if i in saves else InputMeta(a) for i, a in enumerate(args))
        node.saved = [(a._version, a._version[0], i) for i, a in enumerate(args) if i in saves]
        if prim.save_out:
            node.out = out.data
            node.saved.append((out._version, out._version[0], -1))
        out._node, out.requires_grad = node, True
        return out


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def checkpoint(fn, *args, preserve_rng_state: bool = True, use_reentrant=None, **kwargs):
    """``fn(*args, **kwargs)``, keeping none of its intermediate values for backward:
    they are recomputed when backward needs them. Random ops replay identically
    (the default generator's state is restored). ``use_reentrant`` is accepted for
    PyTorch compatibility and ignored: there is one implementation."""
    if not dispatch._mode.grad:
        return fn(*args, **kwargs)
    state = creation.default_generator.get_state() if preserve_rng_state else None
    region = Region(fn, args, kwargs, state)
    dispatch._regions.append(region)
    try:
        out = fn(*args, **kwargs)
    finally:
        dispatch._regions.pop()
    if not any(isinstance(t, Tensor) and t.requires_grad for t in tree_leaves(out)):
        raise RuntimeError(
            f"checkpoint: no output of {_name(fn)} requires grad (no input or parameter "
            f"inside does), so there is nothing to recompute and no memory to save; call "
            f"the function directly, or under no_grad, at {user_site()}")
    return out


def checkpoint_sequential(functions, segments: int, input, use_reentrant=None, **kwargs):
    """Run ``functions`` (a Sequential or a list of callables) in ``segments`` chunks,
    each checkpointed except the last (its values are needed first anyway)."""
    fns = list(functions.children()) if hasattr(functions, "children") else list(functions)
    if not 1 <= segments <= max(len(fns), 1):
        raise ValueError(f"checkpoint_sequential: segments={segments} must be between 1 and "
                         f"the number of functions ({len(fns)}), at {user_site()}")
    bounds = np.linspace(0, len(fns), segments + 1).round().astype(int)

    def run(chunk):
        def seg(x):
            for f in chunk:
                x = f(x)
            return x
        return seg

    x = input
    for s in range(segments):
        chunk = fns[bounds[s]:bounds[s + 1]]
        if s == segments - 1:
            x = run(chunk)(x)
        else:
            x = checkpoint(run(chunk), x, **kwargs)
    return x


# ------------------------------------------------------------------ report

class _Sites(Interpreter):
    def __init__(self):
        self.nodes = []

    def process(self, prim, args, params):
        out = dispatch.lower(self, prim, args, params)
        if out._node is not None:
            out._node.site = dispatch.user_frame()
            self.nodes.append(out._node)
        return out


class SavedTensorsReport:
    """What backward keeps alive after a forward pass: one row per recorded op."""

    def __init__(self, rows, total_bytes):
        self.rows = rows                # dicts: op, site, saved [(what, shape, dtype, bytes)]
        self.total_bytes = total_bytes  # each buffer counted once

    def __str__(self) -> str:
        lines = [f"{'op':<16} {'saved':<44} {'bytes':>12}  where"]
        for r in self.rows:
            saved = ", ".join(f"{w} {s} {d}" for w, s, d, _ in r["saved"]) or "-"
            lines.append(f"{r['op']:<16} {saved[:44]:<44} {r['bytes']:>12,}  {r['site']}")
        lines.append(f"total: {self.total_bytes:,} bytes in {len(self.rows)} ops "
                     f"(shared buffers counted once)")
        return "\n".join(lines)

    __repr__ = __str__


def saved_tensors_report(fn, *args, **kwargs) -> SavedTensorsReport:
    """Run ``fn`` eagerly with recording on and report, per op, the tensors it saved for
    backward (inputs and outputs its vjp reads), their bytes and the user's line."""
    sites = _Sites()
    with dispatch.enable_grad(), interpreter(sites):
        fn(*args, **kwargs)
    rows, seen, total = [], set(), 0
    for node in sites.nodes:
        saved = [(f"in{i}", tuple(x.shape), str(x.dtype), _base(x.data).nbytes, x.data)
                 for i, x in enumerate(node.inputs or ()) if isinstance(x, Tensor)]
        if node.out is not None:
            saved.append(("out", node.out.shape, str(node.out.dtype),
                          _base(node.out).nbytes, node.out))
        for *_, arr in saved:
            base = _base(arr)
            if id(base) not in seen:  # a view keeps its whole buffer alive
                seen.add(id(base))
                total += base.nbytes
        rows.append({"op": node.prim.name, "site": "%s:%d" % node.site,
                     "saved": [s[:4] for s in saved], "bytes": sum(s[3] for s in saved)})
    return SavedTensorsReport(rows, total)


def _base(arr) -> np.ndarray:
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr
