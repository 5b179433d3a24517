"""Numerics: finite values and gradients for every finite input, right limits at ±inf,
and where() gradients free of NaN/Inf from the branch not taken."""
import numpy as np
import pytest

import chainrule as cr

INF = np.inf
BIG = [[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3.0, 1e4, 1e4]]


def _grad(fn, x, g=None):
    x = cr.tensor(x, dtype=cr.float64, requires_grad=True)
    y = fn(x)
    y.backward(g if g is not None else cr.ones_like(y))
    return y.data, x.grad.data


def _finite(*arrays):
    return all(np.all(np.isfinite(a)) for a in arrays)


@pytest.mark.parametrize("dtype", [cr.float32, cr.float64])
@pytest.mark.parametrize("name,fn", [
    ("softmax", lambda x: cr.softmax(x, -1)),
    ("log_softmax", lambda x: cr.log_softmax(x, -1)),
    ("logsumexp", lambda x: cr.logsumexp(x, -1)),
    ("sigmoid", cr.sigmoid), ("log_sigmoid", cr.log_sigmoid), ("softplus", cr.softplus),
    ("bce_logits", lambda x: cr.binary_cross_entropy_with_logits(
        x, cr.tensor([[1.0, 0.0, 1.0]] * 3, dtype=x.dtype), reduction="none")),
    ("cross_entropy", lambda x: cr.cross_entropy(x, cr.tensor([0, 2, 1]), reduction="none")),
    ("cross_entropy mean", lambda x: cr.cross_entropy(x, cr.tensor([0, 2, 1]))),
])
def test_large_logits_give_finite_values_and_gradients(name, fn, dtype):
    x = cr.tensor(BIG, dtype=dtype, requires_grad=True)
    y = fn(x)
    y.backward(cr.ones_like(y))
    assert _finite(y.data, x.grad.data), (name, y, x.grad)
    assert y.dtype == dtype and x.grad.dtype == dtype


def test_large_logit_values_are_exact():
    v, g = _grad(lambda x: cr.logsumexp(x, -1), BIG)
    np.testing.assert_allclose(v, [1e4, -1e4 + np.log(3), 1e4 + np.log(2)])
    np.testing.assert_allclose(g, [[1, 0, 0], [1 / 3] * 3, [0, .5, .5]], atol=1e-12)
    v, _ = _grad(lambda x: cr.log_softmax(x, -1), BIG)
    np.testing.assert_allclose(v[0], [0, -2e4, -1e4])
    v, g = _grad(cr.log_sigmoid, [-1e4, 1e4])
    np.testing.assert_allclose(v, [-1e4, 0])
    np.testing.assert_allclose(g, [1, 0])
    v, g = _grad(lambda x: cr.cross_entropy(x, cr.tensor([1, 0, 2])), BIG)
    np.testing.assert_allclose(v, (2e4 + np.log(3) + np.log(2)) / 3)


@pytest.mark.parametrize("dtype", [cr.float32, cr.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("x", [BIG, [[INF, 1.0, INF], [0.0, -INF, 2.0], [-INF, 5.0, -INF]],
                               np.linspace(-3, 3, 40 * 12).reshape(40, 12)])
def test_fused_cross_entropy_equals_its_composed_form(x, reduction, dtype):
    """Class targets without weights take one fused row each way (ops/special.py); it
    gives log_softmax + nll_loss's values and gradients bit for bit, limits included."""
    t = cr.tensor(np.arange(len(x)) % 3)
    a = cr.tensor(x, dtype=dtype, requires_grad=True)
    b = cr.tensor(x, dtype=dtype, requires_grad=True)
    fused = cr.cross_entropy(a, t, reduction=reduction)
    assert fused._node.prim.name == "cross_entropy"
    composed = cr.nll_loss(cr.log_softmax(b, 1), t, reduction=reduction)
    assert composed._node.prim.name != "cross_entropy"
    fused.backward()
    composed.backward()
    assert fused.data.tobytes() == composed.data.tobytes()
    assert a.grad.data.tobytes() == b.grad.data.tobytes()


def test_logsumexp_all_neg_inf_row_gives_neg_inf_and_zero_gradient():
    v, g = _grad(lambda x: cr.logsumexp(x, -1), [[-INF, -INF], [0.0, -INF]])
    np.testing.assert_array_equal(v, [-INF, 0.0])
    np.testing.assert_array_equal(g, [[0, 0], [1, 0]])


def test_plus_inf_limits():
    v, g = _grad(lambda x: cr.logsumexp(x, -1), [[INF, 1.0, INF]])
    assert v[0] == INF and _finite(g)
    np.testing.assert_allclose(g, [[.5, 0, .5]])
    s, g = _grad(lambda x: cr.softmax(x, -1), [[INF, 1.0, -INF]])
    np.testing.assert_array_equal(s, [[1, 0, 0]])
    assert _finite(g)
    ls, _ = _grad(lambda x: cr.log_softmax(x, -1), [[INF, 1.0]])
    np.testing.assert_array_equal(ls, [[0, -INF]])
    v, g = _grad(cr.sigmoid, [-INF, INF])
    np.testing.assert_array_equal(v, [0, 1])
    np.testing.assert_array_equal(g, [0, 0])
    v, g = _grad(cr.softplus, [-INF, INF])
    np.testing.assert_array_equal(v, [0, INF])
    np.testing.assert_array_equal(g, [0, 1])


def test_bce_with_logits_limits_at_infinity():
    x = cr.tensor([INF, -INF, INF, -INF], dtype=cr.float64, requires_grad=True)
    y = cr.tensor([1.0, 0.0, 0.0, 1.0], dtype=cr.float64)
    loss = cr.binary_cross_entropy_with_logits(x, y, reduction="none")
    loss.sum().backward()
    np.testing.assert_array_equal(loss.data, [0, 0, INF, INF])
    np.testing.assert_array_equal(x.grad.data, [0, 0, 1, -1])


@pytest.mark.parametrize("branch,xs", [
    (lambda x: cr.where(x > 0, cr.log(x), cr.zeros_like(x)), [-1.0, 0.0, 2.0]),
    (lambda x: cr.where(x > 0, cr.sqrt(x), x), [-1.0, 0.0, 4.0]),
    (lambda x: cr.where(x < 50, cr.exp(x), cr.zeros_like(x)), [1.0, 1e3, 2e4]),
    (lambda x: cr.where(x != 0, 1 / x, cr.zeros_like(x)), [0.0, 2.0]),
    (lambda x: cr.where(x > 0, x ** 0.5, x), [0.0, -1.0, 4.0]),
    (lambda x: cr.where(x > -1, cr.log1p(x), x), [-1.0, -2.0, 1.0]),
])
def test_where_gradient_ignores_the_unselected_branch(branch, xs):
    v, g = _grad(branch, xs)
    assert _finite(g), g


def test_where_unselected_branch_gets_exact_zero():
    v, g = _grad(lambda x: cr.where(x > 0, cr.log(x), x * 3), [-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(g, [3, 3, 0.5])


def test_where_second_order_stays_finite():
    x = cr.tensor([0.0, 2.0], dtype=cr.float64, requires_grad=True)
    y = cr.where(x > 0, cr.log(x), x).sum()
    (g,) = cr.autograd.grad(y, x, create_graph=True)
    (h,) = cr.autograd.grad(g.sum(), x)
    np.testing.assert_array_equal(h.data, [0, -0.25])
