"""The fusion pass: which groups form (maximal, convex: never a cycle through a reduction
or a matmul between members), what leaves them, broadcasts seen through, the fused
graph == the unfused graph == eager, random programs, and a training step end to end.

Structure tests use the NumPy target (no compilation); the end-to-end tests run both
targets (numba skipped only where it is missing).
"""
import functools
import importlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import chainrule as cr
from chainrule.compile.codegen import FusedGroup, eqn_outs
from chainrule.compile.execute import Program
from chainrule.compile.passes.fuse import fuse
from chainrule.compile.passes.plan import plan
from chainrule.compile.trace import trace
from chainrule.tree import tree_flatten

jit_module = importlib.import_module("chainrule.compile.jit")  # the module, not jit()
R = np.random.default_rng(0)


def t(*shape, dtype=cr.float64):
    return cr.tensor(R.standard_normal(shape), dtype=dtype)


def traced(f, *args):
    """The raw graph of ``f`` on ``args`` and its input arrays (tensor arguments, then
    captured tensors)."""
    leaves, _ = tree_flatten((args, {}))
    slots = [i for i, a in enumerate(leaves) if isinstance(a, cr.Tensor)]
    graph, captured, *_ = trace(f, args, {}, slots)
    return graph, [leaves[i].data for i in slots] + [c.data for c in captured]


def run(graph, inputs):
    return Program(graph).run(inputs)


def groups(graph):
    return [e.prim for e in graph.eqns if isinstance(e.prim, FusedGroup)]


def members(group):
    return [e.prim.name for e in group.members]


def assert_well_formed(graph):
    """Every value defined once (a fused equation defines all its outputs) and before
    its uses; outputs defined."""
    defined = {v.id for v in graph.inputs}
    for e in graph.eqns:
        for v in e.ins:
            assert v.const is not None or v.id in defined, f"%{v.id} read before defined"
        for o in eqn_outs(e):
            assert o.id not in defined, f"%{o.id} defined twice"
            defined.add(o.id)
    assert all(v.const is not None or v.id in defined for v in graph.outputs)


def assert_fused_same(f, *args, target="numpy", rtol=1e-12, atol=0.0):
    """fuse(graph) computes what graph computes, and what eager computes; the fused
    graph (returned) is well formed."""
    graph, inputs = traced(f, *args)
    fused = fuse(graph, target=target)
    assert_well_formed(fused)
    want = run(graph, inputs)
    got = run(fused, inputs)
    eager = [a.data for a in tree_flatten(f(*args))[0]]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    for a, b in zip(got, eager):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    return fused


def gelu_sum(x):
    return (0.5 * x * (1 + cr.tanh(0.797885 * (x + 0.044715 * x ** 3)))).sum()


# ------------------------------------------------------------------ structure

def test_gelu_forward_and_backward_become_one_kernel():
    x = t(1000, dtype=cr.float32)
    fused = assert_fused_same(cr.grad(gelu_sum), x, rtol=1e-6, atol=1e-7)
    (g,) = groups(fused)
    assert {"tanh", "mul", "add", "pow", "where", "isnan"} <= set(members(g))
    graph, _ = traced(cr.grad(gelu_sum), x)
    elementwise = sum(n for name, n in graph.op_counts().items()
                      if name not in ("sum", "reshape", "broadcast_to"))
    assert len(g.members) == elementwise  # every elementwise equation joined
    assert g.name.startswith("fused[mul,pow,")
    text = str(fused)
    assert "fused[" in text and "= tanh %" in text and "(out)" in text


def test_independent_chains_merge_at_their_consumer():
    fused = assert_fused_same(lambda x, y: cr.exp(x) * 2 + cr.sin(y), t(4, 5), t(4, 5))
    (g,) = groups(fused)
    assert sorted(members(g)) == ["add", "exp", "mul", "sin"]
    assert len(fused) == 1


def test_no_cycle_through_a_matmul():
    """exp(x) feeds a matmul whose result meets tanh(exp(x)) again: the add may not join
    the exp group (the group would need the matmul's result before it computes the
    matmul's input)."""
    def f(x, w):
        a = cr.exp(x)
        m = a @ w
        return cr.tanh(a) * 3 + m
    fused = assert_fused_same(f, t(6, 6), t(6, 6))
    (g,) = groups(fused)
    assert sorted(members(g)) == ["exp", "mul", "tanh"]
    assert [e.prim.name for e in fused.eqns][-1] == "add"


