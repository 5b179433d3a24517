"""The graph passes fold, cse, simplify, safe and prune: where each must fire and where it
must not (op counts before and after), rewritten graph == original graph == eager, the
numerically safe rewrites against exact limits, the pipeline on an MLP training step."""
import importlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import chainrule as cr
from chainrule.compile import jit, make_graph
from chainrule.compile.execute import Program
from chainrule.compile.ir import Eqn, Graph, Var, constant
from chainrule.compile.passes import PIPELINE, cse, fold, prune, safe, simplify
from chainrule.compile.passes._rewrite import aval
from chainrule.compile.trace import trace
from chainrule.core.primitive import PRIMITIVES
from chainrule.tree import tree_flatten

fold_module = importlib.import_module("chainrule.compile.passes.fold")

R = np.random.default_rng(0)


def t(*shape, dtype=cr.float32):
    return cr.tensor(R.standard_normal(shape), dtype=dtype)


def run(graph, *args):
    return Program(graph).run([a.data if isinstance(a, cr.Tensor) else a for a in args])


def same(graph, new, *args, rtol=1e-6):
    """``new`` computes what ``graph`` computes, on ``args``."""
    for a, b in zip(run(graph, *args), run(new, *args)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


def traced(f, *args):
    """The raw graph of ``f`` on ``args`` and its input arrays (the tensor arguments, then
    the tensors the trace captured)."""
    leaves, _ = tree_flatten((args, {}))
    slots = [i for i, a in enumerate(leaves) if isinstance(a, cr.Tensor)]
    graph, captured, *_ = trace(f, args, {}, slots)
    return graph, [leaves[i].data for i in slots] + [c.data for c in captured]


def compiled(f, *args, **jit_kw):
    """``jit(f)(*args)`` through the compiled program (the first call runs eagerly)."""
    j = jit(f, **jit_kw)
    j(*args)
    out = j(*args)
    assert j.cache, "the call did not run compiled"
    return out


def node(eqns, name, *ins, **params):
    """Append ``name(*ins, **params)`` to a hand-built equation list; its result Var."""
    prim = PRIMITIVES[name]
    shape, dtype = prim.shape(*[aval(v) for v in ins], **params)
    out = Var(shape, dtype)
    eqns.append(Eqn(prim, ins, params, out))
    return out


def counts(graph, *names):
    c = graph.op_counts()
    return tuple(c.get(n, 0) for n in names)


# ------------------------------------------------------------------------- fold

def test_fold_evaluates_constant_chains():
    def f(x):
        c = cr.exp(cr.arange(4.0) * 0.5 + 1)  # constants only: computed at compile time
        return x * c
    x = t(3, 4)
    g = make_graph(f)(x)
    new = prune(fold(g))
    assert counts(g, "exp", "mul") == (1, 2)
    assert new.op_counts() == {"broadcast_to": 1, "mul": 1}  # x * broadcast(exp(...))
    np.testing.assert_allclose(new.eqns[0].ins[0].const, np.exp(np.arange(4) * 0.5 + 1),
                               rtol=1e-6)
    same(g, new, x)
    np.testing.assert_allclose(compiled(f, x).data, f(x).data, rtol=1e-6)


def test_fold_keeps_uniform_values_as_broadcast_scalars():
    def f(x):
        return x + cr.exp(cr.full((256, 256), 2.0))
    x = t(256, 256)
    new = fold(make_graph(f)(x))
    assert counts(new, "exp") == (0,)
    consts = [v.const for e in new.eqns for v in e.ins if v.const is not None]
    assert consts and all(c.size == 1 for c in consts)  # no 256x256 constant in memory
    np.testing.assert_allclose(run(new, x)[0], f(x).data, rtol=1e-6)
    simplified = prune(simplify(new))  # add broadcasts by itself: the broadcast goes
    assert simplified.op_counts() == {"add": 1}
    same(new, simplified, x)


def test_fold_respects_size_cap(monkeypatch):
    monkeypatch.setattr(fold_module, "FOLD_LIMIT", 4)

    def f(x):
        return x * (cr.arange(8.0) * 3) + (cr.arange(3.0) * 3).sum()
    x = t(8)
    g = make_graph(f)(x)
    new = fold(g)
    assert counts(g, "mul", "sum") == (3, 1)
    assert counts(new, "mul", "sum") == (2, 0)  # 8 elements stay at run time, 3 fold
    same(g, new, x)


def test_fold_leaves_inputs_and_outputs_alone():
    def f(x):
        return x * 2 + 1, cr.arange(3.0) * 2
    x = t(3)
    g = make_graph(f)(x)
    new = fold(g)
    assert new.op_counts() == g.op_counts()  # graph inputs are never constants
    assert all(v.const is None for v in new.outputs)
    a, b = run(new, x)[1], run(new, x)[1]
    assert a is not b and a.flags.writeable  # each call still gets a fresh array
    np.testing.assert_array_equal(a, [0, 2, 4])


def test_fold_keeps_signed_zeros_apart():
    x = Var((2,), np.float32)
    eqns = []
    z = node(eqns, "neg", constant(np.float32([0.0, -0.0])))  # [-0.0, 0.0]: not uniform
    g = Graph([x], eqns, [node(eqns, "div", x, z)])
    new = fold(g)
    assert counts(new, "neg") == (0,)
    np.testing.assert_array_equal(run(new, np.ones(2, np.float32))[0], [-np.inf, np.inf])


def test_fold_skips_what_fails_at_compile_time():
    eqns = []
    a = node(eqns, "matmul", constant(np.ones((2, 3), np.float32)),
             constant(np.ones((3, 2), np.float32)))
    g = Graph([], eqns, [node(eqns, "mul", a, a)])
    bad = Graph([], [Eqn(PRIMITIVES["reshape"], (constant(np.ones(6)),), {"shape": (4, 2)},
                         Var((4, 2), np.float64))], [])
    assert len(fold(bad)) == 1  # an impossible reshape is left for run time to report
    new = fold(g)
    assert counts(new, "matmul", "mul") == (0, 1)
    np.testing.assert_array_equal(run(new)[0], np.full((2, 2), 9.0, np.float32))


# -------------------------------------------------------------------------- cse

def test_cse_merges_duplicates():
    def f(x, w):
        return cr.tanh(x @ w) + cr.tanh(x @ w) + x @ w * 2 + 2 * (x @ w)
    x, w = t(4, 3), t(3, 5)
    g = make_graph(f)(x, w)
    new = cse(g)
    assert counts(g, "matmul", "tanh", "mul") == (4, 2, 2)
    assert counts(new, "matmul", "tanh", "mul") == (1, 1, 1)  # mul is commutative
    same(g, new, x, w)
    np.testing.assert_allclose(compiled(f, x, w).data, f(x, w).data, rtol=1e-6)


def test_cse_keeps_different_params_and_orders():
    def f(x):
        return x.sum(0) + x.sum(1) + x.sum(0, keepdim=True)[0] + (x - x.T).sum()
    x = t(3, 3)
    g = make_graph(f)(x)
    new = cse(g)
    assert counts(new, "sum", "sub") == counts(g, "sum", "sub") == (4, 1)
    same(g, new, x)


def test_cse_unifies_equal_small_constants():
    x = Var((3,), np.float32)
    eqns = []
    a = node(eqns, "add", x, constant(np.float32(2)))
    b = node(eqns, "add", x, constant(np.float32(2)))
    c = node(eqns, "add", x, constant(np.float32(-0.0)))  # -0.0 is not 0.0: stays
    d = node(eqns, "add", x, constant(np.float32(0.0)))
    g = Graph([x], eqns, [node(eqns, "mul", node(eqns, "mul", a, b), node(eqns, "mul", c, d))])
    new = prune(cse(g))
    assert counts(new, "add") == (3,)
    same(g, new, np.arange(3, dtype=np.float32))


def test_cse_never_aliases_outputs():
    def f(x):
        return x * 2, x * 2, (x * 2).sum()
    x = t(3)
    g = make_graph(f)(x)
    new = cse(g)
    assert counts(new, "mul") == (2,)  # the sum reads the first; each output owns its array
    a, b, _ = run(new, x)
    assert not np.may_share_memory(a, b)


# ------------------------------------------------------------------------ prune

def test_prune_drops_the_gradient_nobody_asked_for():
    def f(x, y):
        return (x * x).sum() + cr.exp(y).sum() * cr.tanh(y).sum()
    x, y = t(3), t(4)
    gx = cr.grad(f, argnums=0)
    g, inputs = traced(gx, x, y)
    new = prune(g)
    assert counts(g, "exp", "tanh") == (1, 1) and counts(new, "exp", "tanh") == (0, 0)
    assert len(new) < len(g)
    same(g, new, *inputs)
    np.testing.assert_allclose(compiled(gx, x, y).data, 2 * x.data, rtol=1e-6)


def test_prune_keeps_what_outputs_need():
    def f(x):
        return cr.tanh(x).sum(), cr.exp(x)
    x = t(3)
    g = make_graph(f)(x)
    assert prune(g).op_counts() == g.op_counts()


# --------------------------------------------------------------------- simplify

def test_simplify_identities():
    def f(x):
        y = ((x * 1 + 0) - 0) / 1
        y = -(-(y ** 1))
        return cr.tanh(1 * (0 + y))
    x = t(2, 3)
    g = make_graph(f)(x)
    new = prune(simplify(g))
    assert new.op_counts() == {"tanh": 1}
    same(g, new, x)
    np.testing.assert_allclose(compiled(f, x).data, f(x).data, rtol=1e-6)


def test_simplify_keeps_a_multiply_that_broadcasts_or_casts():
    x = Var((3,), np.float32)
    eqns = []
    a = node(eqns, "mul", x, constant(np.ones((2, 3), np.float32)))  # broadcasts x
    b = node(eqns, "mul", x, constant(np.float64(1)))                # promotes x
    c = node(eqns, "add", x, constant(np.zeros((2, 1), np.float32)))
    g = Graph([x], eqns, [a, b, c])
    new = simplify(g)
    assert new.op_counts() == g.op_counts()
    same(g, new, np.arange(3, dtype=np.float32))

    def h(x):  # traced: x is broadcast first; mul(broadcast(x), 1) is the broadcast
        return cr.tanh(x * cr.ones(2, 3))
    xt = t(3)
    gt = make_graph(h)(xt)
    new = prune(simplify(gt))
    assert counts(new, "mul", "broadcast_to") == (0, 1)
    same(gt, new, xt)


def test_simplify_keeps_outputs_fresh():
    def f(x):
        return x * 1, (x * 2).reshape(6), x[0] * cr.ones(2, 3)
    x = t(2, 3)
    g = make_graph(f)(x)
    new = simplify(g)
    a, b, c = run(new, x)
    for r in (a, c):  # neither the input itself nor a (broadcast) view of it
        assert not np.may_share_memory(r, x.data) and r.flags.writeable
    np.testing.assert_array_equal(a, x.data)
    np.testing.assert_array_equal(b, x.data.reshape(6) * 2)
    np.testing.assert_array_equal(c, np.broadcast_to(x.data[0], (2, 3)))


def test_simplify_movement_chains():
    def f(x):                                                   # x: (2, 3, 4)
        a = x.permute(1, 2, 0).permute(0, 2, 1)                 # one transpose (1, 0, 2)
        b = x.permute(2, 0, 1).permute(1, 2, 0)                 # identity: gone
        c = x.reshape(6, 4).reshape(4, 6).reshape(2, 3, 4)      # own shape: gone
        d = x.reshape(24).reshape(4, 6)                         # one reshape
        return a * 2, b.sum(2) + c.sum(2) + d[:2, :3]           # (3, 2, 4), (2, 3)
    x = t(2, 3, 4)
    g = make_graph(f)(x)
    new = prune(simplify(g))
    assert counts(g, "transpose", "reshape") == (4, 5)
    assert counts(new, "transpose", "reshape") == (1, 1)
    assert [e.params["axes"] for e in new.eqns if e.prim.name == "transpose"] == [(1, 0, 2)]
    same(g, new, x)
    for a, b in zip(compiled(f, x), f(x)):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-6)


