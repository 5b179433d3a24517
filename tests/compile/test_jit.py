"""The ``jit`` API: the signature cache, static arguments, errors for traced control flow
and random numbers, ``make_graph`` and ``lower`` listings, composition with the
transforms to second order, and whole training steps (backward and optimizer update
inside) that must equal the eager step bit for bit.

``jit`` runs each signature's first call eagerly (lazily built state such as optimizer
buffers then exists) and compiles at the second, so the tests call twice before they
compare a compiled result.
"""
import os
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.compile import Graph, jit, make_graph
from chainrule.compile.passes import PIPELINE
from chainrule.core.abstract import TracerError
from chainrule.testing import gradcheck, gradgradcheck

HERE = os.path.basename(__file__)
R = np.random.default_rng(0)


def t64(*shape):
    return cr.tensor(R.standard_normal(shape))


def compiled(fn, *args, **kwargs):
    """The second call's result: the first call of a signature runs eagerly."""
    fn(*args, **kwargs)
    out = fn(*args, **kwargs)
    assert fn.cache, "the second call of a signature must compile it"
    return out


def close(a, b, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(np.asarray(a.detach().numpy()), np.asarray(b.detach().numpy()),
                               rtol=rtol, atol=atol)


# ------------------------------------------------------------------ the cache

def test_one_trace_per_signature_and_a_retrace_on_a_new_one():
    calls = []

    def f(x, y):
        calls.append(x.shape)
        return x * y + 1

    jf = jit(f)
    a, b = cr.randn(3, 2), cr.randn(3, 2)
    for _ in range(4):
        out = jf(a, b)
    assert len(calls) == 2 and len(jf.cache) == 1  # one eager call, one trace
    c = cr.randn(3, 2)  # new values, same signature: the compiled graph, new numbers
    np.testing.assert_array_equal(jf(c, b).numpy(), (c * b + 1).numpy())
    np.testing.assert_array_equal(out.numpy(), (a * b + 1).numpy())
    assert len(calls) == 2
    for x, y in [(cr.randn(4, 2), cr.randn(4, 2)),                     # new shape
                 (a.double(), b.double()),                              # new dtype
                 (cr.randn(3, 1), cr.randn(1, 2))]:                     # broadcasting
        before = len(calls)
        compiled(jf, x, y)
        assert len(calls) == before + 2
        np.testing.assert_array_equal(jf(x, y).numpy(), (x * y + 1).numpy())
        assert jf(x, y).dtype == (x * y).dtype
    assert len(jf.cache) == 4


def test_pytree_structure_and_python_numbers_are_part_of_the_signature():
    def f(tree, scale):
        return {"sum": tree["a"] * scale + tree["b"], "n": 3, "pair": (tree["a"], None)}

    jf = jit(f)
    x, y = cr.randn(2, 3), cr.randn(2, 3)
    out = compiled(jf, {"a": x, "b": y}, 2.0)
    assert set(out) == {"sum", "n", "pair"} and out["n"] == 3 and out["pair"][1] is None
    np.testing.assert_array_equal(out["sum"].numpy(), (x * 2.0 + y).numpy())
    np.testing.assert_array_equal(out["pair"][0].numpy(), x.numpy())
    out3 = compiled(jf, {"a": x, "b": y}, 3.0)  # a number is a constant of its trace
    np.testing.assert_array_equal(out3["sum"].numpy(), (x * 3.0 + y).numpy())
    assert len(jf.cache) == 2
    compiled(jf, {"a": x, "b": y, "c": y}, 3.0)  # another dict: another structure
    assert len(jf.cache) == 3


def test_keyword_tensors_are_inputs():
    jf = jit(lambda x, *, bias: x - bias)
    x, b = cr.randn(3), cr.randn(3)
    np.testing.assert_array_equal(compiled(jf, x, bias=b).numpy(), (x - b).numpy())
    b2 = cr.randn(3)
    np.testing.assert_array_equal(jf(x, bias=b2).numpy(), (x - b2).numpy())
    assert len(jf.cache) == 1


def test_static_argnums_key_the_cache_by_value():
    calls = []

    @jit(static_argnums=(1, -1))
    def f(x, n, mode):
        calls.append(n)
        for _ in range(n):  # Python control flow on static values is fine
            x = x * 2 if mode == "double" else x + 1
        return x

    x = cr.ones(3)
    assert compiled(f, x, 3, "double").tolist() == [8.0] * 3
    assert compiled(f, x, 2, "double").tolist() == [4.0] * 3
    assert compiled(f, x, 2, "add").tolist() == [3.0] * 3
    assert f(x, 3, "double").tolist() == [8.0] * 3
    assert len(f.cache) == 3 and len(calls) == 6
    g = jit(lambda x, k: x * k, static_argnums=1)  # an int is accepted
    assert compiled(g, x, 5).tolist() == [5.0] * 3
    with pytest.raises(TypeError, match="hashable"):
        g(x, [1, 2])


# ------------------------------------------------------------------ errors

def test_control_flow_on_a_traced_value_names_the_line_and_the_fixes():
    def relu_ish(x):
        if x.sum() > 0:
            return x
        return -x

    line = relu_ish.__code__.co_firstlineno + 1
    jf = jit(relu_ish)
    jf(cr.ones(3))  # eager: fine
    with pytest.raises(TracerError) as info:
        jf(cr.ones(3))
    msg = str(info.value)
    assert isinstance(info.value, TypeError)
    assert f"{HERE}:{line}" in msg and "static_argnums" in msg and "where" in msg
    # the fixes it names: a static flag, or both branches and where
    fixed = jit(lambda x, pos: x if pos else -x, static_argnums=1)
    assert compiled(fixed, cr.ones(3), False).tolist() == [-1.0] * 3
    both = jit(lambda x: cr.where(x.sum() > 0, x, -x))
    x = cr.tensor([1.0, -3.0])
    np.testing.assert_array_equal(compiled(both, x).numpy(), [-1.0, 3.0])


@pytest.mark.parametrize("reader", [lambda x: float(x.sum()), lambda x: x.sum().item(),
                                    lambda x: cr.zeros(int(x.sum())),
                                    lambda x: x.tolist()], ids=["float", "item", "int", "tolist"])
def test_reading_values_while_tracing_raises(reader):
    jf = jit(reader)
    jf(cr.ones(2))
    with pytest.raises(TracerError, match=f"not known while tracing, at .*{HERE}"):
        jf(cr.ones(2))


def test_numpy_while_tracing_raises():
    jf = jit(lambda x: x.numpy() * 2)
    jf(cr.ones(2))
    with pytest.raises(TracerError, match=HERE):
        jf(cr.ones(2))


@pytest.mark.parametrize("draw", [lambda x: x * cr.randn(*x.shape), lambda x: cr.rand_like(x),
                                  lambda x: nn.Dropout(0.5)(x)], ids=["randn", "rand_like",
                                                                      "dropout"])
def test_random_numbers_while_tracing_raise(draw):
    jf = jit(draw)
    jf(cr.ones(4))
    with pytest.raises(TracerError, match=f"random numbers.*pass them in.*{HERE}"):
        jf(cr.ones(4))


def test_dropout_in_eval_mode_traces():
    drop = nn.Dropout(0.5).eval()
    x = cr.randn(4)
    np.testing.assert_array_equal(compiled(jit(lambda x: drop(x) * 2), x).numpy(),
                                  (x * 2).numpy())


def test_a_tracer_that_escaped_its_trace_is_named():
    leaked = []

    def leak(x):
        leaked.append(x * 2)
        return x

    compiled(jit(leak), cr.ones(2))
    use = jit(lambda x: x + leaked[-1])
    leaked.append(cr.ones(2))  # the eager call reads a real tensor
    use(cr.ones(2))
    leaked.append(leaked[-2])  # the traced call reads the escaped tracer
    with pytest.raises(TracerError, match="escaped its function"):
        use(cr.ones(2))


# ------------------------------------------------------------------ graphs

def mlp_loss(x, w, b):
    return (cr.tanh(x @ w + b) * 2.0).sum()


def test_make_graph_is_an_ssa_listing_with_shapes_and_dtypes():
    x, w, b = cr.randn(4, 3), cr.randn(3, 2), cr.randn(2)
    g = make_graph(mlp_loss)(x, w, b)
    assert isinstance(g, Graph)
    text = str(g)
    assert text.startswith("graph(%") and text.rstrip().endswith("}")
    assert [v.type for v in g.inputs] == ["f32[4,3]", "f32[3,2]", "f32[2]"]
    for v in g.inputs:
        assert f"%{v.id}: {v.type}" in text.splitlines()[0]
    for e in g.eqns:
        assert f"%{e.out.id}: {e.out.type} = {e.prim.name}" in text
    assert {"matmul", "tanh", "add", "mul", "sum"} <= set(g.op_counts())
    assert f"return %{g.outputs[0].id}" in text and g.outputs[0].type == "f32[]"
    # unoptimized: the explicit broadcasts are still there
    assert "broadcast_to" in g.op_counts()
    gs = make_graph(lambda x, k: x * k, static_argnums=1)(x, 3.0)
    assert "3.0" in str(gs)


def test_lower_shows_every_stage():
    x, w, b = cr.randn(4, 3), cr.randn(3, 2), cr.randn(2)
    f = cr.grad(mlp_loss, argnums=(1, 2))
    low = jit(f).lower(x, w, b)
    names = [n for n, _ in low.stages]
    assert names == ["trace"] + [n for n, _ in PIPELINE]
    assert low.counts() == [(n, len(g)) for n, g in low.stages]
    assert low.stages[0][1].op_counts() == make_graph(f)(x, w, b).op_counts()
    assert low.graph is low.stages[-1][1] and len(low.graph) <= len(low.stages[0][1])
    text = str(low)
    for name, g in low.stages:
        assert f"== after {name}: {len(g)} equations ==\n{g}" in text
    assert low.seconds > 0
    if PIPELINE:
        first = PIPELINE[0][0]
        skipped = jit(f, passes={first: False}).lower(x, w, b)
        assert first not in [n for n, _ in skipped.stages]
    with pytest.raises(ValueError, match="unknown passes"):
        jit(f, passes={"no such pass": False}).lower(x, w, b)


# ------------------------------------------------------------------ compositions

def f2(x, w):
    h = x @ w
    return (cr.tanh(h) ** 2 * cr.sigmoid(h)).sum() + (x ** 3).sum() * 0.1


def fd_grad(fn, args, i, eps=1e-6):
    """Central differences of the scalar ``fn`` in argument ``i``."""
    x = args[i].numpy()
    out = np.zeros_like(x)
    for k in range(x.size):
        vals = []
        for s in (eps, -eps):
            moved = x.copy()
            moved.flat[k] += s
            a = list(args)
            a[i] = cr.tensor(moved)
            vals.append(fn(*a).item())
        out.flat[k] = (vals[0] - vals[1]) / (2 * eps)
    return out


@pytest.fixture
def xw():
    return t64(3, 4), t64(4, 2)


def test_jit_of_grad_equals_eager_and_finite_differences(xw):
    g = cr.grad(f2, argnums=(0, 1))
    out = compiled(jit(g), *xw)
    for c, e in zip(out, g(*xw)):
        close(c, e)
    jf = jit(f2)
    compiled(jf, *xw)
    for i, c in enumerate(out):  # finite differences of the compiled function itself
        np.testing.assert_allclose(c.numpy(), fd_grad(jf, xw, i), rtol=1e-6, atol=1e-8)


def test_grad_of_jit_equals_eager(xw):
    jf = jit(f2)
    compiled(jf, *xw)  # compiled at the top level; under grad it runs inlined
    for c, e in zip(cr.grad(jf, argnums=(0, 1))(*xw), cr.grad(f2, argnums=(0, 1))(*xw)):
        close(c, e)
    x = xw[0].detach().requires_grad_()
    jf(x, xw[1]).backward()
    close(x.grad, cr.grad(f2)(*xw))


def test_jit_of_value_and_grad_with_a_pytree_of_parameters():
    params = {"w": t64(4, 2), "b": t64(2)}
    x, y = t64(5, 4), t64(5, 2)

    def loss(p, x, y):
        return cr.mse_loss(cr.tanh(x @ p["w"] + p["b"]), y)

    vg = cr.value_and_grad(loss)
    (v, gs), (ve, ges) = compiled(jit(vg), params, x, y), vg(params, x, y)
    close(v, ve)
    assert set(gs) == {"w", "b"}
    for k in gs:
        close(gs[k], ges[k])


def test_second_order_compositions(xw):
    x, w = xw
    v = t64(3, 4)

    def hv_dot(x, w, v):  # <grad_x f, v>; its gradient in x is H v
        return (cr.grad(f2)(x, w) * v).sum()

    eager = cr.grad(hv_dot)(x, w, v)
    jg = jit(cr.grad(f2))
    compiled(jg, x, w)
    eps = 1e-6  # H v by central differences of the compiled gradient
    fd = (jg(cr.tensor(x.numpy() + eps * v.numpy()), w).numpy()
          - jg(cr.tensor(x.numpy() - eps * v.numpy()), w).numpy()) / (2 * eps)
    np.testing.assert_allclose(eager.numpy(), fd, rtol=1e-5, atol=1e-7)
    close(compiled(jit(cr.grad(hv_dot)), x, w, v), eager)                  # jit(grad(grad))
    close(cr.grad(lambda x: (jg(x, w) * v).sum())(x), eager)               # grad(jit(grad))
    close(compiled(jit(cr.grad(lambda x: (jit(cr.grad(f2))(x, w) * v).sum())), x), eager)

    def scalar(x):
        return cr.tanh(x) ** 3 + x * cr.sigmoid(x)

    x0 = cr.tensor(0.3, dtype=cr.float64)
    d2 = compiled(jit(cr.grad(cr.grad(scalar))), x0)
    d1 = jit(cr.grad(scalar))
    compiled(d1, x0)
    fd2 = (d1(cr.tensor(0.3 + eps, dtype=cr.float64)).item()
           - d1(cr.tensor(0.3 - eps, dtype=cr.float64)).item()) / (2 * eps)
    assert d2.item() == pytest.approx(fd2, rel=1e-6)
    close(d2, cr.grad(cr.grad(scalar))(x0))


def test_gradcheck_through_jit(xw):
    x, w = (a.detach().requires_grad_() for a in xw)
    assert gradcheck(jit(cr.grad(f2, argnums=(0, 1))), [x, w])
    assert gradgradcheck(jit(f2), [x, w])


# ------------------------------------------------------------------ training steps

def make_step(opt_name, batchnorm=False, wide=False):
    """A training step; ``wide`` layers (batch 16) have at least twice as many outputs
    as rows, which ``linear`` computes as F-ordered products (ops/linalg.by_columns)."""
    cr.manual_seed(0)
    h = 64 if wide else 16
    layers = [nn.Linear(6, h)] + ([nn.BatchNorm1d(h)] if batchnorm else []) + [nn.Tanh()] + \
        ([nn.Linear(h, 48), nn.ReLU(), nn.Linear(48, 3)] if wide else [nn.Linear(h, 3)])
    model = nn.Sequential(*layers)
    opt = (optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt_name == "sgd"
           else optim.Adam(model.parameters(), lr=0.01))

    def step(x, y):
        opt.zero_grad()
        loss = cr.cross_entropy(model(x), y)  # (B, 3) logits
        loss.backward()
        opt.step()
        return loss
    return model, opt, step


def state_arrays(model, opt):
    """Parameters, their .grad, buffers and optimizer state, as arrays."""
    out = {}
    for name, p in model.named_parameters():
        out[name] = p.detach().numpy().copy()
        out[name + ".grad"] = p.grad.numpy().copy()
        for k, s in opt.state[p].items():
            out[f"{name}.{k}"] = np.array(s.numpy() if isinstance(s, cr.Tensor) else s)
    for name, b in model.named_buffers():
        out[name] = b.numpy().copy()
    return out


@pytest.mark.parametrize("wide", [False, True], ids=["narrow", "wide"])
@pytest.mark.parametrize("batchnorm", [False, True], ids=["mlp", "batchnorm"])
@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_jitted_training_step_equals_eager_bitwise(opt_name, batchnorm, wide, monkeypatch):
    # Bit for bit with fused groups on NumPy kernels (the ufuncs eager runs); numba
    # kernels compute exp/tanh/log with their own scalar code, a few ulp apart.
    monkeypatch.setenv("CHAINRULE_FUSION_TARGET", "numpy")
    rng = np.random.default_rng(1)
    n = 16 if wide else 8
    data = [(cr.tensor(rng.standard_normal((n, 6)).astype(np.float32)),
             cr.tensor(rng.integers(0, 3, n))) for _ in range(5)]
    eager_model, eager_opt, eager_step = make_step(opt_name, batchnorm, wide)
    model, opt, step = make_step(opt_name, batchnorm, wide)
    jstep = jit(step)
    for k, (x, y) in enumerate(data):
        le, lj = eager_step(x, y), jstep(x, y)
        assert len(jstep.cache) == (k > 0)
        # the loss differs in the last bit: eager cross_entropy skips the ignore_index
        # mask when no target is ignored (a mean), the trace cannot look (sum / count)
        assert lj.item() == pytest.approx(le.item(), rel=1e-6)
        want, got = state_arrays(eager_model, eager_opt), state_arrays(model, opt)
        assert want.keys() == got.keys()
        for name in want:
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"step {k}: {name}")
    if batchnorm:
        assert model[1].num_batches_tracked.item() == len(data)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_a_training_step_is_traced_once(set_to_none):
    model, opt, _ = make_step("sgd")
    calls = []

    def step(x, y):
        calls.append(1)
        opt.zero_grad(set_to_none=set_to_none)
        cr.cross_entropy(model(x), y).backward()
        opt.step()

    jstep = jit(step)
    x, y = cr.randn(8, 6), cr.tensor(np.arange(8) % 3)
    for _ in range(5):
        jstep(x, y)
    assert len(calls) == 2  # one eager call, one trace
    assert sum(len(v) for v in jstep.cache.values()) == 1