def test_no_cycle_through_a_reduction():
    """softmax written out: exp(x) and its row sum; the division reads both, so it
    starts a second group after the sum."""
    def f(x):
        e = cr.exp(x * 2)
        s = e.sum(-1, keepdim=True)
        return cr.log(e / s + 1) * 3
    fused = assert_fused_same(f, t(4, 7))
    first, second = groups(fused)
    assert sorted(members(first)) == ["exp", "mul"]
    assert sorted(members(second)) == ["add", "div", "log", "mul"]
    names = [e.prim.name for e in fused.eqns]
    assert names.index("sum") == 1 and "broadcast_to" not in names


def test_no_cycle_when_a_group_grows_a_dependency_later():
    """exp(x) starts group G and sin(y) group H; G later takes a * (sin(y) @ w), so G now
    needs H. A value read from G's first member (a @ w2) is then behind H too: the add
    that reads it may not join H, though nothing depended on H when a @ w2 was made."""
    def f(x, y, w, w2):
        a = cr.exp(x)
        b = cr.sin(y)
        c = a * (b @ w)
        return b + a @ w2, c
    fused = assert_fused_same(f, t(4, 4), t(4, 4), t(4, 4), t(4, 4))
    assert sorted(sorted(members(g)) for g in groups(fused)) == [["exp", "mul"]]
    assert [e.prim.name for e in fused.eqns].count("add") == 1


def test_readers_between_members_move_after_the_group():
    """The sum reads the first member but sits before the last one in the trace."""
    def f(x):
        a = cr.exp(x)
        s = a.sum()
        return cr.tanh(a) * 2, s
    fused = assert_fused_same(f, t(3, 4))
    assert [e.prim.name for e in fused.eqns][0].startswith("fused[")


def test_outputs_are_the_values_used_outside():
    def f(x, w):
        h = cr.tanh(x) * 2     # read by the matmul: an output
        inner = cr.exp(h)      # only read inside the group
        return (h @ w), inner + 1
    fused = assert_fused_same(f, t(5, 5), t(5, 5))
    (g,) = groups(fused)
    out_names = [e.prim.name for e in g.members if e.out in g.outs]
    assert out_names == ["mul", "add"]
    assert fused.eqns[0].out is g.outs[0] and len(g.outs) == 2


def test_broadcast_operands_are_read_at_their_own_shape():
    def f(x, b, s):
        return cr.relu(x + b) * s
    x, b, s = t(8, 5), t(5), t()
    fused = assert_fused_same(f, x, b, s)
    (g,) = groups(fused)
    assert sorted(v.shape for v in g.inputs) == [(), (5,), (8, 5)]
    assert "broadcast_to" not in fused.op_counts()


def test_a_broadcast_used_elsewhere_stays():
    def f(x, b):
        bb = cr.broadcast_to(b, (4, 3))
        return cr.exp(x + bb) * 2, bb @ x.T
    fused = assert_fused_same(f, t(4, 3), t(3))
    assert fused.op_counts()["broadcast_to"] == 1


def test_single_elementwise_ops_stay_as_they_are():
    graph, _ = traced(lambda x, w: cr.exp(x) @ w, t(3, 3), t(3, 3))
    fused = fuse(graph, target="numpy")
    assert fused is graph


def test_groups_need_one_shape():
    """A reduction to a smaller shape ends a group; the next op over the small shape
    starts another (here a single op, so it stays)."""
    def f(x):
        s = (cr.exp(x) * 2).sum(0)
        return cr.tanh(s)
    fused = assert_fused_same(f, t(4, 6))
    assert [members(g) for g in groups(fused)] == [["exp", "mul"]]


def test_fuse_does_not_touch_its_input_graph():
    graph, _ = traced(cr.grad(gelu_sum), t(10))
    eqns, before = list(graph.eqns), str(graph)
    fuse(graph, target="numpy")
    assert graph.eqns == eqns and str(graph) == before


# ------------------------------------------------------------------ random programs

_UNARY = [cr.tanh, cr.exp, cr.neg, cr.sigmoid, cr.relu, lambda a: cr.log(1 + a * a),
          lambda a: a.sum(-1, keepdim=True) * a, lambda a: a @ a.T @ a]
_BINARY = [cr.add, cr.sub, cr.mul, cr.maximum, lambda a, b: cr.where(a > b, a, b * 2)]