def test_simplify_whole_overwrites():
    x, v = Var((2, 3), np.float32), Var((2, 3), np.float32)
    eqns = []
    whole = node(eqns, "index_put", x, v, index=(Ellipsis,))           # -> v
    cols = node(eqns, "index_put", x, v, index=(slice(None), slice(None)))
    row = node(eqns, "getitem", v, index=(slice(0, 1),))
    part = node(eqns, "index_put", x, row, index=(slice(0, 1),))       # stays
    fill = node(eqns, "index_put", x, constant(np.float32(1)), index=(Ellipsis,))  # stays
    cast = node(eqns, "index_put", x, node(eqns, "cast", v, dtype=np.dtype(np.float64)),
                index=(Ellipsis,))                                     # stays: casts back
    g = Graph([x, v], eqns, [node(eqns, "add", node(eqns, "add", whole, cols),
                                   node(eqns, "add", part, node(eqns, "add", fill, cast)))])
    new = prune(simplify(g))
    assert counts(new, "index_put") == (3,)
    same(g, new, np.zeros((2, 3), np.float32), np.arange(6, dtype=np.float32).reshape(2, 3))


def test_simplify_casts():
    eqns = []
    x32, x64 = Var((3,), np.float32), Var((3,), np.float64)
    a = node(eqns, "cast", x32, dtype=np.dtype(np.float32))                   # no-op: gone
    b = node(eqns, "cast", node(eqns, "cast", a, dtype=np.dtype(np.float64)),
             dtype=np.dtype(np.float32))                                     # round trip
    c = node(eqns, "cast", node(eqns, "cast", x64, dtype=np.dtype(np.float32)),
             dtype=np.dtype(np.float64))                                     # rounds: stays
    g = Graph([x32, x64], eqns, [node(eqns, "neg", b), node(eqns, "neg", c)])
    new = prune(simplify(g))
    assert counts(new, "cast", "neg") == (2, 2)
    same(g, new, np.float32([1, 2, 3]), np.float64([0.1, 1 / 3, 1e-50]))


