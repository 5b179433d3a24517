"""Differential tests: for every case of every primitive (tests/ops/cases*.py), the
compiled function equals eager chainrule — forward values, dtypes and shapes, and the
gradients of a weighted sum — through whatever ``compile.passes.PIPELINE`` holds.

``jit`` runs each signature's first call eagerly, so every check calls twice and compares
the second (compiled) result. The whole table runs the full pipeline with fused groups
on the NumPy kernel target (cheap to build); a subset whose backward passes are
elementwise chains runs again with every group a numba kernel (about 0.3 s to compile
each), in float64 and float32. Every stage of every compiled graph is checked to be
well formed.
"""
import numpy as np
import pytest

import chainrule as cr
from chainrule.compile import jit
from chainrule.compile.passes import PIPELINE
from chainrule.core.abstract import ShapedArray
from chainrule.core.dispatch import bind
from chainrule.core.primitive import PRIMITIVES, Primitive
from ops.test_primitives import ALL, DIFF, IDS, _diff_idx

DIFF_IDS = [f"{n}{c!r}" for n, c in DIFF]


TARGET_ENV = "CHAINRULE_FUSION_TARGET"  # forces the kernel target of fused groups


def passes(fuse: bool) -> dict:
    """The ``passes`` argument that turns fusion on or off (only names PIPELINE has)."""
    names = {name for name, _ in PIPELINE}
    return {} if fuse or "fuse" not in names else {"fuse": False}


def assert_well_formed(graph) -> None:
    """SSA and typing invariants every pass must keep: each Var defined once (a fused
    group's equation defines each of its outputs), before its uses; inputs are not
    constants; outputs are defined; a primitive's shape rule agrees with the shape and
    dtype its equation declares."""
    defined = set()
    for v in graph.inputs:
        assert v.const is None, f"graph input %{v.id} is a constant"
        assert v.id not in defined, f"graph input %{v.id} listed twice"
        defined.add(v.id)
    for e in graph.eqns:
        for v in e.ins:
            assert v.const is not None or v.id in defined, \
                f"{e.prim.name} -> %{e.out.id} reads %{v.id} before it is defined\n{graph}"
        outs = getattr(e.prim, "outs", None) or (e.out,)  # a fused group defines several
        assert outs[0] is e.out
        for v in outs:
            assert v.id not in defined, f"%{v.id} defined twice\n{graph}"
            assert v.const is None
            defined.add(v.id)
        if isinstance(e.prim, Primitive) and PRIMITIVES.get(e.prim.name) is e.prim:
            shape, dtype = e.prim.shape(*[ShapedArray(v.shape, v.dtype) for v in e.ins],
                                        **e.params)
            assert (tuple(shape), np.dtype(dtype)) == (e.out.shape, e.out.dtype), \
                f"{e.prim.name} -> %{e.out.id}: declared {e.out.type}, shape rule says " \
                f"{tuple(shape)} {np.dtype(dtype)}\n{graph}"
    for v in graph.outputs:
        assert v.const is not None or v.id in defined, f"output %{v.id} undefined\n{graph}"


def compiled_twice(fn, *args):
    """Call the jitted ``fn`` twice (the first call of a signature runs eagerly) and
    return the second, compiled, result after checking every stage of its graph."""
    fn(*args)
    out = fn(*args)
    assert len(fn.cache) == 1, "the second call of a signature must compile it"
    for _, graph in fn.lower(*args).stages:
        assert_well_formed(graph)
    return out


def assert_same(compiled, eager, dtype=np.float64, atol=None) -> None:
    """Same shape and dtype, values equal to rounding (``atol`` overrides the absolute
    tolerance, for sums whose order of addition may differ)."""
    assert isinstance(compiled, cr.Tensor)
    assert compiled.shape == eager.shape and compiled.dtype == eager.dtype, \
        f"compiled {compiled.shape} {compiled.dtype} != eager {eager.shape} {eager.dtype}"
    a, b = compiled.numpy(), eager.numpy()
    if a.dtype.kind != "f":
        np.testing.assert_array_equal(a, b)
    elif np.dtype(dtype) == np.float64:
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 if atol is None else atol)
    else:
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6 if atol is None else atol)


