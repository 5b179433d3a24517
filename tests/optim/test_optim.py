"""The Optimizer machinery: parameter groups, zero_grad, closures, in-place updates and
version counters, state dicts and exact resumption, and the pure update rules."""
from __future__ import annotations

import io

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.optim import functional as F

OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
]
IDS = [f"{n}{i}" for i, (n, _) in enumerate(OPTIMIZERS)]


def _problem(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    ps = [cr.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
          for s in [(3, 4), (4,), (4, 2)]]
    x = cr.tensor(rng.standard_normal((10, 3)).astype(dtype))
    y = cr.tensor(rng.standard_normal((10, 2)).astype(dtype))
    return ps, x, y


def _loss(ps, x, y):
    return (((cr.tanh(x @ ps[0] + ps[1]) @ ps[2]) - y) ** 2).mean()


def _groups(ps):
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.05}]


def _train(opt, ps, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        _loss(ps, x, y).backward()
        opt.step()


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=IDS)
def test_resume_is_bitwise_exact(name, kw):
    """5 steps, state_dict, a new optimizer loads it, 5 more == 10 uninterrupted steps."""
    ps, x, y = _problem()
    opt = getattr(optim, name)(_groups(ps), **kw)
    _train(opt, ps, x, y, 10)

    qs, x, y = _problem()
    first = getattr(optim, name)(_groups(qs), **kw)
    _train(first, qs, x, y, 5)
    saved = first.state_dict()
    rs = [cr.tensor(q.data.copy(), requires_grad=True) for q in qs]
    _train(first, qs, x, y, 2)  # the saved dict is a snapshot: later steps don't change it
    resumed = getattr(optim, name)(_groups(rs), **{**kw, "lr": 123.0})
    resumed.load_state_dict(saved)
    assert resumed.param_groups[1]["lr"] == 0.05  # the saved options win
    _train(resumed, rs, x, y, 5)
    for p, r in zip(ps, rs):
        np.testing.assert_array_equal(p.data, r.data)


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=IDS)
def test_resume_through_checkpoint_file(name, kw):
    """The state dict survives chainrule.save/load (safetensors) and resumes exactly."""
    pytest.importorskip("safetensors")
    cio = pytest.importorskip("chainrule.io")
    ps, x, y = _problem()
    opt = getattr(optim, name)(_groups(ps), **kw)
    _train(opt, ps, x, y, 8)

    qs, x, y = _problem()
    first = getattr(optim, name)(_groups(qs), **kw)
    _train(first, qs, x, y, 4)
    buf = io.BytesIO()
    cio.save({"params": qs, "optim": first.state_dict()}, buf)
    buf.seek(0)
    ckpt = cio.load(buf)
    rs = [cr.tensor(t.data.copy(), requires_grad=True) for t in ckpt["params"]]
    second = getattr(optim, name)(_groups(rs), **kw)
    second.load_state_dict(ckpt["optim"])
    _train(second, rs, x, y, 4)
    for p, r in zip(ps, rs):
        np.testing.assert_array_equal(p.data, r.data)


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=IDS)
def test_step_updates_in_place(name, kw):
    """Parameters keep their identity, buffer and views; the version counter moves, so a
    graph that saved a parameter before the step refuses to backward after it."""
    ps, x, y = _problem()
    buffers = [p.data for p in ps]
    opt = getattr(optim, name)(ps, **kw)
    before = [p.data.copy() for p in ps]
    versions = [p._version_count for p in ps]
    _loss(ps, x, y).backward()
    stale = _loss(ps, x, y)  # saves the parameters
    with cr.no_grad():
        view = ps[0][0]
    opt.step()
    for p, b, old, v in zip(ps, buffers, before, versions):
        assert p.data is b and p.is_leaf and p.requires_grad
        assert not np.array_equal(p.data, old)
        assert p._version_count == v + 1
    np.testing.assert_array_equal(view.data, ps[0].data[0])
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        stale.backward()