def test_simplify_drops_broadcasts_elementwise_ops_do_themselves():
    def f(x, b):
        y = cr.relu(x + b) * 2.0 - 1.0                     # bias and scalar broadcasts
        return cr.where(y > 0, y, 0.5)
    x, b = t(4, 3), t(3)
    g = make_graph(f)(x, b)
    new = prune(simplify(g))
    assert counts(g, "broadcast_to")[0] >= 4 and counts(new, "broadcast_to") == (0,)
    same(g, new, x, b)
    eqns = []  # where removing both broadcasts would shrink the result, one stays
    a, c = Var((3,), np.float32), Var((3,), np.float32)
    out = node(eqns, "add", node(eqns, "broadcast_to", a, shape=(2, 3)), c)
    hand = Graph([a, c], eqns, [node(eqns, "neg", out)])
    assert simplify(hand).op_counts() == hand.op_counts()


def test_simplify_constant_conditions_and_squares():
    def f(x):
        keep = cr.where(cr.ones(3, dtype=cr.bool), x, -x)            # where(True, a, b)
        mask = cr.logical_and(x > 0, cr.zeros(3, dtype=cr.bool))     # always False
        return keep ** 2 + cr.where(mask, x, 2 * x)
    x = t(3)
    g = fold(make_graph(f)(x))
    new = prune(simplify(g))
    assert counts(new, "where", "pow", "logical_and") == (0, 0, 0)
    assert counts(new, "mul") == (2,)  # x * x, 2 * x
    same(g, new, x)


