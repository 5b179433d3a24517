"""Kernel generation for fused groups: every fusible primitive on both targets, in float32
and float64, with NaN/inf/signed-zero inputs, against the eager primitive's impl;
broadcast layouts; target choice; kernel caching.

Each numba kernel costs a compilation, so the ops are tested as a few wide groups (one
kernel computes every unary op of an input as separate outputs) rather than one group
per op. The numba tests skip only when numba is missing.
"""
import numpy as np
import pytest

import chainrule as cr
from chainrule.compile import make_graph
from chainrule.compile.codegen import (ENV, NUMBA_MIN_SIZE, FusedGroup, Layout, OPS,
                                       kernel_stats, numba_target, target_for)
from chainrule.compile.execute import Program
from chainrule.compile.passes.fuse import fuse
from chainrule.core.dispatch import bind
from chainrule.core.primitive import PRIMITIVES

UNARY_FLOAT = ["neg", "abs", "sign", "relu", "exp", "log", "log1p", "expm1", "sqrt", "sin",
               "cos", "tanh", "sigmoid", "softplus", "erf"]
BINARY_FLOAT = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or"]
PREDICATES = ["isnan", "isinf", "isfinite", "logical_not"]
TARGETS = ["numpy", "numba"]
SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-30, -1e-30, 0.5493, 0.625,
           20.0, -20.0, 88.5, -88.5, 700.0, -740.0, 1e-8, 3.0, -2.5]


@pytest.fixture(params=TARGETS)
def target(request):
    if request.param == "numba":
        pytest.importorskip("numba")
    return request.param


def prim(name, *xs, **params):
    return bind(PRIMITIVES[name], *xs, **params)


def group_of(fn, *arrays, target):
    """The fused group of all of ``fn``'s equations (a graph of elementwise ops only)."""
    graph = make_graph(fn)(*[cr.tensor(a) for a in arrays])
    return FusedGroup.from_graph(graph, target=target)


