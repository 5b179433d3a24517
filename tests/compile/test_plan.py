"""Buffer planning: liveness with views, buffers reused only when dead, graph outputs never
in a buffer (so a second call cannot overwrite what the first returned), peak bytes
before and after, and planned graphs computing what unplanned ones compute."""
import numpy as np
import pytest

import chainrule as cr
from chainrule.compile.codegen import eqn_outs
from chainrule.compile.execute import Program
from chainrule.compile.ir import Eqn, Graph, Var
from chainrule.compile.passes.fuse import fuse
from chainrule.compile.passes.plan import memory_report, plan
from chainrule.core.primitive import PRIMITIVES

from .test_fuse import gelu_sum, traced

R = np.random.default_rng(0)
N = 1000


def node(eqns, name, *ins, **params):
    """Append ``name(*ins, **params)`` to a hand-built equation list; its result Var."""
    prim = PRIMITIVES[name]
    shape, dtype = prim.shape(*[np.empty(v.shape, v.dtype) for v in ins], **params)
    out = Var(shape, dtype)
    eqns.append(Eqn(prim, tuple(ins), params, out))
    return out


def chain(length=8):
    """x -> exp -> tanh -> neg -> ... (equal shapes); returns the graph."""
    x = Var((N,), np.float64)
    eqns, v = [], x
    for k in range(length):
        v = node(eqns, ["exp", "tanh", "neg", "sin"][k % 4], v)
    return Graph([x], eqns, [v])


def assert_same_runs(graph, planned, inputs, runs=2):
    """The planned program equals the unplanned one on every run, and earlier results
    stay intact when later runs reuse the buffers."""
    prog, ref = Program(planned), Program(graph)
    results = []
    for k in range(runs):
        ins = [a * (k + 1) for a in inputs]
        results.append((prog.run(ins), ref.run(ins)))
    for got, want in results:
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_chain_reuses_buffers_in_place_and_lowers_the_peak():
    graph = chain()
    planned = plan(graph)
    m = planned.meta
    assert m["n_buffers"] == 1  # each ufunc writes over its dying operand
    assert len(m["buffers"]) == len(graph.eqns) - 1  # all but the output
    assert m["peak_bytes_before"] == 8 * N * 8
    assert m["peak_bytes_freed"] == 2 * N * 8
    assert m["peak_bytes_after"] < m["peak_bytes_before"]
    assert m["peak_bytes_after"] == 2 * N * 8  # the buffer and the fresh output
    assert_same_runs(graph, planned, [R.standard_normal(N)], runs=3)
    assert "MiB with no reuse" in memory_report(planned)