# ------------------------------------------------------------------------- safe

F32 = np.float32
SAFE_CASES = [
    # name, f, input (float32), exact value (float64 math / limit), op in the rewrite
    ("log_sigmoid", lambda x: cr.log(cr.sigmoid(x)), F32(-200.0), -200.0, "softplus"),
    ("log_1m_sigmoid", lambda x: cr.log(1 - cr.sigmoid(x)), F32(200.0), -200.0, "softplus"),
    ("log_softmax", lambda x: cr.log(cr.softmax(x, -1)), F32([0.0, -200.0]),
     np.array([-np.exp(-200.0), -200.0]), "log_softmax"),
    ("logsumexp", lambda x: cr.log(cr.exp(x).sum()), F32([1000.0]), 1000.0, "logsumexp"),
    ("logsumexp_axis", lambda x: cr.log(cr.exp(x).sum(1, keepdim=True)),
     F32([[1000.0, 1000.0], [0.0, -1e4]]), np.array([[1000 + np.log(2)], [0.0]]),
     "logsumexp"),
    ("log1p", lambda x: cr.log(1 + x), F32(1e-10), np.log1p(1e-10), "log1p"),
    ("log1p_right", lambda x: cr.log(x + 1), F32(1e-10), np.log1p(1e-10), "log1p"),
    ("log1m", lambda x: cr.log(1 - x), F32(1e-10), np.log1p(-1e-10), "log1p"),
    ("expm1", lambda x: cr.exp(x) - 1, F32(1e-10), np.expm1(1e-10), "expm1"),
    ("log_exp", lambda x: cr.log(cr.exp(x)) * 2, F32(1000.0), 2000.0, "mul"),
    ("sqrt_square", lambda x: cr.sqrt(x * x), F32(-1e20), 1e20, "abs"),
]


