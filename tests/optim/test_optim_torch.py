"""Every optimizer, step for step against PyTorch's (``foreach=False``): the same small
model, the same initial weights, gradients from the same loss in each framework."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed: reference tests skipped")

import chainrule as cr  # noqa: E402
from chainrule import optim  # noqa: E402

STEPS = 10
SHAPES = [(4, 6), (6,), (6, 3), (3,)]  # a 4-6-3 tanh MLP


def _data(seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) * 0.5 for s in SHAPES]
    x, y = rng.standard_normal((16, 4)), rng.standard_normal((16, 3))
    return init, x, y


def _loss(lib, ps, x, y):
    w1, b1, w2, b2 = ps
    h = lib.tanh(x @ w1 + b1)
    return ((h @ w2 + b2 - y) ** 2).mean()


def _groups(ps, groups):
    """Parameters as one list, or as groups: ``groups`` is a list of (indices, options)."""
    if groups is None:
        return ps
    return [{"params": [ps[i] for i in idx], **opts} for idx, opts in groups]


def _run(name, kw, dtype, groups=None, steps=STEPS, seed=0):
    """Final parameters and both optimizers after ``steps`` steps in each framework."""
    init, x, y = _data(seed)
    cps = [cr.tensor(a.astype(dtype), requires_grad=True) for a in init]
    tps = [torch.tensor(a.astype(dtype), requires_grad=True) for a in init]
    copt = getattr(optim, name)(_groups(cps, groups), **kw)
    topt = getattr(torch.optim, name)(_groups(tps, groups), foreach=False, **kw)
    cx, cy = cr.tensor(x.astype(dtype)), cr.tensor(y.astype(dtype))
    tx, ty = torch.tensor(x.astype(dtype)), torch.tensor(y.astype(dtype))
    for _ in range(steps):
        copt.zero_grad()
        _loss(cr, cps, cx, cy).backward()
        copt.step()
        topt.zero_grad()
        _loss(torch, tps, tx, ty).backward()
        topt.step()
    return cps, tps, copt, topt


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.6), eps=1e-3)),  # lerp's other branch (w >= 0.5)
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-3)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, centered=True)),  # lerp's other branch
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, maximize=True, eps=1e-4)),
]
IDS = [f"{n}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for n, kw in CONFIGS]


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_matches_torch_float64(name, kw):
    cps, tps, _, _ = _run(name, kw, np.float64)
    for c, t in zip(cps, tps):
        np.testing.assert_allclose(c.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_matches_torch_float32(name, kw):
    """float32 rounding differs between the frameworks (and centered RMSprop amplifies it
    in ``square_avg - grad_avg**2``), so: close to PyTorch's float32 result, and no
    further from the float64 result than PyTorch's float32 result is."""
    cps, tps, _, _ = _run(name, kw, np.float32)
    ref, _, _, _ = _run(name, kw, np.float64)
    for c, t, r in zip(cps, tps, ref):
        assert c.dtype == np.float32
        t = t.detach().numpy()
        np.testing.assert_allclose(c.data, t, rtol=1e-4, atol=2e-5)
        assert np.abs(c.data - r.data).max() <= 2 * np.abs(t - r.data).max() + 5e-7


GROUPED = [
    ("SGD", dict(lr=0.1, momentum=0.9),
     [([0, 1], {}), ([2, 3], dict(lr=0.01, nesterov=True, momentum=0.5))]),
    ("Adam", dict(lr=0.01), [([0, 2], dict(amsgrad=True)), ([1, 3], dict(lr=0.001))]),
    ("AdamW", dict(lr=0.01), [([0, 2], {}), ([1, 3], dict(weight_decay=0.0, lr=0.1))]),
    ("Adagrad", dict(lr=0.1), [([0], dict(lr_decay=0.2)), ([1, 2, 3], {})]),
    ("RMSprop", dict(lr=0.01), [([0, 1, 2], dict(centered=True)),
                                ([3], dict(lr=0.1, momentum=0.9))]),
]