def test_a_scheduler_updates_a_tensor_lr_read_by_a_jitted_step():
    runs = []
    for use_jit in (False, True):
        cr.manual_seed(0)
        model = nn.Linear(4, 2)
        opt = optim.SGD(model.parameters(), lr=cr.tensor(0.1), momentum=0.9)
        sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

        def step(x, y):
            opt.zero_grad()
            loss = cr.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss

        step = jit(step) if use_jit else step
        rng = np.random.default_rng(2)
        for _ in range(6):
            step(cr.tensor(rng.standard_normal((5, 4)).astype(np.float32)),
                 cr.tensor(rng.standard_normal((5, 2)).astype(np.float32)))
            sched.step()
        runs.append([p.detach().numpy() for p in model.parameters()])
    assert step.cache and len(step.cache) == 1
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_batchnorm_running_stats_in_a_jitted_forward_under_no_grad():
    cr.manual_seed(0)
    bn, ref = nn.BatchNorm1d(4), nn.BatchNorm1d(4)
    fwd = jit(lambda x: bn(x) * 2)
    xs = [cr.randn(8, 4) for _ in range(3)]
    with cr.no_grad():
        for x in xs:
            close(fwd(x), ref(x) * 2, 1e-6, 1e-6)
        bn.eval()  # the mode is Python state, frozen into a trace: a new jit for eval
        ref.eval()
        close(compiled(jit(lambda x: bn(x) * 2), xs[0]), ref(xs[0]) * 2, 1e-6, 1e-6)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_array_equal(getattr(bn, name).numpy(), getattr(ref, name).numpy())