def _arrays(case, dtype):
    return [a.astype(dtype) if a.dtype.kind == "f" else a for a in case.args]


def check_forward(name, case, fuse, dtype=np.float64):
    prim = PRIMITIVES[name]
    arrays = case.args if name == "cast" else _arrays(case, dtype)
    xs = [cr.tensor(a) for a in arrays]
    eager = bind(prim, *xs, **case.params)
    f = jit(lambda *a: bind(prim, *a, **case.params), passes=passes(fuse))
    assert_same(compiled_twice(f, *xs), eager, dtype)


def check_grad(name, case, fuse, dtype=np.float64):
    prim = PRIMITIVES[name]
    xs = [cr.tensor(a) for a in _arrays(case, dtype)]
    out_shape = bind(prim, *xs, **case.params).shape
    w = cr.tensor(np.random.default_rng(3).standard_normal(out_shape).astype(dtype))
    n = len(xs)

    def loss(*a):  # the last argument weighs the output, so every element matters
        return (bind(prim, *a[:n], **case.params) * a[n]).sum()

    g = cr.grad(loss, argnums=_diff_idx(case))
    eager = g(*xs, w)
    compiled = compiled_twice(jit(g, passes=passes(fuse)), *xs, w)
    assert len(compiled) == len(eager)
    for c, e in zip(compiled, eager):
        assert_same(c, e, dtype)


@pytest.fixture
def numpy_kernels(monkeypatch):
    monkeypatch.setenv(TARGET_ENV, "numpy")


@pytest.mark.parametrize("name,case", ALL, ids=IDS)
def test_forward_equals_eager(name, case, numpy_kernels):
    check_forward(name, case, fuse=True)


@pytest.mark.parametrize("name,case", DIFF, ids=DIFF_IDS)
def test_grad_equals_eager(name, case, numpy_kernels):
    check_grad(name, case, fuse=True)


# One (2, 3)-shaped case per family whose backward is an elementwise chain that fusion
# groups: transcendental, rational, piecewise, selection, and a reduction and matmul
# between fused groups.
FUSED = ["tanh", "sigmoid", "softplus", "erf", "pow", "div", "maximum", "where", "sum",
         "matmul", "log_softmax"]
FUSED_CASES = [next((n, c) for n, c in DIFF if n == name and c.args[0].shape == (2, 3))
               for name in FUSED]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,case", FUSED_CASES, ids=[n for n, _ in FUSED_CASES])
def test_grad_on_numba_kernels_equals_eager(name, case, dtype, monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setenv(TARGET_ENV, "numba")
    check_grad(name, case, fuse=True, dtype=dtype)


def test_a_large_broadcasting_group_on_numba_kernels(monkeypatch):
    """A group big enough for the parallel loop, reading operands broadcast along
    different axes: a bias (W,) and a (B, 1, W) plane against (B, C, W)."""
    pytest.importorskip("numba")
    monkeypatch.setenv(TARGET_ENV, "numba")
    rng = np.random.default_rng(5)
    xs = [cr.tensor(rng.standard_normal(s).astype(np.float32))
          for s in ((16, 8, 256), (256,), (16, 1, 256))]

    def f(x, b, r):
        return (cr.tanh(x * r + b) * cr.sigmoid(x) - b * r).sum()

    g = cr.grad(f, argnums=(0, 1, 2))
    for c, e in zip(compiled_twice(jit(g), *xs), g(*xs)):  # b's gradient sums 128 rows
        assert_same(c, e, np.float32, atol=1e-6 * float(np.abs(e.numpy()).max()))