def test_step_takes_over_private_results():
    """With nothing else seeing a parameter's buffer, the step gives the parameter the
    rule's result buffer instead of copying it: same values and version count as a copy.
    An alias (detach, numpy) or a view makes it copy, so the alias sees the update."""
    ps, x, y = _problem()
    opt = optim.SGD(ps, lr=0.1)
    _loss(ps, x, y).backward()
    with cr.no_grad():
        want = [w.data.copy() for w in F.sgd(ps, [p.grad for p in ps], [None] * 3, lr=0.1)[0]]
    ids, versions = [id(p.data) for p in ps], [p._version_count for p in ps]
    opt.step()
    for p, w, v in zip(ps, want, versions):
        np.testing.assert_array_equal(p.data, w)
        assert p._version_count == v + 1
    assert all(id(p.data) != i for p, i in zip(ps, ids))  # taken over, not copied
    alias, array = ps[0].detach(), ps[1].detach().numpy()
    with cr.no_grad():
        view = ps[2][0]
    ids = [id(p.data) for p in ps]
    _loss(ps, x, y).backward()
    opt.step()
    assert [id(p.data) == i for p, i in zip(ps, ids)] == [True, True, True]
    np.testing.assert_array_equal(alias.data, ps[0].data)
    np.testing.assert_array_equal(array, ps[1].data)
    np.testing.assert_array_equal(view.data, ps[2].data[0])


def test_zero_grad():
    ps, x, y = _problem()
    opt = optim.SGD(ps, lr=0.1)
    _loss(ps, x, y).backward()
    grads = [p.grad for p in ps]
    opt.zero_grad(set_to_none=False)
    for p, g in zip(ps, grads):
        assert p.grad is g and not np.any(g.data)
    opt.zero_grad()
    assert all(p.grad is None for p in ps)


def test_closure_and_skipped_parameters():
    ps, x, y = _problem()
    unused = cr.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam(ps + [unused], lr=0.1)
    calls = []

    def closure():
        opt.zero_grad()
        loss = _loss(ps, x, y)
        loss.backward()
        calls.append(cr.is_grad_enabled())
        return loss

    with cr.no_grad():
        loss = opt.step(closure)
    assert calls == [True] and float(loss) > 0
    np.testing.assert_array_equal(unused.data, [1.0, 2.0])
    assert unused not in opt.state and len(opt.state) == 3
    assert opt.step() is None


def test_param_groups_and_defaults():
    ps, x, y = _problem()
    opt = optim.SGD(ps[:1], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": ps[1], "lr": 0.01})
    opt.add_param_group({"params": ps[2:], "momentum": 0.0})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01, 0.1]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.9, 0.0]
    assert opt.param_groups[1]["params"] == [ps[1]]
    _train(opt, ps, x, y, 2)
    assert set(opt.state) == {ps[0], ps[1]}  # no momentum buffer without momentum
    text = repr(opt)
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.01" in text


def test_param_group_errors():
    ps, _, _ = _problem()
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(ps[0], lr=0.1)
    with pytest.raises(TypeError, match="ordered collection"):
        optim.SGD({ps[0]}, lr=0.1)
    with pytest.raises(TypeError, match="ordered collection"):
        optim.SGD([{"params": {ps[0]}}], lr=0.1)
    with pytest.raises(TypeError, match="parameter 1 of the group is a list"):
        optim.SGD([ps[0], [1.0]], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([ps[0] * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([ps[0], ps[0]], lr=0.1)
    opt = optim.SGD(ps[:2], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group") as err:
        opt.add_param_group({"params": [ps[1], ps[2]]})
    assert "test_optim.py" in str(err.value)  # names the user's line


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-1.0), "invalid learning rate"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "invalid beta1"),
    (lambda p: optim.AdamW(p, eps=-1.0), "invalid epsilon"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.1), "invalid lr_decay"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), "invalid alpha"),
])
def test_invalid_options(make, match):
    with pytest.raises(ValueError, match=match):
        make(_problem()[0])