def _program(ops):
    def f(x, y):
        vals = [x, y]
        for kind, i, j, k in ops:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            vals.append(_UNARY[k % len(_UNARY)](a) if kind == "u"
                        else _BINARY[k % len(_BINARY)](a, b))
        return vals[-1].sum() + vals[len(vals) // 2].sum()
    return f


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("uub"), st.integers(0, 20), st.integers(0, 20),
                          st.integers(0, 9)), min_size=1, max_size=12))
def test_random_programs_fuse_without_cycles(ops):
    """Random DAGs of elementwise ops with reductions and matmuls between them, forward
    and backward: the fused graph is well formed and computes the same values."""
    f = _program(ops)
    args = [cr.tensor(np.random.default_rng(len(ops)).uniform(-1, 1, (3, 3)))
            for _ in range(2)]
    assert_fused_same(cr.grad(f, argnums=(0, 1)), *args, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ end to end

TARGETS = ["numpy", "numba"]


@pytest.fixture
def pipeline(monkeypatch):
    """Make ``jit`` run fuse and plan last, on a given target (replacing them where the
    pipeline already lists them)."""
    def use(target):
        if target == "numba":
            pytest.importorskip("numba")
        base = [(n, p) for n, p in jit_module.PIPELINE if n not in ("fuse", "plan")]
        monkeypatch.setattr(jit_module, "PIPELINE", base + [
            ("fuse", functools.partial(fuse, target=target)), ("plan", plan)])
    return use


def _compiled(f, *args, **kw):
    j = jit_module.jit(f, **kw)
    j(*args)  # the first call of a signature runs eagerly
    return j(*args), j


@pytest.mark.parametrize("target", TARGETS)
def test_mlp_training_step_equals_eager(pipeline, target):
    """value_and_grad of a small MLP and an SGD-with-momentum update, all in one jitted
    function: forward, backward and update fused under plan(fuse(graph))."""
    pipeline(target)
    rng = np.random.default_rng(3)
    params = [cr.tensor(rng.standard_normal(s) * 0.3, dtype=cr.float32)
              for s in [(6, 16), (16,), (16, 3), (3,)]]
    moms = [cr.zeros_like(p) for p in params]
    x = cr.tensor(rng.standard_normal((32, 6)), dtype=cr.float32)
    y = cr.tensor(rng.standard_normal((32, 3)), dtype=cr.float32)

    def loss(params, x, y):
        w1, b1, w2, b2 = params
        h = cr.tanh(x @ w1 + b1)                 # (32, 16)
        out = cr.sigmoid(h @ w2 + b2)            # (32, 3)
        return ((out - y) ** 2).mean()

    def step(params, moms, x, y):
        value, grads = cr.value_and_grad(loss)(params, x, y)
        moms = [0.9 * m + g for m, g in zip(moms, grads)]
        params = [p - 0.1 * m for p, m in zip(params, moms)]
        return value, params, moms

    (value, new_p, new_m), j = _compiled(step, params, moms, x, y)
    want_value, want_p, want_m = step(params, moms, x, y)
    graph = j.lower(params, moms, x, y).graph
    assert groups(graph) and all(g.target == target for g in groups(graph))
    assert "peak_bytes_after" in graph.meta
    np.testing.assert_allclose(value.data, want_value.data, rtol=1e-6)
    for a, b in zip(new_p + new_m, want_p + want_m):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-7)


def test_optimizer_step_inside_jit_equals_eager(pipeline):
    """A training step with backward() and Adam's step(): parameters and optimizer state
    are graph inputs and outputs, the update is fused, results equal an eager twin."""
    pipeline("numpy")

    def make():
        cr.manual_seed(0)
        model = cr.nn.Sequential(cr.nn.Linear(5, 8), cr.nn.ReLU(), cr.nn.Linear(8, 2))
        return model, cr.optim.Adam(model.parameters(), lr=cr.tensor(0.01))

    x = cr.tensor(np.random.default_rng(4).standard_normal((16, 5)), dtype=cr.float32)
    y = cr.tensor(np.random.default_rng(5).standard_normal((16, 2)), dtype=cr.float32)

    def stepper(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        return step

    model, opt = make()
    twin, twin_opt = make()
    jitted = jit_module.jit(stepper(model, opt))
    eager = stepper(twin, twin_opt)
    for _ in range(3):
        a, b = jitted(x, y), eager(x, y)
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5)
    graph = jitted.lower(x, y).graph
    assert any("sqrt" in members(g) for g in groups(graph))  # Adam's update is fused
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-7)
