"""Kernels for fused elementwise groups: one description, pluggable targets.

The fusion pass (``passes/fuse.py``) turns a group of elementwise equations into ONE
equation whose primitive is a :class:`FusedGroup`. The group describes its members in
target-independent terms (a :class:`KernelSpec`: the member ops with their argument
references, dtypes and params, the iteration :class:`Layout`, which members leave the
group) and asks a *target* to turn that into a kernel ``kernel(outs, ins)`` that writes
every group output in one sweep:

* ``numba`` (``codegen/numba_target.py``): Python source generated from a table of
  scalar templates per primitive, compiled with ``@njit``: one SIMD loop that writes
  every output, its rows spread over all cores.
* ``numpy`` (``codegen/numpy_target.py``): the members as ufunc calls with ``out=``
  buffers over cache-sized chunks, so intermediates never leave the cache.

A CuPy target would be one more module with a template table and a ``build(spec, name)``.
Kernels are cached by their generated source (which spells the ops, the dtypes of the
constants and the broadcast pattern; numba adds one specialization per input dtypes),
so equal groups in different graphs share one compilation.

Target choice: ``CHAINRULE_FUSION_TARGET=numba|numpy`` forces one; otherwise ``auto``
picks numba (``pip install 'chainrule[jit]'``) for groups of at least
``NUMBA_MIN_SIZE`` elements and NumPy for smaller ones, where a compiled loop gains
nothing over ufuncs on cache-resident data and would cost compile time. Large kernels
run on ``THREADS`` threads: ``CHAINRULE_NUM_THREADS``, else ``OMP_NUM_THREADS``, else
every core.
"""
from __future__ import annotations

import concurrent.futures
import copy
import importlib
import os
import threading

import numpy as np

from ...core.primitive import PRIMITIVES
from ..ir import Eqn, Var

__all__ = ["FusedGroup", "KernelSpec", "Layout", "TARGETS", "register_target", "target_for",
           "fusible", "eqn_outs", "kernel_stats", "parallel_for", "OPS", "ENV",
           "NUMBA_MIN_SIZE", "THREADS"]

ENV = "CHAINRULE_FUSION_TARGET"
NUMBA_MIN_SIZE = 1 << 16


def _threads() -> int:
    """Kernel threads: ``CHAINRULE_NUM_THREADS``, else ``OMP_NUM_THREADS`` (as PyTorch
    reads it), else every core."""
    for name in ("CHAINRULE_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


THREADS = _threads()  # large kernels split their rows over this many threads

# ------------------------------------------------------------------ fusible ops
# op -> dtype rule. float: one float dtype in and out; arith: one numeric dtype in and
# out; cmp: one dtype in, bool out; logic: any supported dtypes in, bool out; fpred:
# float in, bool out; where: bool condition, values of the output's dtype; cast: any.
OPS = {
    **dict.fromkeys("exp log log1p expm1 sqrt sin cos tanh sigmoid softplus erf div pow"
                    .split(), "float"),
    **dict.fromkeys("neg abs sign relu add sub mul maximum minimum".split(), "arith"),
    **dict.fromkeys("eq ne lt le gt ge".split(), "cmp"),
    **dict.fromkeys("logical_and logical_or logical_not".split(), "logic"),
    **dict.fromkeys("isnan isinf isfinite".split(), "fpred"),
    "where": "where",
    "cast": "cast",
}
FLOATS = frozenset(map(np.dtype, ["float32", "float64"]))
NUMERIC = FLOATS | frozenset(map(np.dtype, ["int32", "int64"]))
SUPPORTED = NUMERIC | {np.dtype(bool)}
_BOOL = np.dtype(bool)


def _dtypes_ok(kind: str, ins: list, out: np.dtype) -> bool:
    if kind == "float":
        return out in FLOATS and all(d == out for d in ins)
    if kind == "arith":
        return out in NUMERIC and all(d == out for d in ins)
    if kind == "cmp":
        return out == _BOOL and ins[0] in SUPPORTED and all(d == ins[0] for d in ins)
    if kind == "logic":
        return out == _BOOL and all(d in SUPPORTED for d in ins)
    if kind == "fpred":
        return out == _BOOL and ins[0] in FLOATS
    if kind == "where":
        return ins[0] == _BOOL and out in SUPPORTED and ins[1] == out and ins[2] == out
    return ins[0] in SUPPORTED and out in SUPPORTED  # cast


def fusible(e: Eqn) -> bool:
    """Whether ``e`` can be a member of a fused group: a registered elementwise primitive
    (not a custom function's own primitive of the same name) on supported dtypes."""
    kind = OPS.get(e.prim.name)
    return (kind is not None and PRIMITIVES.get(e.prim.name) is e.prim and e.out.nbytes > 0
            and _dtypes_ok(kind, [v.dtype for v in e.ins], e.out.dtype))


# ------------------------------------------------------------------ layout

class Layout:
    """A group's iteration space: its shape with size-1 axes dropped and neighbouring axes
    merged wherever every input spans both or neither. ``dims`` are the merged sizes;
    ``spans[k]`` says which of them input ``k`` covers (it broadcasts along the others);
    ``materialize[k]`` marks an input whose covered axes are not one contiguous run (say
    (B, 1, W) against (B, C, W)), which kernels read after ``np.broadcast_to`` as a full
    input."""

    def __init__(self, shape: tuple, in_shapes: list):
        self.shape = tuple(shape)
        self.materialize = [False] * len(in_shapes)
        shapes = list(in_shapes)
        while True:
            self.dims, self.spans = self._merge(shapes)
            bad = [k for k, s in enumerate(self.spans) if not _run(s)]
            if not bad:
                break
            for k in bad:
                self.materialize[k] = True
                shapes[k] = self.shape

    def _merge(self, shapes):
        nd = len(self.shape)
        dims: list = []
        cols: list = []
        for d, size in enumerate(self.shape):
            if size == 1:
                continue
            col = tuple(d - (nd - len(s)) >= 0 and s[d - (nd - len(s))] != 1 for s in shapes)
            if cols and cols[-1] == col:
                dims[-1] *= size
            else:
                dims.append(size)
                cols.append(col)
        spans = [tuple(c[k] for c in cols) for k in range(len(shapes))]
        return tuple(dims), spans

    def block(self, k: int) -> tuple | None:
        """(lo, hi): the run of merged axes input ``k`` covers; None for a scalar."""
        s = self.spans[k]
        if not any(s):
            return None
        lo = s.index(True)
        return lo, lo + sum(s)

    def canonical(self, k: int) -> tuple:
        """The shape input ``k`` is reshaped to: merged dims, 1 where it broadcasts."""
        return tuple(n if p else 1 for n, p in zip(self.dims, self.spans[k]))

    @property
    def size(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))