@pytest.mark.parametrize("name,kw,groups", GROUPED, ids=[g[0] for g in GROUPED])
def test_param_groups_match_torch(name, kw, groups):
    cps, tps, _, _ = _run(name, kw, np.float64, groups)
    for c, t in zip(cps, tps):
        np.testing.assert_allclose(c.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,kw,groups", GROUPED, ids=[g[0] for g in GROUPED])
def test_state_dict_matches_torch(name, kw, groups):
    """Same layout and values: state keyed by parameter index, groups with index lists."""
    _, _, copt, topt = _run(name, kw, np.float64, groups, steps=3)
    cs, ts = copt.state_dict(), topt.state_dict()
    assert sorted(cs["state"]) == sorted(ts["state"])
    for i, tstate in ts["state"].items():
        assert set(cs["state"][i]) == set(tstate)
        for key, tval in tstate.items():
            cval = cs["state"][i][key]
            if key == "step":
                assert cval == int(tval)
            else:
                np.testing.assert_allclose(cval.data, tval.numpy(), rtol=1e-10, atol=1e-12)
    torch_only = {"foreach", "capturable", "differentiable"}
    for cg, tg in zip(cs["param_groups"], ts["param_groups"]):
        assert cg["params"] == tg["params"]
        assert cg["fused"] is None  # (PyTorch's RMSprop has no fused option)
        assert set(cg) - {"fused"} == set(tg) - torch_only - {"fused"}
        for key in set(cg) & set(tg):
            assert cg[key] == (tuple(tg[key]) if key == "betas" else tg[key]), key


def test_load_torch_state_dict():
    """A PyTorch optimizer's state dict, its tensors converted, resumes in chainrule."""
    name, kw = "Adam", dict(lr=0.01, amsgrad=True)
    init, x, y = _data()
    tps = [torch.tensor(a, requires_grad=True) for a in init]
    topt = torch.optim.Adam(tps, foreach=False, **kw)
    tx, ty = torch.tensor(x), torch.tensor(y)
    for k in range(6):
        if k == 3:
            sd = topt.state_dict()
            state = {i: {n: (cr.tensor(v.numpy().copy()) if isinstance(v, torch.Tensor) else v)
                         for n, v in s.items()} for i, s in sd["state"].items()}
            groups = [{k2: v for k2, v in g.items() if k2 not in
                       {"foreach", "fused", "capturable", "differentiable"}}
                      for g in sd["param_groups"]]
            cps = [cr.tensor(p.detach().numpy().copy(), requires_grad=True) for p in tps]
            copt = getattr(optim, name)(cps, **kw)
            copt.load_state_dict({"state": state, "param_groups": groups})
        topt.zero_grad()
        _loss(torch, tps, tx, ty).backward()
        topt.step()
        if k >= 3:
            copt.zero_grad()
            _loss(cr, cps, cr.tensor(x), cr.tensor(y)).backward()
            copt.step()
    for c, t in zip(cps, tps):
        np.testing.assert_allclose(c.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_unused_parameter_skipped_like_torch():
    """A parameter without a gradient is not updated and gets no state."""
    init, x, y = _data()
    extra = np.ones(3)
    cps = [cr.tensor(a, requires_grad=True) for a in init] + [cr.tensor(extra,
                                                                       requires_grad=True)]
    tps = [torch.tensor(a, requires_grad=True) for a in init] + [torch.tensor(
        extra, requires_grad=True)]
    copt, topt = optim.Adam(cps, lr=0.1), torch.optim.Adam(tps, lr=0.1, foreach=False)
    for _ in range(3):
        copt.zero_grad()
        _loss(cr, cps[:4], cr.tensor(x), cr.tensor(y)).backward()
        copt.step()
        topt.zero_grad()
        _loss(torch, tps[:4], torch.tensor(x), torch.tensor(y)).backward()
        topt.step()
    np.testing.assert_array_equal(cps[4].data, extra)
    assert sorted(copt.state_dict()["state"]) == sorted(topt.state_dict()["state"]) == [0, 1, 2,
                                                                                          3]