def test_inplace_writes_on_captured_tensors_are_written_back():
    total, rows = cr.zeros(3), cr.zeros(2, 3)

    def accumulate(x):
        total.add_(x)
        rows[1].mul_(0.5).add_(x)  # through a view
        return total * 1, total

    jf = jit(accumulate)
    x = cr.tensor([1.0, 2.0, 3.0])
    outs = [jf(x) for _ in range(4)]
    assert len(jf.cache) == 1
    np.testing.assert_array_equal(total.numpy(), 4 * x.numpy())
    np.testing.assert_array_equal(rows.numpy()[0], 0)
    np.testing.assert_array_equal(rows.numpy()[1], x.numpy() * (1 + .5 + .25 + .125))
    for k, (copy, _) in enumerate(outs):  # earlier results are not overwritten later
        np.testing.assert_array_equal(copy.numpy(), (k + 1) * x.numpy())


def test_inplace_writes_on_arguments_are_written_back():
    jf = jit(lambda x: x.add_(1) * 2)
    x = cr.zeros(3)
    for _ in range(3):
        jf(x)
    np.testing.assert_array_equal(x.numpy(), [3.0] * 3)


def test_gradients_accumulate_across_compiled_calls():
    cr.manual_seed(0)
    model = nn.Linear(3, 2)
    x = cr.randn(4, 3)

    def accumulate(x):
        loss = model(x).pow(2).sum()
        loss.backward()
        return loss

    jf = jit(accumulate)
    one = cr.grad(lambda w: (x @ w.T + model.bias).pow(2).sum())(model.weight.detach())
    for _ in range(4):
        jf(x)
    close(model.weight.grad, one * 4, 1e-5, 1e-5)


