"""Layers on their own: dropout statistics and reproducibility, embedding gradients,
derivatives of the normalization layers at first and second order (finite differences
in float64), error messages."""
from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F
from chainrule.testing import gradcheck, gradgradcheck


def rn(*shape, seed=0):
    return cr.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


# ---------------------------------------------------------------- dropout


def test_dropout_statistics_scale_and_gradient():
    p, n = 0.3, 200_000
    x = cr.ones(n, dtype=cr.float64, requires_grad=True)
    y = nn.Dropout(p)(x)
    kept = y.data != 0
    # the fraction dropped is Binomial(n, p) / n: allow 5 standard deviations
    assert abs((1 - kept.mean()) - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y.data[kept], 1 / (1 - p))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)  # d y / d x is the scaled mask


def test_dropout_is_reproducible_under_manual_seed_and_identity_in_eval():
    x = cr.randn(50, 40)
    d = nn.Dropout(0.5)
    cr.manual_seed(7)
    a = d(x)
    cr.manual_seed(7)
    b = d(x)
    c = d(x)
    np.testing.assert_array_equal(a.data, b.data)
    assert (a.data != c.data).any()
    g = cr.Generator(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5, generator=g).data,
                                  F.dropout(x, 0.5, generator=cr.Generator(3)).data)
    d.eval()
    assert d(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert nn.Dropout(0.0)(x) is x
    np.testing.assert_array_equal(nn.Dropout(1.0)(x).data, 0)
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_dropout_inplace_writes_into_input():
    x = cr.ones(100, 10)
    y = F.dropout(x, 0.5, inplace=True)
    assert y is x
    assert set(np.unique(x.data)) <= {0.0, 2.0}


def test_dropout2d_zeroes_whole_channels():
    x = cr.ones(8, 16, 3, 3)
    y = nn.Dropout2d(0.5)(x).data
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))
    assert 0 < (per_channel == 0).all(-1).sum() < 8 * 16
    assert nn.Dropout2d(0.5)(cr.ones(4, 2, 2)).shape == (4, 2, 2)
    with pytest.raises(ValueError, match=r"3-D \(C, H, W\) or 4-D"):
        nn.Dropout2d()(cr.ones(4, 4))


# ---------------------------------------------------------------- embedding


def test_embedding_lookup_gradient_and_padding_idx():
    emb = nn.Embedding(6, 3, padding_idx=2)
    np.testing.assert_array_equal(emb.weight.data[2], 0)
    idx = cr.tensor([[0, 2, 5], [5, 5, 2]])
    out = emb(idx)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.data, emb.weight.data[idx.data])
    out.sum().backward()
    counts = np.bincount(idx.data.ravel(), minlength=6).astype(np.float32)
    counts[2] = 0  # the padding row gets no gradient
    np.testing.assert_array_equal(emb.weight.grad.data, np.repeat(counts[:, None], 3, 1))
    # a non-zero padding row still looks up its value, and still gets no gradient
    with cr.no_grad():
        emb.weight[2] = 5.0
    emb.weight.grad = None
    out = emb(cr.tensor([2, 1]))
    np.testing.assert_array_equal(out.data[0], 5.0)
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.data[2], 0)
    np.testing.assert_array_equal(emb.weight.grad.data[1], 1)
    assert nn.Embedding(5, 2, padding_idx=-1).padding_idx == 4


def test_embedding_sparse_gradient_holds_only_the_rows_used():
    cr.manual_seed(0)
    dense = nn.Embedding(10, 4)
    sparse = nn.Embedding(10, 4, sparse=True)
    sparse.load_state_dict(dense.state_dict())
    assert sparse.sparse and "sparse=True" in repr(sparse)
    idx = cr.tensor([1, 1, 7])
    for m in (dense, sparse):
        (m(idx) ** 2).sum().backward()
        (m(cr.tensor([7])) * 3).sum().backward()  # a second backward accumulates
    g = sparse.weight.grad
    assert g.is_sparse and g.shape == (10, 4) and sorted(g.coalesce().indices) == [1, 7]
    np.testing.assert_allclose(g.to_dense().data, dense.weight.grad.data, rtol=1e-6)


def test_embedding_from_pretrained_and_errors():
    table = cr.tensor(np.arange(12.0).reshape(4, 3))
    emb = nn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad and emb.weight.data is table.data
    np.testing.assert_array_equal(emb(cr.tensor([3])).data, [[9.0, 10.0, 11.0]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    with pytest.raises(IndexError, match=r"indices span \[0, 4\] but the table has 4 rows"):
        emb(cr.tensor([0, 4]))
    with pytest.raises(TypeError, match="indices must be an integer tensor"):
        emb(cr.tensor([0.0]))
    with pytest.raises(ValueError, match="padding_idx 7"):
        nn.Embedding(4, 2, padding_idx=7)


# ---------------------------------------------------------------- derivatives


def test_layer_norm_gradcheck_first_and_second_order():
    x, w, b = rn(3, 4, seed=1), rn(4, seed=2), rn(4, seed=3)

    def f(x, w, b):
        return F.layer_norm(x, (4,), w, b, eps=1e-3)

    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))


def test_batch_norm_gradcheck_train_and_eval_first_and_second_order():
    x, w, b = rn(4, 3, 2, seed=4), rn(3, seed=5), rn(3, seed=6)

    def train(x, w, b):
        return F.batch_norm(x, None, None, w, b, training=True, eps=1e-3)

    assert gradcheck(train, (x, w, b))
    assert gradgradcheck(train, (x, w, b))
    rm = cr.tensor([0.1, -0.2, 0.3], dtype=cr.float64)
    rv = cr.tensor([0.5, 1.5, 2.0], dtype=cr.float64)

    def evaluate(x, w, b):
        return F.batch_norm(x, rm, rv, w, b, training=False)

    assert gradcheck(evaluate, (x, w, b))
    assert gradgradcheck(evaluate, (x, w, b))