def check(got, want, dtype, target, exact=False):
    """Equal to the eager impl: exactly for the NumPy target (same ufuncs), within a few
    ulp for numba (its exp/log/tanh are its own); NaN and inf where eager has them."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if target == "numpy" or exact or want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
    else:
        rtol = 1e-6 if np.dtype(dtype) == np.float32 else 4e-15
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


def inputs(dtype, n=2048):
    """Special values first, then a spread of magnitudes."""
    rng = np.random.default_rng(0)
    m = n - len(SPECIAL)
    rest = rng.standard_normal(m) * rng.choice([1e-3, 0.3, 1, 4, 30], m)
    return np.concatenate([SPECIAL, rest]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_ops(target, dtype):
    x = inputs(dtype)
    g = group_of(lambda x: tuple(prim(n, x) for n in UNARY_FLOAT), x, target=target)
    assert g.target == target and len(g.outs) == len(UNARY_FLOAT)
    with np.errstate(all="ignore"):
        for name, got in zip(UNARY_FLOAT, g.impl(x)):
            check(got, PRIMITIVES[name].impl(x), dtype, target,
                  exact=name in ("neg", "abs", "sign", "relu", "sqrt"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_tanh_ulp_and_special_values(dtype):
    """The numba tanh over a dense sweep of [-12, 12] and every scale: within 2 ulp of the
    exact result (float128 where the platform has it); -0.0, +-inf, NaN and the clamp
    point exactly as NumPy gives them."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    x = np.concatenate([np.linspace(-12, 12, 400_001), SPECIAL, [9.0, 10.0, 19.0, 40.0],
                        rng.standard_normal(50_000) * rng.choice([1e-6, 1e-3, 0.3, 4], 50_000)
                        ]).astype(dtype)
    got = group_of(lambda x: prim("tanh", x), x, target="numba").impl(x)
    exact = np.tanh(x.astype(np.longdouble))
    want = exact.astype(dtype)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[ok]), np.signbit(want[ok]))
    ulps = np.abs(got[ok] - exact[ok]) / np.spacing(np.abs(want[ok])).astype(np.longdouble)
    assert float(ulps.max()) <= 2.0
    assert got[x == np.inf].tolist() == [1.0] and got[x == -np.inf].tolist() == [-1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_compare_where_cast(target, dtype):
    """Arithmetic, NaN-propagating maximum/minimum, comparisons, logic, predicates,
    where and casts, over every pair of special values plus random pairs."""
    s = np.array(SPECIAL, dtype)
    a = np.concatenate([np.repeat(s, len(s)), inputs(dtype, 600)]).astype(dtype)
    b = np.concatenate([np.tile(s, len(s)), inputs(dtype, 600)[::-1]]).astype(dtype)
    c = a > b

    def fn(a, b, c):
        outs = [prim(n, a, b) for n in BINARY_FLOAT + COMPARE]
        outs += [prim(n, a) for n in PREDICATES]
        outs += [prim("where", c, a, b), prim("cast", a, dtype=np.dtype(np.int32)),
                 prim("cast", a, dtype=np.dtype(bool)), prim("cast", c, dtype=np.dtype(dtype)),
                 prim("cast", a, dtype=np.dtype(np.float32 if dtype == np.float64
                                                else np.float64))]
        return tuple(outs)
    g = group_of(fn, a, b, c, target=target)
    names = BINARY_FLOAT + COMPARE + PREDICATES + ["where", "cast_i32", "cast_bool",
                                                     "cast_from_bool", "cast_float"]
    finite = np.isfinite(a) & (np.abs(a) < 2e9)  # float -> int32 is undefined elsewhere
    with np.errstate(all="ignore"):
        want = fn(*[cr.tensor(v) for v in (a, b, c)])
        for name, got, w in zip(names, g.impl(a, b, c), want):
            w = w.numpy()
            if name == "cast_i32":
                got, w = got[finite], w[finite]
            check(got, w, dtype, target, exact=name != "pow" and name != "div")


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_ops_wrap_like_numpy(target, dtype):
    info = np.iinfo(dtype)
    a = np.array([0, 1, -1, 7, info.max, info.min, info.max - 3, -5, 123456, 2], dtype)
    b = np.array([3, -2, info.max, 9, 1, -1, 10, info.min, -654321, 0], dtype)

    def fn(a, b):
        outs = [prim(n, a, b) for n in ("add", "sub", "mul", "maximum", "minimum", "lt", "eq")]
        outs += [prim(n, a) for n in ("neg", "abs", "sign", "relu")]
        outs += [prim("where", prim("gt", a, b), a, b), prim("cast", a, dtype=np.dtype("f8"))]
        return tuple(outs)
    g = group_of(fn, a, b, target=target)
    with np.errstate(all="ignore"):
        for got, want in zip(g.impl(a, b), fn(cr.tensor(a), cr.tensor(b))):
            np.testing.assert_array_equal(got, want.numpy())
            assert got.dtype == want.dtype


def test_fusible_dtype_rules():
    """Members need the dtypes their kernels assume: no int division or float ops on
    ints, no arithmetic on bools, no unsupported dtypes, no custom primitives."""
    def member(fn, *arrays):
        return OPS.get(make_graph(fn)(*[cr.tensor(a) for a in arrays]).eqns[-1].prim.name)
    from chainrule.compile.codegen import fusible
    i, f, bo = np.arange(3), np.ones(3), np.ones(3, bool)

    def last(fn, *arrays):
        return fusible(make_graph(fn)(*[cr.tensor(a) for a in arrays]).eqns[-1])
    assert last(lambda x: prim("exp", x), f)
    assert not last(lambda x: prim("exp", x), i)           # exp(int) -> float
    assert not last(lambda x, y: prim("div", x, y), i, i)  # true division of ints
    assert not last(lambda x, y: prim("add", x, y), bo, bo)
    assert last(lambda x, y: prim("logical_and", x, y), bo, f)
    assert not last(lambda x: prim("exp", x), f.astype(np.float16))
    assert member(lambda x: prim("tanh", x), f) == "float"


# ------------------------------------------------------------------ broadcast layouts

def bias_fn(x, b, r, s):
    return cr.relu(x * r + b) - s  # (B, C) with (C,), (B, 1) and a scalar


LAYOUTS = [
    ("suffix, rows, scalar", bias_fn,
     [(64, 300), (300,), (64, 1), ()]),  # 19200 elements: the parallel loop
    ("middle axis", lambda x, c: cr.tanh(x) * c + x, [(2, 3, 4, 5), (3, 1, 1)]),
    ("non-contiguous span", lambda x, m: cr.exp(x) * m - x, [(2, 3, 4), (2, 1, 4)]),
    ("transposed input", lambda x, y: cr.sigmoid(x.T) * y + 1.0, [(5, 7), (7, 5)]),
    ("zero-dimensional", lambda x, y: cr.exp(x) * y - x, [(), ()]),
]


# numba compiles one kernel per layout and dtype: float64 only for the first layout
LAYOUT_CASES = [(target, dtype, case) for case in LAYOUTS
                for target in ("numpy", "numba") for dtype in (np.float32, np.float64)
                if target == "numpy" or dtype == np.float32 or case is LAYOUTS[0]]


@pytest.mark.parametrize("target,dtype,case", LAYOUT_CASES,
                         ids=[f"{t}-{np.dtype(d).name}-{c[0]}" for t, d, c in LAYOUT_CASES])
def test_broadcast_layouts(target, dtype, case):
    name, fn, shapes = case
    if target == "numba":
        pytest.importorskip("numba")
    rng = np.random.default_rng(1)
    xs = [cr.tensor(rng.standard_normal(s).astype(dtype)) for s in shapes]
    graph = make_graph(fn)(*xs)
    fused = fuse(graph, target=target)
    groups = [e.prim for e in fused.eqns if hasattr(e.prim, "outs")]
    assert len(groups) == 1 and groups[0].target == target
    assert "broadcast_to" not in fused.op_counts()
    arrays = [x.data for x in xs]
    got = Program(fused).run(arrays)[0]
    want = Program(graph).run(arrays)[0]
    eager = fn(*xs).numpy()
    check(got, want, dtype, target)
    np.testing.assert_allclose(got, eager, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_numpy_target_chunks_in_threads():
    """A group of many chunks (600K elements, > 8 chunks of 64K) split over threads, with
    a bias, a row statistic and a where: equal to the unfused graph bit for bit."""
    rng = np.random.default_rng(2)
    x, b, r = (cr.tensor(rng.standard_normal(s), dtype=cr.float32)
               for s in [(600, 1000), (1000,), (600, 1)])

    def f(x, b, r):
        y = cr.tanh(x * r + b)
        return cr.where(y > 0.2, y * y, cr.sigmoid(x)) - r
    graph = make_graph(f)(x, b, r)
    fused = fuse(graph, target="numpy")
    (group,) = [e.prim for e in fused.eqns if hasattr(e.prim, "outs")]
    assert len(group.kernel.tiles) > 8
    arrays = [x.data, b.data, r.data]
    np.testing.assert_array_equal(Program(fused).run(arrays)[0], Program(graph).run(arrays)[0])


def test_layout_merges_axes():
    lay = Layout((8, 3, 4, 5), [(8, 3, 4, 5), (3, 1, 1), (), (8, 1, 1, 1), (8, 1, 4, 1)])
    assert lay.dims == (8, 3, 20)  # the last input is read materialized: it spans all
    assert [lay.block(k) for k in range(5)] == [(0, 3), (1, 2), None, (0, 1), (0, 3)]
    assert lay.materialize == [False, False, False, False, True]
    lay = Layout((8, 3, 4, 5), [(8, 3, 4, 5), (3, 1, 1), ()])
    assert lay.dims == (8, 3, 20) and lay.canonical(1) == (1, 3, 1)
    assert Layout((1, 6, 1), [(6, 1)]).dims == (6,)


def test_numba_source_indexes_without_division():
    """A bias reads b[j] in the inner loop, a row statistic is loaded once per row, a
    scalar once per call (the source is generated without numba)."""
    x, b, r, s = (cr.tensor(np.ones(sh, np.float32)) for sh in [(64, 300), (300,), (64, 1), ()])
    fused = fuse(make_graph(bias_fn)(x, b, r, s), target="numpy")
    group = next(e.prim for e in fused.eqns if hasattr(e.prim, "outs"))
    src, split = numba_target.source(group.spec)
    assert split == 1
    assert "//" not in src and "%" not in src
    assert "for o in range(start, stop)" in src and "for j in range(C)" in src
    body = src.split("for j in range(C)")[1]
    assert "[j]" in body and "[i]" in body
    assert "[o]" in src.split("for j in range(C)")[0]


def test_numba_source_hoists_loop_invariant_members():
    """Members of scalars only are computed once before the loop, and a one-element group
    has no loop at all (LLVM's vectorizer took minutes on deep loop-invariant DAGs)."""
    def f(x, s):
        u = cr.tanh(cr.broadcast_to(s, x.shape) * 2 + 1)  # x's shape, one value
        for _ in range(6):
            u = cr.where(u > 0.5, u * u, u + 1)
        return x * u
    for shape in [(50,), ()]:
        x, s = cr.tensor(np.ones(shape)), cr.tensor(np.ones(()))
        group = next(e.prim for e in fuse(make_graph(f)(x, s), target="numpy").eqns
                     if hasattr(e.prim, "outs"))
        src = numba_target.source(group.spec)[0]
        head, _, loop = src.partition("for i in")
        assert "_tanh64" in head and loop.count("=") == (3 if shape else 0)  # load, mul, store


def test_pow_by_constant_uses_products(target):
    x = np.linspace(-3, 3, 101).astype(np.float32)
    graph = make_graph(lambda x: x ** 3 + x ** 2 * x ** -1)(cr.tensor(x))
    fused = fuse(graph, target=target)
    group = next(e.prim for e in fused.eqns if hasattr(e.prim, "outs"))
    if target == "numba":
        assert "np.power" not in numba_target.source(group.spec)[0]
    got = Program(fused).run([x])[0]
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(got, Program(graph).run([x])[0], rtol=1e-6)


# ------------------------------------------------------------------ targets, caching

def test_target_choice(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert target_for(10) == "numpy"
    big = "numba" if numba_target.available() else "numpy"
    assert target_for(NUMBA_MIN_SIZE) == big
    monkeypatch.setenv(ENV, "numpy")
    assert target_for(NUMBA_MIN_SIZE) == "numpy"
    assert target_for(10, "auto") == "numpy"
    with pytest.raises(ValueError, match="unknown kernel target 'cuda'"):
        target_for(10, "cuda")
    monkeypatch.setattr(numba_target, "_numba", False)  # as if numba were not installed
    monkeypatch.delenv(ENV)
    assert target_for(NUMBA_MIN_SIZE) == "numpy"
    with pytest.raises(ImportError, match=r"chainrule\[jit\]"):
        target_for(10, "numba")


def test_equal_groups_share_one_compiled_kernel():
    pytest.importorskip("numba")
    x = cr.tensor(np.linspace(-1, 1, 50))
    fn = lambda x: cr.tanh(x) * cr.exp(-x) + 0.25  # noqa: E731
    first = fuse(make_graph(fn)(x), target="numba")
    Program(first).run([x.data])
    before = kernel_stats()["kernels"]
    again = fuse(make_graph(fn)(x), target="numba")  # a new trace: new Vars, same structure
    out = Program(again).run([x.data])[0]
    assert kernel_stats()["kernels"] == before
    np.testing.assert_allclose(out, fn(x).numpy(), rtol=1e-14)