def test_constant_outputs_are_writable():
    out = compiled(jit(lambda x: cr.ones(3)), cr.ones(2))
    out.add_(1)
    np.testing.assert_array_equal(out.numpy(), [2.0] * 3)


def test_outputs_that_need_parameter_gradients_warn_and_run_eagerly():
    cr.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = cr.randn(5, 3), cr.randn(5, 2)

    def model_loss(x):
        return cr.mse_loss(model(x), y)

    model_loss(x).backward()
    want = [p.grad.numpy().copy() for p in model.parameters()]
    jl = jit(model_loss)
    jl(x)  # the first call is eager anyway
    for k in range(3):
        model.zero_grad()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss = jl(x)
        assert [str(w.message) for w in caught if "need gradients" in str(w.message)] == \
            ([] if k else [str(caught[0].message)]), "warned once, at the first fallback"
        assert loss.requires_grad
        loss.backward()
        for p, g in zip(model.parameters(), want):
            np.testing.assert_array_equal(p.grad.numpy(), g)
    with cr.no_grad():  # inference: the compiled graph runs
        close(jl(x), model_loss(x), 1e-6, 1e-6)


def test_a_step_that_calls_backward_compiles_even_when_it_clears_the_gradients():
    """A raw-tensor step (backward, update, ``p.grad = None``) returning its loss is a
    training step: it compiles (no eager fallback, no warning) and matches eager."""
    def make():
        rng = np.random.default_rng(0)
        ps = [cr.tensor(rng.standard_normal(s), requires_grad=True) for s in [(4, 3), (3,)]]

        def step(x):
            loss = ((x @ ps[0] + ps[1]) ** 2).mean()
            loss.backward()
            with cr.no_grad():
                for p in ps:
                    p -= 0.1 * p.grad
                    p.grad = None
            return loss
        return ps, step
    x = cr.tensor(np.random.default_rng(1).standard_normal((8, 4)))
    (ps_e, step_e), (ps_j, step_j) = make(), make()
    jstep = jit(step_j)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(4):
            assert jstep(x).item() == step_e(x).item()
            assert len(jstep.cache) == (k > 0) and all(p.grad is None for p in ps_j)
    for a, b in zip(ps_j, ps_e):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_write_back_takes_over_private_results_and_copies_into_aliased_buffers():
    """A captured tensor written in place gets the compiled result's buffer when nothing
    else sees its own (no copy); with an alias alive it is copied into, so the alias sees
    it. Values and version counts are the same either way."""
    w = cr.tensor(np.arange(6.0).reshape(2, 3))

    @jit
    def bump(x):
        w.add_(x)
        return w.sum()

    x = cr.ones(2, 3)
    bump(x), bump(x)  # eager, then traced
    version, before = w._version_count, id(w.data)
    assert bump(x).item() == float((np.arange(6.0) + 3).sum())
    assert id(w.data) != before and w._version_count == version + 1  # taken over
    alias = w.numpy()
    bump(x)
    assert alias is w.data and w._version_count == version + 2  # copied into
    np.testing.assert_array_equal(alias, np.arange(6.0).reshape(2, 3) + 4)