@pytest.mark.parametrize("big_first", [True, False], ids=["shrink", "grow"])
def test_values_of_other_sizes_reuse_dead_buffers(big_first):
    """Best fit: a value takes a dead buffer that holds it, or grows the largest dead
    one; either way two buffers serve the four planned values here."""
    x, y = Var((N,), np.float64), Var((N // 2,), np.float64)
    eqns = []
    first, second = (x, y) if big_first else (y, x)
    a = node(eqns, "exp", first)
    s = node(eqns, "sum", a, axis=None, keepdims=False)  # a dies here
    t = node(eqns, "tanh", second)  # takes a's buffer
    u = node(eqns, "exp", t)  # in place over t
    out = node(eqns, "mul", u, s)
    graph = Graph([x, y], eqns, [out])
    planned = plan(graph)
    bufs, specs = planned.meta["buffers"], planned.meta["buffer_specs"]
    assert bufs[a.id] == bufs[t.id] == bufs[u.id] != bufs[s.id]
    assert sorted(shape[0] for shape, _ in specs) == [8, 8 * N]
    assert_same_runs(graph, planned, [R.standard_normal(N), R.standard_normal(N // 2)])


def test_branches_reuse_only_dead_buffers():
    """A diamond with values of two sizes: no buffer holds two live values."""
    x = Var((N,), np.float64)
    y = Var((N // 2,), np.float64)
    eqns = []
    a = node(eqns, "exp", x)
    b = node(eqns, "sin", a)
    c = node(eqns, "cos", a)
    small = node(eqns, "tanh", y)
    d = node(eqns, "mul", b, c)
    e = node(eqns, "add", d, a)
    small2 = node(eqns, "exp", small)
    f = node(eqns, "sum", e, axis=None, keepdims=False)
    out = node(eqns, "mul", small2, f)
    graph = Graph([x, y], eqns, [out, e])
    planned = plan(graph)
    bufs = planned.meta["buffers"]
    assert e.id not in bufs and out.id not in bufs
    live = {}  # buffer -> Var currently in it
    last = {v.id: i for i, q in enumerate(eqns) for v in q.ins}
    for i, q in enumerate(eqns):
        for v in eqn_outs(q):
            if v.id in bufs:
                holder = live.get(bufs[v.id])
                assert holder is None or last.get(holder.id, -1) <= i, "buffer reused while live"
                live[bufs[v.id]] = v
    # buffers persist from call to call: below no reuse, not always below freeing
    assert planned.meta["peak_bytes_after"] < planned.meta["peak_bytes_before"]
    assert planned.meta["n_buffers"] == 4  # a, b, c, small; the sum reuses a dead one
    assert_same_runs(graph, planned, [R.standard_normal(N), R.standard_normal(N // 2)])


def test_views_keep_their_base_buffer_alive():
    """a = exp(x) lives in a buffer; v = reshape(a) is read after a's last direct use and
    after b (same size) was computed: b must not take a's buffer."""
    x = Var((N,), np.float64)
    eqns = []
    a = node(eqns, "exp", x)
    v = node(eqns, "reshape", a, shape=(N // 10, 10))
    b = node(eqns, "tanh", x)
    c = node(eqns, "sin", b)
    w = node(eqns, "reshape", c, shape=(N // 10, 10))
    out = node(eqns, "add", v, w)
    graph = Graph([x], eqns, [out])
    planned = plan(graph)
    bufs = planned.meta["buffers"]
    assert bufs[a.id] != bufs[b.id] and bufs[a.id] != bufs[c.id]
    assert_same_runs(graph, planned, [R.standard_normal(N)])


def test_outputs_and_values_they_view_get_no_buffer():
    x = Var((N,), np.float64)
    eqns = []
    a = node(eqns, "exp", x)
    v = node(eqns, "reshape", a, shape=(N // 10, 10))  # an output views a
    b = node(eqns, "tanh", x)
    out = node(eqns, "neg", b)
    graph = Graph([x], eqns, [v, out])
    bufs = plan(graph).meta["buffers"]
    assert a.id not in bufs and out.id not in bufs and b.id in bufs


def test_matmul_and_reductions_write_into_buffers():
    x = Var((40, 30), np.float64)
    w = Var((30, 30), np.float64)
    eqns = []
    h = node(eqns, "matmul", x, w)
    h2 = node(eqns, "tanh", h)
    h3 = node(eqns, "matmul", h2, w)
    s = node(eqns, "sum", h3, axis=(1,), keepdims=True)
    m = node(eqns, "amax", h3, axis=(0,), keepdims=False)
    out = node(eqns, "mul", node(eqns, "add", h3, s), m)
    graph = Graph([x, w], eqns, [out])
    planned = plan(graph)
    assert {h.id, h3.id, s.id, m.id} <= set(planned.meta["buffers"])
    assert_same_runs(graph, planned, [R.standard_normal((40, 30)), R.standard_normal((30, 30))])


@pytest.mark.parametrize("fused", [False, True])
def test_planned_gradient_graph_equals_eager(fused):
    x = cr.tensor(R.standard_normal(2000), dtype=cr.float32)
    graph, inputs = traced(cr.grad(gelu_sum), x)
    g = fuse(graph, target="numpy") if fused else graph
    planned = plan(g)
    assert planned.meta["peak_bytes_after"] <= planned.meta["peak_bytes_before"]
    outs = [Program(planned).run(inputs)[0] for _ in range(2)]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.shares_memory(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], cr.grad(gelu_sum)(x).numpy(), rtol=1e-6, atol=1e-7)


def test_fused_groups_get_buffers_for_outputs_read_later():
    def f(x, w):
        h = cr.tanh(x) * 2          # a group output read by the matmul only
        return cr.exp(h @ w) + 1
    x, w = (cr.tensor(R.standard_normal((20, 20))) for _ in range(2))
    graph, inputs = traced(f, x, w)
    planned = plan(fuse(graph, target="numpy"))
    group_eqn = next(e for e in planned.eqns if hasattr(e.prim, "outs"))
    assert group_eqn.out.id in planned.meta["buffers"]
    assert_same_runs(graph, planned, inputs)


def test_plan_does_not_touch_its_input_graph():
    graph = chain(4)
    meta = dict(graph.meta)
    planned = plan(graph)
    assert graph.meta == meta and planned.eqns == graph.eqns