@pytest.mark.parametrize("name,f,x,exact,op", SAFE_CASES, ids=[c[0] for c in SAFE_CASES])
def test_safe_rewrite_is_finite_where_eager_is_not(name, f, x, exact, op):
    x = cr.tensor(x)
    eager = f(x).data.astype(np.float64)
    exact = np.asarray(exact, np.float64)
    # eager float32 is infinite, or a wrong 0, where the exact value is finite and nonzero
    assert np.any(~np.isfinite(eager) | ((eager == 0) & (exact != 0)))
    got = compiled(f, x).data
    assert got.dtype == np.float32 and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-30)
    lowered = jit(f).lower(x)
    after_safe = dict(lowered.stages)["safe"]  # (fusion later packs it into a group)
    assert op in after_safe.op_counts()
    off = compiled(f, x, passes={"safe": False}).data  # the pass is what makes the difference
    np.testing.assert_array_equal(off, f(x).data)


def test_safe_rewrites_even_when_the_intermediate_is_used_again():
    def f(x):
        s = cr.sigmoid(x)
        return cr.log(s), s * 2
    x = cr.tensor(F32([-200.0, 0.0, 3.0]))
    g = make_graph(f)(x)
    new = prune(safe(g))
    assert counts(new, "sigmoid", "softplus", "log") == (1, 1, 0)
    log_s, s2 = run(new, x)
    np.testing.assert_allclose(log_s, -np.logaddexp(0, -x.data.astype(np.float64)), rtol=1e-6)
    np.testing.assert_array_equal(s2, f(x)[1].data)


def test_safe_leaves_other_logs_alone():
    def f(x):
        return cr.log(2 + x) + cr.log(cr.exp(x) + 2) + cr.log(cr.sigmoid(x) * 2)
    x = t(4)
    g = make_graph(f)(x)
    assert safe(g).op_counts() == g.op_counts()
    eqns = []  # log(1 + x) whose 1 is wider than x: log1p(x) would have x's shape
    xv = Var((), np.float32)
    out = node(eqns, "log", node(eqns, "add", constant(np.ones(3, np.float32)), xv))
    hand = Graph([xv], eqns, [out])
    assert simplify(hand).op_counts() == safe(hand).op_counts() == {"add": 1, "log": 1}


# ------------------------------------------------------------- pipeline and MLP

def test_pipeline_names_and_toggles():
    names = [n for n, _ in PIPELINE]
    for n in ("fold", "cse", "simplify", "safe", "prune"):
        assert n in names
    assert names.index("fold") < names.index("simplify") < names.index("safe")
    assert names[-1] == "prune" or "prune" in names

    def f(x):
        return cr.tanh(x * 1) + cr.tanh(x * 1)
    x = t(3)
    full = jit(f, passes={"fuse": False}).lower(x)
    no_cse = jit(f, passes={"cse": False, "fuse": False}).lower(x)
    assert "cse" not in [n for n, _ in no_cse.stages]
    assert counts(full.graph, "tanh") == (1,) and counts(no_cse.graph, "tanh") == (2,)
    with pytest.raises(ValueError, match="unknown passes"):
        jit(f, passes={"nope": False}).lower(x)


def _mlp():
    rng = np.random.default_rng(1)
    params = [cr.tensor(rng.standard_normal((8, 16)) * 0.3, dtype=cr.float32),
              cr.tensor(rng.standard_normal(16) * 0.1, dtype=cr.float32),
              cr.tensor(rng.standard_normal((16, 4)) * 0.3, dtype=cr.float32),
              cr.tensor(rng.standard_normal(4) * 0.1, dtype=cr.float32)]
    x = cr.tensor(rng.standard_normal((32, 8)), dtype=cr.float32)
    y = cr.tensor(rng.standard_normal((32, 4)), dtype=cr.float32)

    def loss(params, x, y):
        w1, b1, w2, b2 = params
        h = cr.relu(x @ w1 + b1)                # (32, 16)
        out = h @ w2 + b2                       # (32, 4)
        return cr.nn.functional.mse_loss(out, y)
    return cr.value_and_grad(loss), params, x, y