def test_a_changed_module_mode_or_parameter_retraces():
    cr.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    x = cr.randn(8, 3)
    f = jit(lambda x: bn(x))
    with cr.no_grad():
        for _ in range(2):
            f(x)
        bn.eval()
        for _ in range(2):
            got = f(x)
        np.testing.assert_array_equal(got.data, bn(x).data)
        lin = nn.Linear(3, 2)
        g = jit(lambda x: lin(x))
        for _ in range(2):
            g(x)
        lin.weight = nn.Parameter(cr.zeros(2, 3))
        for _ in range(2):
            got = g(x)
        np.testing.assert_array_equal(got.data, lin(x).data)


def test_indexing_by_an_integer_tensor_traces():
    x = cr.randn(5, 3)
    f = jit(lambda x, i: x[i] * 2)
    for i in ([0, 4, 4], [1, 2, 3]):
        for _ in range(2):
            got = f(x, cr.tensor(i))
        np.testing.assert_array_equal(got.data, x.data[i] * 2)


@pytest.mark.parametrize("update", ["optimizer", "raw", "clip"])
def test_a_jitted_update_reads_each_steps_new_gradients(update):
    """A jitted function that only updates (backward runs outside it, rebinding .grad to
    new tensors every step) reads the gradients through their parameters at every call,
    also when it reads ``p.grad`` before ``p`` itself (``p -= lr * p.grad``) or reads
    only the gradients (clipping)."""
    def make():
        cr.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
        return model, optim.SGD(model.parameters(), lr=0.1)

    def update_fn(model, opt):
        if update == "optimizer":
            return opt.step
        if update == "clip":
            def clip_and_step():
                nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                opt.step()
            return clip_and_step

        def raw():
            with cr.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
        return raw

    (m_e, o_e), (m_j, o_j) = make(), make()
    eager, jitted = update_fn(m_e, o_e), jit(update_fn(m_j, o_j))
    x, y = cr.tensor(R.standard_normal((8, 6))), cr.tensor(np.arange(8) % 3)
    for _ in range(5):
        for model, opt, upd in ((m_e, o_e, eager), (m_j, o_j, jitted)):
            opt.zero_grad()
            cr.cross_entropy(model(x), y).backward()
            upd()
        for a, b in zip(m_j.parameters(), m_e.parameters()):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert sum(len(v) for v in jitted.cache.values()) == 1


