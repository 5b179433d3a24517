"""chainrule.nn against torch.nn: the same layer with the same weights (copied through
``load_state_dict``) gives the same outputs and the same gradients for the input and
every parameter, in float64 and float32; losses in every reduction mode; BatchNorm's
running statistics over several steps; repr and state_dict keys."""
from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed: reference tests skipped")
tnn = torch.nn
TF = torch.nn.functional

import chainrule as cr  # noqa: E402
import chainrule.nn as nn  # noqa: E402
import chainrule.nn.functional as F  # noqa: E402

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-5)}


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.detach().numpy()


def copy_from_torch(cm: nn.Module, tm, dtype) -> None:
    """Load torch's state into chainrule's (numpy arrays in, chainrule converts)."""
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    res = cm.load_state_dict(sd)
    assert not res.missing_keys and not res.unexpected_keys
    cm.to(dtype)


def check_module(cm, tm, inputs, dtype, train=True, tol=None):
    """Forward and backward both with a shared random cotangent; compare everything."""
    dtype = np.dtype(dtype).type
    tol = tol or TOL[dtype]
    tm = tm.to(torch.float64 if dtype is np.float64 else torch.float32)
    copy_from_torch(cm, tm, dtype)
    cm.train(train)
    tm.train(train)
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in inputs]
    cx = [cr.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    tx = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    cy, ty = cm(*cx), tm(*tx)
    assert cy.dtype == dtype
    np.testing.assert_allclose(cy.data, _np(ty), **tol)
    g = np.random.default_rng(1).standard_normal(cy.shape).astype(dtype)
    cy.backward(cr.tensor(g))
    ty.backward(torch.tensor(g))
    for c, t in zip(cx, tx):
        if t.requires_grad:
            np.testing.assert_allclose(c.grad.data, t.grad.numpy(), **tol)
    tparams = dict(tm.named_parameters())
    cparams = dict(cm.named_parameters())
    assert cparams.keys() == tparams.keys()
    for name, tp in tparams.items():
        assert cparams[name].grad.dtype == dtype, name
        np.testing.assert_allclose(cparams[name].grad.data, tp.grad.numpy(), **tol,
                                   err_msg=name)
    for name, tb in tm.named_buffers():
        np.testing.assert_allclose(cm.get_buffer(name).data, tb.numpy(), **tol)


def rn(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


LAYERS = [
    ("linear", lambda: (nn.Linear(5, 3), tnn.Linear(5, 3)), [rn(4, 5)]),
    ("linear_3d_nobias", lambda: (nn.Linear(5, 3, bias=False), tnn.Linear(5, 3, bias=False)),
     [rn(2, 4, 5)]),
    ("linear_1d", lambda: (nn.Linear(5, 3), tnn.Linear(5, 3)), [rn(5)]),
    ("bilinear", lambda: (nn.Bilinear(3, 4, 2), tnn.Bilinear(3, 4, 2)), [rn(5, 3), rn(5, 4)]),
    ("flatten", lambda: (nn.Flatten(), tnn.Flatten()), [rn(2, 3, 4)]),
    ("unflatten", lambda: (nn.Unflatten(1, (2, 6)), tnn.Unflatten(1, (2, 6))), [rn(3, 12)]),
    ("identity", lambda: (nn.Identity(7), tnn.Identity(7)), [rn(3, 2)]),
    ("relu", lambda: (nn.ReLU(), tnn.ReLU()), [rn(4, 5)]),
    ("relu6", lambda: (nn.ReLU6(), tnn.ReLU6()), [rn(4, 5, scale=5)]),
    ("leaky_relu", lambda: (nn.LeakyReLU(0.2), tnn.LeakyReLU(0.2)), [rn(4, 5)]),
    ("elu", lambda: (nn.ELU(0.7), tnn.ELU(0.7)), [rn(4, 5, scale=3)]),
    ("celu", lambda: (nn.CELU(0.7), tnn.CELU(0.7)), [rn(4, 5, scale=3)]),
    ("selu", lambda: (nn.SELU(), tnn.SELU()), [rn(4, 5, scale=3)]),
    ("gelu", lambda: (nn.GELU(), tnn.GELU()), [rn(4, 5, scale=3)]),
    ("gelu_tanh", lambda: (nn.GELU("tanh"), tnn.GELU("tanh")), [rn(4, 5, scale=3)]),
    ("silu", lambda: (nn.SiLU(), tnn.SiLU()), [rn(4, 5, scale=3)]),
    ("mish", lambda: (nn.Mish(), tnn.Mish()), [rn(4, 5, scale=3)]),
    ("tanh", lambda: (nn.Tanh(), tnn.Tanh()), [rn(4, 5)]),
    ("sigmoid", lambda: (nn.Sigmoid(), tnn.Sigmoid()), [rn(4, 5)]),
    ("hardtanh", lambda: (nn.Hardtanh(-0.5, 0.8), tnn.Hardtanh(-0.5, 0.8)), [rn(4, 5)]),
    ("hardsigmoid", lambda: (nn.Hardsigmoid(), tnn.Hardsigmoid()), [rn(4, 5, scale=4)]),
    ("hardswish", lambda: (nn.Hardswish(), tnn.Hardswish()), [rn(4, 5, scale=4)]),
    ("softplus", lambda: (nn.Softplus(2.0, 3.0), tnn.Softplus(2.0, 3.0)), [rn(4, 5, scale=3)]),
    ("softsign", lambda: (nn.Softsign(), tnn.Softsign()), [rn(4, 5)]),
    ("logsigmoid", lambda: (nn.LogSigmoid(), tnn.LogSigmoid()), [rn(4, 5, scale=3)]),
    ("softmax", lambda: (nn.Softmax(1), tnn.Softmax(1)), [rn(3, 4, 2)]),
    ("log_softmax", lambda: (nn.LogSoftmax(-1), tnn.LogSoftmax(-1)), [rn(3, 4, 2)]),
    ("layer_norm", lambda: (nn.LayerNorm(6), tnn.LayerNorm(6)), [rn(3, 4, 6)]),
    ("layer_norm_2d_nobias", lambda: (nn.LayerNorm((4, 6), bias=False),
                                      tnn.LayerNorm((4, 6), bias=False)), [rn(3, 4, 6)]),
    ("layer_norm_noaffine", lambda: (nn.LayerNorm(6, elementwise_affine=False),
                                     tnn.LayerNorm(6, elementwise_affine=False)), [rn(3, 6)]),
    ("group_norm", lambda: (nn.GroupNorm(2, 6), tnn.GroupNorm(2, 6)), [rn(3, 6, 5)]),
    ("batch_norm1d", lambda: (nn.BatchNorm1d(5), tnn.BatchNorm1d(5)), [rn(8, 5, scale=2) + 1]),
    ("batch_norm1d_3d", lambda: (nn.BatchNorm1d(4), tnn.BatchNorm1d(4)), [rn(3, 4, 6) - 1]),
    ("batch_norm2d", lambda: (nn.BatchNorm2d(3), tnn.BatchNorm2d(3)), [rn(2, 3, 4, 5)]),
    ("batch_norm1d_nobias", lambda: (nn.BatchNorm1d(5, bias=False),
                                     tnn.BatchNorm1d(5, bias=False)), [rn(8, 5)]),
    ("group_norm_nobias_4d", lambda: (nn.GroupNorm(3, 6, bias=False),
                                      tnn.GroupNorm(3, 6, bias=False)), [rn(2, 6, 3, 2)]),
    ("batch_norm2d_noaffine", lambda: (nn.BatchNorm2d(3, affine=False),
                                       tnn.BatchNorm2d(3, affine=False)), [rn(2, 3, 4, 5)]),
    ("batch_norm2d_nostats", lambda: (nn.BatchNorm2d(3, track_running_stats=False),
                                      tnn.BatchNorm2d(3, track_running_stats=False)),
     [rn(2, 3, 4, 5)]),
    ("sequential", lambda: (
        nn.Sequential(OrderedDict(fc=nn.Linear(4, 8), act=nn.GELU(), ln=nn.LayerNorm(8),
                                  out=nn.Linear(8, 2))),
        tnn.Sequential(OrderedDict(fc=tnn.Linear(4, 8), act=tnn.GELU(), ln=tnn.LayerNorm(8),
                                   out=tnn.Linear(8, 2)))), [rn(5, 4)]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,make,inputs", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_torch(name, make, inputs, dtype):
    cm, tm = make()
    tol = None
    if name in ("celu", "hardsigmoid") and dtype is np.float64:
        # torch's float64 backward of these rounds a constant (1/alpha, 1/6) to float32:
        # it is off by ~3e-8 relative from exp(x / alpha) and 1/6 (checked by hand)
        tol = dict(rtol=1e-7, atol=1e-9)
    check_module(cm, tm, inputs, dtype, tol=tol)


@pytest.mark.parametrize("make", [lambda: (nn.BatchNorm1d(4), tnn.BatchNorm1d(4)),
                                  lambda: (nn.BatchNorm2d(3), tnn.BatchNorm2d(3)),
                                  lambda: (nn.BatchNorm1d(4, momentum=None),
                                           tnn.BatchNorm1d(4, momentum=None))],
                         ids=["1d", "2d", "cumulative"])
def test_batch_norm_running_stats_then_eval(make):
    cm, tm = make()
    tm.double()
    copy_from_torch(cm, tm, np.float64)
    shape = (6, 4) if isinstance(cm, nn.BatchNorm1d) else (2, 3, 4, 3)
    for step in range(4):
        x = rn(*shape, seed=step, scale=1 + step) + step
        np.testing.assert_allclose(cm(cr.tensor(x)).data, tm(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-10)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(cm, name).data, getattr(tm, name).numpy(),
                                   rtol=1e-12, atol=1e-12)
    assert cm.num_batches_tracked.item() == tm.num_batches_tracked.item() == 4
    assert cm.num_batches_tracked.dtype == np.int64
    cm.eval()
    tm.eval()
    x = rn(*shape, seed=9)
    check_module(cm, tm, [x], np.float64, train=False)


def test_state_dict_keys_and_repr_match_torch():
    def build(m):
        return m.Sequential(m.Linear(3, 4), m.BatchNorm1d(4), m.ReLU(), m.Dropout(0.25),
                            m.Sequential(m.Linear(4, 4), m.LeakyReLU(0.1)),
                            m.ModuleList([m.Linear(4, 4) for _ in range(3)] + [m.Tanh()]),
                            m.ModuleDict({"norm": m.LayerNorm(4), "emb": m.Embedding(7, 4, 0)}),
                            m.Softplus(2.0), m.GELU("tanh"), m.Flatten(), m.Hardtanh(0.0, 2.0),
                            m.GroupNorm(2, 4), m.Unflatten(1, (2, 2)), m.Bilinear(2, 3, 4))
    cm, tm = build(nn), build(tnn)
    assert repr(cm) == repr(tm)
    assert list(cm.state_dict()) == list(tm.state_dict())
    assert [n for n, _ in cm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert [n for n, _ in cm.named_modules()] == [n for n, _ in tm.named_modules()]
    assert [n for n, _ in cm.named_buffers()] == [n for n, _ in tm.named_buffers()]
    for c, t in zip(cm.parameters(), tm.parameters()):
        assert c.shape == tuple(t.shape)


def test_loss_modules_repr_and_buffers_match_torch():
    w = np.array([1.0, 2.0, 0.5])
    for cm, tm in [(nn.CrossEntropyLoss(cr.tensor(w), label_smoothing=0.1),
                    tnn.CrossEntropyLoss(torch.tensor(w), label_smoothing=0.1)),
                   (nn.BCEWithLogitsLoss(pos_weight=cr.tensor(w)),
                    tnn.BCEWithLogitsLoss(pos_weight=torch.tensor(w))),
                   (nn.NLLLoss(), tnn.NLLLoss()), (nn.MSELoss(reduction="sum"),
                                                    tnn.MSELoss(reduction="sum"))]:
        assert repr(cm) == repr(tm)
        assert list(cm.state_dict()) == list(tm.state_dict())


# --------------------------------------------------------------------------- losses
N, C = 6, 4
_r = np.random.default_rng(5)
LOGITS = _r.standard_normal((N, C)) * 2
LOGITS_3D = _r.standard_normal((N, C, 3))
TARGET = np.array([0, 3, 1, 1, 2, 3])
TARGET_IGN = np.array([0, -100, 1, 1, 2, -100])
TARGET_3D = _r.integers(0, C, (N, 3))
PROBS = np.exp(_r.standard_normal((N, C)))
PROBS /= PROBS.sum(1, keepdims=True)
CW = np.array([0.5, 2.0, 1.0, 1.5])
REAL = _r.standard_normal((N, 3))
REAL2 = _r.standard_normal((N, 3))
P01 = _r.uniform(0.05, 0.95, (N, 3))
Y01 = (_r.random((N, 3)) < 0.5).astype(np.float64)
POSW = np.array([1.0, 3.0, 0.5])
BW = _r.uniform(0.5, 1.5, (N, 3))
LOGP = np.log(PROBS)

LOSSES = [
    ("mse", lambda m, T, r: m.MSELoss(reduction=r), [REAL, REAL2]),
    ("l1", lambda m, T, r: m.L1Loss(reduction=r), [REAL, REAL2]),
    ("smooth_l1", lambda m, T, r: m.SmoothL1Loss(reduction=r, beta=0.5), [REAL, REAL2]),
    ("huber", lambda m, T, r: m.HuberLoss(reduction=r, delta=0.7), [REAL, REAL2]),
    ("kl_div", lambda m, T, r: m.KLDivLoss(reduction=r), [LOGP, PROBS]),
    ("kl_div_log_target", lambda m, T, r: m.KLDivLoss(reduction=r, log_target=True),
     [LOGP, LOGP[::-1].copy()]),
    ("bce", lambda m, T, r: m.BCELoss(reduction=r), [P01, Y01]),
    ("bce_weight", lambda m, T, r: m.BCELoss(T(BW), reduction=r), [P01, Y01]),
    ("bce_logits", lambda m, T, r: m.BCEWithLogitsLoss(reduction=r), [REAL * 3, Y01]),
    ("bce_logits_weights", lambda m, T, r: m.BCEWithLogitsLoss(T(BW), reduction=r,
                                                               pos_weight=T(POSW)),
     [REAL * 3, Y01]),
    ("nll", lambda m, T, r: m.NLLLoss(reduction=r), [LOGP, TARGET]),
    ("nll_weight_ignore", lambda m, T, r: m.NLLLoss(T(CW), ignore_index=-100, reduction=r),
     [LOGP, TARGET_IGN]),
    ("ce", lambda m, T, r: m.CrossEntropyLoss(reduction=r), [LOGITS, TARGET]),
    ("ce_all", lambda m, T, r: m.CrossEntropyLoss(T(CW), ignore_index=-100, reduction=r,
                                                  label_smoothing=0.2), [LOGITS, TARGET_IGN]),
    ("ce_ignore_3", lambda m, T, r: m.CrossEntropyLoss(ignore_index=3, reduction=r),
     [LOGITS, TARGET]),
    ("ce_3d", lambda m, T, r: m.CrossEntropyLoss(T(CW), reduction=r, label_smoothing=0.1),
     [LOGITS_3D, TARGET_3D]),
    ("ce_probs", lambda m, T, r: m.CrossEntropyLoss(T(CW), reduction=r, label_smoothing=0.3),
     [LOGITS, PROBS]),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,make,inputs", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_matches_torch(name, make, inputs, reduction):
    cm = make(nn, cr.tensor, reduction)
    tm = make(tnn, torch.tensor, reduction)
    cx = cr.tensor(inputs[0], requires_grad=True)
    tx = torch.tensor(inputs[0], requires_grad=True)
    tgt = inputs[1]
    cl = cm(cx, cr.tensor(tgt))
    with warnings.catch_warnings():  # torch warns that KLDivLoss 'mean' is not 'batchmean'
        warnings.simplefilter("ignore", UserWarning)
        tl = tm(tx, torch.tensor(tgt))
    np.testing.assert_allclose(cl.data, tl.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(2).standard_normal(cl.shape)
    cl.backward(cr.tensor(g))
    tl.backward(torch.tensor(g))
    np.testing.assert_allclose(cx.grad.data, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_kl_div_batchmean_matches_torch():
    cx, tx = cr.tensor(LOGP, requires_grad=True), torch.tensor(LOGP, requires_grad=True)
    cl = nn.KLDivLoss(reduction="batchmean")(cx, cr.tensor(PROBS))
    tl = tnn.KLDivLoss(reduction="batchmean")(tx, torch.tensor(PROBS))
    cl.backward()
    tl.backward()
    np.testing.assert_allclose(cl.item(), tl.item(), rtol=1e-12)
    np.testing.assert_allclose(cx.grad.data, tx.grad.numpy(), rtol=1e-12)


# --------------------------------------------------------------------------- functional


FUNCTIONAL = [
    ("normalize", lambda f, x: f.normalize(x, p=2.0, dim=1), rn(4, 3)),
    ("normalize_p1_dim0", lambda f, x: f.normalize(x, p=1.0, dim=0), rn(4, 3)),
    ("dropout_eval", lambda f, x: f.dropout(x, 0.3, training=False), rn(4, 3)),
    ("one_hot_sum", lambda f, x: f.one_hot(f.relu(x).sum(1).long(), 6).sum(), rn(4, 3)),
    ("pad", lambda f, x: f.pad(x, (1, 2, 0, 1), value=0.5), rn(4, 3)),
    ("softmax_dtype", lambda f, x: f.softmax(x, dim=0, dtype=torch.float32
                                             if f is TF else np.float32), rn(4, 3)),
    ("relu_inplace", lambda f, x: f.relu(x * 1.0, inplace=True), rn(4, 3)),
    ("elu_inplace", lambda f, x: f.elu(x * 2.0, inplace=True), rn(4, 3)),
]


@pytest.mark.parametrize("name,fn,x", FUNCTIONAL, ids=[c[0] for c in FUNCTIONAL])
def test_functional_matches_torch(name, fn, x):
    cx = cr.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    cy, ty = fn(F, cx), fn(TF, tx)
    np.testing.assert_allclose(cy.data, ty.detach().numpy(), rtol=1e-6, atol=1e-7)
    if ty.requires_grad:
        g = np.random.default_rng(3).standard_normal(cy.shape).astype(cy.dtype)
        cy.backward(cr.tensor(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(cx.grad.data, tx.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_embedding_matches_torch_with_padding_and_max_norm():
    idx = np.array([[1, 0, 3, 1], [4, 4, 0, 2]])
    for kw in ({"padding_idx": 0}, {"max_norm": 1.5}, {"padding_idx": -1, "max_norm": 0.5}):
        torch.manual_seed(0)
        tm = tnn.Embedding(5, 3, **kw).double()
        cm = nn.Embedding(5, 3, **kw)
        copy_from_torch(cm, tm, np.float64)
        cy, ty = cm(cr.tensor(idx)), tm(torch.tensor(idx))
        np.testing.assert_allclose(cy.data, ty.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(cm.weight.data, tm.weight.detach().numpy(), rtol=1e-12)
        g = rn(*cy.shape, seed=4)
        cy.backward(cr.tensor(g))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(cm.weight.grad.data, tm.weight.grad.numpy(), rtol=1e-12)