def test_mlp_training_step_shrinks_and_matches_eager():
    step, params, x, y = _mlp()
    lowered = jit(step).lower(params, x, y)
    sizes = lowered.counts()
    print("\nMLP value_and_grad step, equations after each pass:",
          ", ".join(f"{n} {k}" for n, k in sizes))
    stage = dict(lowered.stages)
    assert sizes[-1][1] < sizes[0][1]
    for name in ("simplify", "prune"):  # each of these removes something here
        i = [n for n, _ in lowered.stages].index(name)
        assert sizes[i][1] < sizes[i - 1][1], name
    assert counts(stage["prune"], "broadcast_to", "matmul") == (0, 5)
    value, grads = compiled(step, params, x, y)
    ev, eg = step(params, x, y)
    np.testing.assert_allclose(value.data, ev.data, rtol=1e-5)
    for a, b in zip(grads, eg):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-7)
    raw, inputs = traced(step, params, x, y)
    assert len(raw) == sizes[0][1]
    ref = run(raw, *inputs)
    for _, g in lowered.stages[1:]:
        for a, b in zip(ref, run(g, *inputs)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# ------------------------------------------------- random programs: passes == eager

_UNARY = [cr.tanh, cr.exp, cr.neg, cr.sigmoid, cr.relu, cr.abs,
          lambda a: cr.log(1 + a * a), lambda a: cr.exp(a) - 1, lambda a: a.T.T,
          lambda a: a.reshape(-1).reshape(a.shape), lambda a: cr.log(cr.sigmoid(a))]
_BINARY = [cr.add, cr.sub, cr.mul, cr.maximum, lambda a, b: a * 1 + 0 * b,
           lambda a, b: cr.where(a > b, a, b ** 2)]
_LEAF = st.sampled_from(["x", "y", "b", "0", "1", "2"])


def _program(ops):
    def f(x, y, b):
        env = {"x": x, "y": y, "b": b, "0": 0.0, "1": 1.0, "2": cr.full((3,), 2.0)}
        vals = [x]
        for kind, i, a, c in ops:
            lhs = vals[i % len(vals)]
            if kind == "u":
                vals.append(_UNARY[a % len(_UNARY)](lhs))
            else:
                vals.append(_BINARY[a % len(_BINARY)](lhs, env[c]))
        return vals[-1].sum() + vals[len(vals) // 2].sum()
    return f


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ub"), st.integers(0, 9), st.integers(0, 9), _LEAF),
                min_size=1, max_size=8))
def test_random_programs_match_eager(ops):
    f = _program(ops)
    rng = np.random.default_rng(len(ops))
    args = [cr.tensor(rng.uniform(-2, 2, s), dtype=cr.float64) for s in ((2, 3), (2, 3), (3,))]
    want = f(*args).data
    got = compiled(f, *args).data
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    df = cr.grad(f, argnums=(0, 2))
    raw, inputs = traced(df, *args)
    ref = run(raw, *inputs)
    graph = raw
    for _, p in PIPELINE:
        graph = p(graph)
        for a, b in zip(ref, run(graph, *inputs)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(compiled(df, *args), df(*args)):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("target", ["numpy", "numba"])
def test_order_predicts_eagers_f_ordered_values(target):
    """A wide linear layer's product is F-ordered in eager (ops.linalg.by_columns), and so
    are the elementwise results after it; the compiled graph views F-ordered buffers and
    runs its fused group over the transposed arrays, so a reduction over them rounds as
    eager's does: the results are equal bit for bit, in the order eager gives them."""
    if target == "numba":
        pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((16, 8)).astype(np.float32))
    w = cr.tensor(rng.standard_normal((64, 8)).astype(np.float32))
    b = cr.tensor(rng.standard_normal(64).astype(np.float32))

    def f(x):
        h = cr.nn.functional.linear(x, w, b)          # (16, 64), F-ordered
        a = cr.tanh(h) * 2 + cr.relu(h)               # one fused group, F-ordered
        return a.sum(0), cr.exp(a).sum(1), h * 1.5    # reductions along both axes

    want = f(x)
    assert want[2].data.flags.f_contiguous and not want[2].data.flags.c_contiguous
    jf = jit(f, passes={"fuse": {"target": target}})
    for _ in range(3):
        got = jf(x)
    graph = jf.lower(x).graph
    orders = graph.meta["orders"]
    fused = [e for e in graph.eqns if e.prim.name.startswith("fused")]
    assert fused and all(e.prim.order == "F" for e in fused)
    assert any(e.prim.name == "linear" and e.out.id in orders for e in graph.eqns)
    for g, e in zip(got[:2], want[:2]):
        if target == "numpy":  # (numba's tanh and exp are its own, 1-2 ulp apart)
            np.testing.assert_array_equal(g.data, e.data)
        else:
            np.testing.assert_allclose(g.data, e.data, rtol=1e-5)
    np.testing.assert_array_equal(got[2].data, want[2].data)