def test_a_write_is_computed_in_the_tensors_own_buffer_when_no_one_else_sees_it():
    """As JAX's donated arguments: the kernel that makes a captured tensor's new value
    from its old one writes it in place (numba kernels read the element through the
    output array, so they stay vectorized); an alias alive forces a fresh result that
    is copied in, so the alias sees it. The numbers are the same either way."""
    pytest.importorskip("numba")
    from chainrule.compile.codegen import NUMBA_MIN_SIZE
    n = NUMBA_MIN_SIZE + 1
    w = cr.tensor(np.linspace(-1, 1, n).astype(np.float32))
    m = cr.zeros(n)

    @jit
    def update(g):
        m.mul_(0.9).add_(g)  # two outputs of one kernel, each in its own buffer
        w.sub_(0.1 * m)

    g = cr.tensor(np.cos(np.arange(n)).astype(np.float32))
    want_w, want_m = w.numpy().copy(), m.numpy().copy()
    for k in range(4):
        if k == 2:
            alias = w.numpy()  # from now on w's buffer is seen: copied into
        before = [id(w.data), id(m.data)]
        update(g)
        want_m = (want_m * np.float32(0.9) + g.numpy()).astype(np.float32)
        want_w = want_w - np.float32(0.1) * want_m
        np.testing.assert_array_equal(m.numpy(), want_m)
        np.testing.assert_array_equal(w.numpy(), want_w)
        if k == 1:
            assert [id(w.data), id(m.data)] == before
        if k >= 2:
            assert alias is w.data
            np.testing.assert_array_equal(alias, want_w)
    (entry,) = next(iter(update.cache.values()))
    assert len(entry.donors) == 2


def test_passes_take_options_by_name():
    f = lambda x: cr.exp(x) * 2 + 1  # noqa: E731
    x = cr.randn(5)
    for target in ("numpy", "numba"):
        if target == "numba":
            pytest.importorskip("numba")
        jf = jit(f, passes={"fuse": {"target": target}})
        graph = jf.lower(x).graph
        (e,) = graph.eqns
        assert e.prim.target == target
        np.testing.assert_allclose(jf(jf(x) * 0 + x).data, f(x).data, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown passes"):
        jit(f, passes={"fusion": False}).lower(x)