def _run(flags: tuple) -> bool:
    """True if the set flags form one contiguous run (or none are set)."""
    idx = [i for i, f in enumerate(flags) if f]
    return not idx or idx[-1] - idx[0] + 1 == len(idx)


# ------------------------------------------------------------------ the spec

class KernelSpec:
    """What a target compiles: member ops over inputs and earlier members.

    ``members[j] = (op, args, params, dtype)`` where each arg is ``("in", k)`` (group
    input ``k``) or ``("m", i)`` (member ``i``'s value); ``outputs`` lists the members
    whose values leave the group, in output order; ``consts[k]`` is the value of input
    ``k`` when it is a scalar constant (targets may specialize on it, e.g. ``x ** 2``).
    ``aliases`` holds (input k, output m) pairs where output array m *is* input array k
    (a value computed in place of the one it replaces): a target reads such an input
    through the output, so the compiler sees one array, not two that might overlap."""

    def __init__(self, members: tuple, in_dtypes: tuple, outputs: tuple, layout: Layout,
                 consts: tuple, aliases: tuple = ()):
        self.members = members
        self.in_dtypes = in_dtypes
        self.outputs = outputs
        self.layout = layout
        self.consts = consts
        self.aliases = aliases

    def aliased(self, aliases: tuple) -> "KernelSpec":
        return KernelSpec(self.members, self.in_dtypes, self.outputs, self.layout,
                          self.consts, aliases)


# ------------------------------------------------------------------ targets

# name -> module path; a target module defines ``available() -> bool`` and
# ``build(spec, name) -> kernel``; ``kernel(outs, ins)`` gets the group's input arrays
# at their own shapes (broadcastable to the group's; ``materialize`` ones already
# broadcast) and C-contiguous output arrays of the group's shape, and writes them all.
TARGETS: dict = {"numba": __name__ + ".numba_target", "numpy": __name__ + ".numpy_target"}
_modules: dict = {}


def register_target(name: str, module: str) -> None:
    """Add a target: ``module`` (importable path) provides ``available`` and ``build``."""
    TARGETS[name] = module
    _modules.pop(name, None)


def _target(name: str):
    mod = _modules.get(name)
    if mod is None:
        if name not in TARGETS:
            raise ValueError(f"fuse: unknown kernel target {name!r}; the targets are "
                             f"{sorted(TARGETS)} (or 'auto')")
        mod = _modules[name] = importlib.import_module(TARGETS[name])
    return mod