def test_load_state_dict_checks_and_casts():
    ps, x, y = _problem()
    opt = optim.Adam(_groups(ps), lr=0.1)
    _train(opt, ps, x, y, 2)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="2 parameter groups, the optimizer 1"):
        optim.Adam(ps, lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state dict but 1"):
        optim.Adam([{"params": ps[:1]}, {"params": ps[1:]}], lr=0.1).load_state_dict(sd)
    # float32 parameters: float64 state is cast and copied; string indices are accepted
    qs, _, _ = _problem(dtype=np.float32)
    opt32 = optim.Adam(_groups(qs), lr=0.1)
    sd["state"] = {str(k): v for k, v in sd["state"].items()}
    opt32.load_state_dict(sd)
    st = opt32.state[qs[0]]
    assert st["exp_avg"].dtype == np.float32 and st["step"] == 2
    assert st["exp_avg"].data is not opt.state[ps[0]]["exp_avg"].data


def test_tensor_learning_rate():
    """lr may be a 0-d tensor (also float64 for float32 parameters: it is cast)."""
    ps, x, y = _problem(dtype=np.float32)
    qs, _, _ = _problem(dtype=np.float32)
    a = optim.SGD(ps, lr=cr.tensor(0.1, dtype=cr.float64), momentum=0.9)
    b = optim.SGD(qs, lr=0.1, momentum=0.9)
    _train(a, ps, x, y, 3)
    _train(b, qs, x, y, 3)
    for p, q in zip(ps, qs):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.data, q.data, rtol=1e-6)


# ------------------------------------------------------------- the pure rules

def _snapshot(*lists):
    return [[None if t is None else t.data.copy() for t in lst] for lst in lists]


def test_functional_rules_are_pure():
    rng = np.random.default_rng(1)
    ps = [cr.tensor(rng.standard_normal(5)) for _ in range(2)]
    gs = [cr.tensor(rng.standard_normal(5)) for _ in range(2)]
    st = [cr.tensor(rng.random(5)) for _ in range(2)]
    calls = [
        lambda: F.sgd(ps, gs, st, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.1),
        lambda: F.sgd(ps, gs, [None, None], lr=0.1, momentum=0.9, nesterov=True),
        lambda: F.adam(ps, gs, st, st, st, [3, 3], lr=0.1, amsgrad=True, weight_decay=0.1),
        lambda: F.adam(ps, gs, st, st, None, [0, 0], lr=0.1, weight_decay=0.1,
                       decoupled=True, maximize=True),
        lambda: F.adagrad(ps, gs, st, [1, 1], lr=0.1, lr_decay=0.1, weight_decay=0.1),
        lambda: F.rmsprop(ps, gs, st, st, st, lr=0.1, centered=True, momentum=0.9),
    ]
    for call in calls:
        before = _snapshot(ps, gs, st)
        out = call()
        for now, then in zip(_snapshot(ps, gs, st), before):
            for a, b in zip(now, then):
                np.testing.assert_array_equal(a, b)
        new_params = out[0]
        assert len(new_params) == 2
        assert all(n is not p and not np.array_equal(n.data, p.data)
                   for n, p in zip(new_params, ps))


def test_functional_first_momentum_buffer_is_a_copy():
    p, g = cr.tensor([1.0, 2.0]), cr.tensor([0.5, -0.5])
    (new_p,), (buf,) = F.sgd([p], [g], [None], lr=0.1, momentum=0.9)
    assert buf is not g and buf.data is not g.data
    np.testing.assert_array_equal(buf.data, g.data)
    np.testing.assert_allclose(new_p.data, [0.95, 2.05])


def test_functional_steps_and_optional_state():
    p, g, z = cr.tensor([1.0]), cr.tensor([1.0]), cr.tensor([0.0])
    *_, vmax, steps = F.adam([p], [g], [z], [z], None, [4], lr=0.1)
    assert vmax is None and steps == [5]
    _, _, gavg, bufs = F.rmsprop([p], [g], [z], None, None, lr=0.1)
    assert gavg is None and bufs is None
    # Adam's first step moves each coordinate by about lr
    (new_p,), *_ = F.adam([p], [g], [z], [z], None, [0], lr=0.1)
    np.testing.assert_allclose(new_p.data, [0.9], rtol=1e-6)


def test_functional_missing_state_is_named():
    p, g, z = cr.tensor([1.0]), cr.tensor([1.0]), cr.tensor([0.0])
    with pytest.raises(ValueError, match="adam: amsgrad=True needs max_exp_avg_sqs"):
        F.adam([p], [g], [z], [z], None, [0], lr=0.1, amsgrad=True)
    with pytest.raises(ValueError, match="rmsprop: centered=True needs grad_avgs"):
        F.rmsprop([p], [g], [z], None, None, lr=0.1, centered=True)
    with pytest.raises(ValueError, match="rmsprop: momentum needs momentum_buffers"):
        F.rmsprop([p], [g], [z], None, None, lr=0.1, momentum=0.9)