def test_modules_gradcheck_through_parameters():
    cr.manual_seed(0)
    bn = nn.BatchNorm2d(2).double()
    gn = nn.GroupNorm(2, 4).double()
    x = rn(3, 2, 2, 2, seed=7)
    assert gradgradcheck(lambda x: bn(x), (x,))
    y = rn(2, 4, 3, seed=8)
    assert gradgradcheck(lambda y: gn(y), (y,))
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.LayerNorm(4), nn.GELU(), nn.Linear(4, 2))
    net.double()
    z = rn(5, 3, seed=9)
    assert gradcheck(lambda z: net(z), (z,))
    assert gradgradcheck(lambda z: net(z), (z,))
    # second order with respect to a parameter: d/dw of |dL/dw|^2 against finite differences
    w = net[0].weight

    def grad_norm(wv):
        with cr.no_grad():
            w.copy_(cr.tensor(wv))
        g, = cr.autograd.grad(net(z).sum(), [w], create_graph=True)
        return g, (g * g).sum()

    w0 = w.data.copy()
    g, s = grad_norm(w0)
    h, = cr.autograd.grad(s, [w])
    u = np.random.default_rng(0).standard_normal(w0.shape)
    eps = 1e-6
    fd = (grad_norm(w0 + eps * u)[1].item() - grad_norm(w0 - eps * u)[1].item()) / (2 * eps)
    np.testing.assert_allclose((h.data * u).sum(), fd, rtol=1e-5)


# ---------------------------------------------------------------- layers and errors


def test_linear_init_bounds_dtype_and_seed():
    cr.manual_seed(0)
    a = nn.Linear(64, 8)
    cr.manual_seed(0)
    b = nn.Linear(64, 8)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    bound = 1 / math.sqrt(64)
    assert np.abs(a.weight.data).max() <= bound and np.abs(a.bias.data).max() <= bound
    assert np.abs(a.weight.data).max() > 0.9 * bound
    assert a.weight.dtype == np.float32
    assert nn.Linear(2, 2, dtype=cr.float64).weight.dtype == np.float64
    assert nn.Linear(2, 2, bias=False).bias is None


@pytest.mark.parametrize("lead", [(), (5,), (2, 3)], ids=["1-D", "2-D", "3-D"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_matmul_at_every_rank(lead, bias):
    """F.linear is x @ W.T + b for any leading shape, float64 and float32 inputs mixed,
    first and second order (the 2-D product is one ``linear`` row)."""
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal(lead + (4,)), requires_grad=True)
    w = cr.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    b = cr.tensor(rng.standard_normal(3), requires_grad=True) if bias else None
    out = F.linear(x, w, b)
    want = x.detach().numpy() @ w.detach().numpy().T.astype(np.float64) + \
        (b.detach().numpy() if bias else 0)
    assert out.shape == lead + (3,) and out.dtype == np.float64
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-12)
    args = [x, cr.tensor(w.detach().numpy().astype(np.float64), requires_grad=True)]
    args += [b] if bias else []
    assert gradcheck(lambda *a: F.linear(*a), args)
    assert gradgradcheck(lambda *a: F.linear(*a), args)


def test_shape_errors_name_the_layer_shapes_and_line():
    with pytest.raises(ValueError, match=r"linear: input \(2, 5\) float32 does not match "
                       r"weight \(3, 4\) float32.*test_layers.py:\d+"):
        nn.Linear(4, 3)(cr.zeros(2, 5))
    with pytest.raises(ValueError, match=r"linear: bias \(4,\) does not match weight "
                       r"\(3, 4\) \(expected \(3,\)\).*test_layers.py:\d+"):
        F.linear(cr.zeros(2, 4), cr.zeros(3, 4), cr.zeros(4))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): input \(2, 4, 5, 5\) float32 has "
                       r"4 channels.*test_layers.py:\d+"):
        nn.BatchNorm2d(3)(cr.zeros(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"expected 4-D \(N, C, H, W\) input, got shape"):
        nn.BatchNorm2d(3)(cr.zeros(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(cr.zeros(1, 3))
    with pytest.raises(ValueError, match=r"does not end in normalized_shape \(4,\)"):
        nn.LayerNorm(4)(cr.zeros(2, 5))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="approximate must be"):
        nn.GELU("fast")


def test_batch_norm_eval_without_running_stats_uses_batch_stats():
    x = rn(6, 3, seed=11)
    m = nn.BatchNorm1d(3, track_running_stats=False, affine=False).double().eval()
    assert m.running_mean is None and list(m.state_dict()) == []
    y = m(x).data
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(0), 1, rtol=1e-4)


def test_softmax_without_dim_warns_and_picks_torch_legacy_dim():
    x = cr.randn(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = nn.Softmax()(x)
    np.testing.assert_allclose(y.data.sum(1), 1, rtol=1e-6)


def test_flatten_unflatten_round_trip():
    x = cr.randn(2, 3, 4, 6)
    y = nn.Flatten()(x)
    assert y.shape == (2, 72)
    np.testing.assert_array_equal(nn.Unflatten(1, (3, 4, 6))(y).data, x.data)
    assert nn.Flatten(0, 2)(x).shape == (24, 6)
    assert nn.Unflatten(-1, (2, -1))(x).shape == (2, 3, 4, 2, 3)