def target_for(size: int, target: str | None = None) -> str:
    """The target for a group of ``size`` elements: ``target`` if given (``"auto"``
    means choose), else the ``CHAINRULE_FUSION_TARGET`` environment variable, else
    numba for groups of at least ``NUMBA_MIN_SIZE`` elements when numba is installed
    and NumPy otherwise. A named target that is not installed raises ImportError."""
    name = target or os.environ.get(ENV) or "auto"
    if name != "auto":
        if not _target(name).available():
            raise ImportError(f"fuse: the {name!r} kernel target needs its package: "
                              f"pip install 'chainrule[jit]'")
        return name
    if size >= NUMBA_MIN_SIZE and _target("numba").available():
        return "numba"
    return "numpy"


# ------------------------------------------------------------------ threads
# Both targets split large kernels over one shared pool of Python threads: numba kernels
# are compiled serial with ``nogil=True`` and NumPy's ufuncs release the GIL. (numba's
# own ``parallel=True`` ran a 1M-element kernel 50x slower here under its default OpenMP
# layer, next to OpenBLAS's spinning threads, and its workqueue layer is not safe to
# call from several threads.)
_executor = None


def parallel_for(fn, n: int, parts: int) -> None:
    """``fn(start, stop)`` over ``[0, n)`` in up to ``parts`` (at most ``THREADS``)
    contiguous pieces, the first in this thread and the others in the pool."""
    global _executor
    parts = min(parts, THREADS, n)
    if parts <= 1:
        fn(0, n)
        return
    if _executor is None:
        _executor = concurrent.futures.ThreadPoolExecutor(THREADS, "chainrule-kernel")
    bounds = [n * k // parts for k in range(parts + 1)]
    jobs = [_executor.submit(fn, bounds[k], bounds[k + 1]) for k in range(1, parts)]
    try:
        fn(0, bounds[1])
    finally:
        for job in jobs:
            job.result()


_stats = {"kernels": 0, "compile_seconds": 0.0, "log": []}
_lock = threading.Lock()


def record_compile(name: str, seconds: float) -> None:
    """Targets call this once per compiled kernel."""
    with _lock:
        _stats["kernels"] += 1
        _stats["compile_seconds"] += seconds
        _stats["log"].append((name, seconds))


def kernel_stats() -> dict:
    """Compiled kernels so far: ``kernels`` (count), ``compile_seconds`` (total) and
    ``log`` [(group name, seconds)]."""
    with _lock:
        return {"kernels": _stats["kernels"], "compile_seconds": _stats["compile_seconds"],
                "log": list(_stats["log"])}


# ------------------------------------------------------------------ the group

class FusedGroup:
    """The primitive of a fused equation: elementwise ``members`` (the original
    equations, in order) computed in one kernel over the group's shape.

    ``inputs`` are the Vars the kernel reads (what the equation's ``ins`` hold; inputs
    that reached members through ``broadcast_to`` are read at their own, smaller shape);
    ``operand`` maps each member input Var id to the group input it reads; ``outs`` are
    the member Vars used outside the group, ``outs[0]`` being the equation's ``out``.
    ``impl(*arrays)`` returns one array, or a tuple when there are several outputs;
    ``impl_into(out, *arrays)`` writes into given arrays (a tuple, None for any to
    allocate, when there are several)."""

    def __init__(self, members: list, inputs: list, operand: dict, outs: list,
                 shape: tuple, target: str | None = None):
        self.members = list(members)
        self.inputs = list(inputs)
        self.operand = dict(operand)
        self.outs = tuple(outs)
        self.shape = tuple(shape)
        idx = {v.id: k for k, v in enumerate(self.inputs)}
        pos = {e.out.id: j for j, e in enumerate(self.members)}
        specs = []
        for e in self.members:
            srcs = [self.operand.get(v.id, v) for v in e.ins]
            args = tuple(("m", pos[v.id]) if v.id in pos else ("in", idx[v.id]) for v in srcs)
            specs.append((e.prim.name, args, e.params, e.out.dtype))
        self.layout = Layout(self.shape, [v.shape for v in self.inputs])
        consts = tuple(scalar_const(v) for v in self.inputs)
        self.spec = KernelSpec(tuple(specs), tuple(v.dtype for v in self.inputs),
                               tuple(pos[v.id] for v in self.outs), self.layout, consts)
        self.target = target_for(self.layout.size, target)
        names = [e.prim.name for e in self.members]
        shown = names if len(names) <= 12 else names[:11] + [f"...+{len(names) - 11}"]
        self.name = f"fused[{','.join(shown)}]"
        self._kernels: dict = {}  # aliases -> kernel
        self._any_materialized = any(self.layout.materialize)
        self.order = "C"  # of the outputs; "F": the kernel runs over the transposed arrays

    def transposed(self) -> "FusedGroup":
        """This group writing (and allocating) F-ordered outputs, as eager's ufuncs do for
        F-ordered operands (``passes/order.py``): its kernel runs over the transposed
        arrays, where they are C-ordered, with inputs read through a broadcast turned
        along (a bias row becomes a column)."""
        g = copy.copy(self)
        nd = len(self.shape)
        g.layout = Layout(self.shape[::-1], [((1,) * (nd - len(v.shape)) + tuple(v.shape))[::-1]
                                             for v in self.inputs])
        g.spec = KernelSpec(self.spec.members, self.spec.in_dtypes, self.spec.outputs,
                            g.layout, self.spec.consts)
        g._kernels, g._any_materialized, g.order = {}, any(g.layout.materialize), "F"
        return g

    @classmethod
    def from_graph(cls, graph, target: str | None = None) -> "FusedGroup":
        """One group of all of ``graph``'s equations (each must be ``fusible``, all of
        one shape); its inputs are the graph's inputs and then the constants read, its
        outputs the graph's outputs. For tests and for building kernels by hand."""
        bad = [e.prim.name for e in graph.eqns if not fusible(e)]
        if bad or not graph.eqns:
            raise ValueError(f"FusedGroup.from_graph: not fusible: {bad or 'no equations'}")
        consts = {v.id: v for e in graph.eqns for v in e.ins if v.const is not None}
        return cls(graph.eqns, list(graph.inputs) + list(consts.values()), {},
                   graph.outputs, graph.eqns[-1].out.shape, target)

    @property
    def kernel(self):
        return self._kernel_for(())

    def _kernel_for(self, aliases: tuple):
        k = self._kernels.get(aliases)
        if k is None:
            spec = self.spec.aliased(aliases) if aliases else self.spec
            k = self._kernels[aliases] = _target(self.target).build(spec, self.name)
        return k

    def impl_into(self, out, *arrays):
        n = len(self.outs)
        given = (out,) if n == 1 else (out or (None,) * n)
        # an output given as one of the inputs (a donated buffer, numba target only)
        aliases = tuple((k, m) for m, o in enumerate(given) for k, a in enumerate(arrays)
                        if a is o) if out is not None and self.target == "numba" else ()
        flip = self.order == "F"
        if flip:  # the transposed problem, where F-ordered arrays are C-ordered
            nd = len(self.shape)
            arrays = [a.reshape((1,) * (nd - a.ndim) + a.shape).T for a in arrays]
            given = [None if o is None else o.T for o in given]
        shape = self.layout.shape
        outs = [o if o is not None else np.empty(shape, v.dtype)
                for o, v in zip(given, self.outs)]
        mat = self.layout.materialize
        ins = [np.broadcast_to(a, shape) if m else a for a, m in zip(arrays, mat)] \
            if self._any_materialized else arrays
        self._kernel_for(aliases)(outs, ins)
        if flip:
            outs = [o.T for o in outs]
        return outs[0] if n == 1 else tuple(outs)

    def impl(self, *arrays):
        return self.impl_into(None, *arrays)

    def listing(self) -> list:
        """The member equations, one line each (``Graph.__str__`` prints them under the
        fused equation). Operands read through a broadcast show their own shape."""
        leaving = {v.id for v in self.outs}
        lines = [f"# {self.target} kernel over [{','.join(map(str, self.shape))}]"
                 f"{' (F-ordered)' if self.order == 'F' else ''}, "
                 f"{len(self.members)} ops, outputs "
                 + ", ".join(f"%{v.id}" for v in self.outs)]
        for e in self.members:
            args = []
            for v in e.ins:
                src = self.operand.get(v.id, v)
                c = scalar_const(src)
                name = repr(c) if c is not None else f"%{src.id}"
                args.append(name if src.shape == self.shape or c is not None
                            else f"{name}:{src.type}")
            ps = ", ".join(f"{k}={np.dtype(v).name if k == 'dtype' else v}"
                           for k, v in e.params.items())
            mark = "  (out)" if e.out.id in leaving else ""
            lines.append(f"%{e.out.id}: {e.out.type} = {e.prim.name}"
                         f"{'[' + ps + ']' if ps else ''} {' '.join(args)}{mark}")
        return lines

    def __repr__(self) -> str:
        return f"<{self.name} on {self.target}>"


def eqn_outs(e: Eqn) -> tuple:
    """Every Var an equation defines: a fused group's outputs, else ``(e.out,)``."""
    return getattr(e.prim, "outs", None) or (e.out,)


def scalar_const(v: Var):
    """The Python value of a one-element constant Var, else None."""
    return v.const.reshape(-1)[0].item() if v.const is not None and v.const.size == 1 else None
