"""Property tests (hypothesis) for broadcasting and reductions.

* binary ops on mutually broadcastable shapes (0-d and size-0 dims included):
  the forward equals NumPy's, and every input's gradient has the input's shape
  and equals the cotangent-times-local-derivative summed over the broadcast axes;
* incompatible shapes raise ValueError naming the op and both shapes;
* reductions over random axis subsets (negative axes, empty tuples) with and
  without keepdim: shape and values equal NumPy's, the gradient has x's shape;
* reshape / permute / broadcast_to round trips give gradients of the input's shape.

Input values come from a NumPy generator seeded by hypothesis: hypothesis
explores and shrinks the shapes and axes, which is where the bugs live.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chainrule as cr

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2 ** 32 - 1)


def np_sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` down to ``shape``: the transpose of broadcasting ``shape`` to g.shape."""
    shape = tuple(shape)
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    assert g.shape == shape
    return g


def _quiet():
    """Silence NumPy's divide/invalid warnings (empty means, 0/0 variances)."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore", RuntimeWarning)
    return ctx


# --------------------------------------------------------------------- binary ops


def _half(mask):
    return mask.astype(np.float64)


# name: (chainrule op, numpy op, value kind of b, local vjp (g, a, b) -> (ga, gb) at full shape)
BINARY = {
    "add": (cr.add, np.add, "normal", lambda g, a, b: (g, g)),
    "sub": (cr.sub, np.subtract, "normal", lambda g, a, b: (g, -g)),
    "mul": (cr.mul, np.multiply, "normal", lambda g, a, b: (g * b, g * a)),
    "div": (cr.div, np.true_divide, "nonzero", lambda g, a, b: (g / b, -g * a / (b * b))),
    "pow": (cr.pow, np.power, "normal",
            lambda g, a, b: (g * b * a ** (b - 1), g * a ** b * np.log(a))),
    "maximum": (cr.maximum, np.maximum, "ties",
                lambda g, a, b: (g * (_half(a > b) + 0.5 * _half(a == b)),
                                 g * (_half(b > a) + 0.5 * _half(a == b)))),
    "minimum": (cr.minimum, np.minimum, "ties",
                lambda g, a, b: (g * (_half(a < b) + 0.5 * _half(a == b)),
                                 g * (_half(b < a) + 0.5 * _half(a == b)))),
}


def _values(r, shape, kind):
    if kind == "ties":  # small integers: many exact ties for maximum/minimum
        return r.integers(-2, 3, shape).astype(np.float64)
    if kind == "nonzero":
        return r.uniform(0.5, 2.0, shape) * r.choice([-1.0, 1.0], shape)
    return r.standard_normal(shape)


BCAST2 = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0,
                                           max_side=3)
BCAST3 = hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=4, min_side=0,
                                           max_side=3)


@pytest.mark.parametrize("name", list(BINARY))
@SETTINGS
@given(shapes=BCAST2, seed=seeds, grad_a=st.booleans(), grad_b=st.booleans())
def test_binary_broadcast_forward_and_grad(name, shapes, seed, grad_a, grad_b):
    op, ref, kind, vjp = BINARY[name]
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    r = np.random.default_rng(seed)
    a = _values(r, sa, "ties" if kind == "ties" else "normal")
    if name == "pow":  # a positive base keeps both derivatives real
        a = np.abs(a) + 0.5
    b = _values(r, sb, kind)
    x = cr.tensor(a, requires_grad=grad_a)
    y = cr.tensor(b, requires_grad=grad_b)
    out = op(x, y)
    expected = ref(a, b)
    assert out.shape == expected.shape == out_shape
    assert out.dtype == expected.dtype
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-15, atol=0)
    if not (grad_a or grad_b):
        assert not out.requires_grad
        return
    g = r.standard_normal(out_shape)
    out.backward(cr.tensor(g))
    ga, gb = vjp(g, np.broadcast_to(a, out_shape), np.broadcast_to(b, out_shape))
    for t, want_full, shape, used in ((x, ga, sa, grad_a), (y, gb, sb, grad_b)):
        if not used:
            assert t.grad is None
            continue
        assert t.grad.shape == shape, f"{name}: grad shape {t.grad.shape} for input {shape}"
        assert t.grad.dtype == np.float64
        np.testing.assert_allclose(t.grad.numpy(), np_sum_to(want_full, shape), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("name,fn", [
    ("add", lambda x, y: x + y), ("sub", lambda x, y: x - y), ("mul", lambda x, y: x * y),
    ("div", lambda x, y: x / y),
])
@SETTINGS
@given(shapes=BCAST2, seed=seeds)
def test_binary_dunders_match_functions(name, fn, shapes, seed):
    op, ref, kind, _ = BINARY[name]
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    r = np.random.default_rng(seed)
    a, b = _values(r, sa, "normal"), _values(r, sb, kind)
    x, y = cr.tensor(a, requires_grad=True), cr.tensor(b, requires_grad=True)
    x2, y2 = cr.tensor(a, requires_grad=True), cr.tensor(b, requires_grad=True)
    g = r.standard_normal(out_shape)
    fn(x, y).backward(cr.tensor(g))
    op(x2, y2).backward(cr.tensor(g))
    np.testing.assert_array_equal(x.grad.numpy(), x2.grad.numpy())
    np.testing.assert_array_equal(y.grad.numpy(), y2.grad.numpy())


@SETTINGS
@given(shapes=BCAST3, seed=seeds, grad_a=st.booleans(), grad_b=st.booleans())
def test_where_broadcast_forward_and_grad(shapes, seed, grad_a, grad_b):
    (sc, sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    r = np.random.default_rng(seed)
    c = r.random(sc) < 0.5
    a, b = r.standard_normal(sa), r.standard_normal(sb)
    x, y = cr.tensor(a, requires_grad=grad_a), cr.tensor(b, requires_grad=grad_b)
    out = cr.where(cr.tensor(c), x, y)
    expected = np.where(c, a, b)
    assert out.shape == expected.shape == out_shape
    np.testing.assert_array_equal(out.detach().numpy(), expected)
    if not (grad_a or grad_b):
        return
    g = r.standard_normal(out_shape)
    out.backward(cr.tensor(g))
    cb = np.broadcast_to(c, out_shape)
    for t, want_full, shape, used in ((x, np.where(cb, g, 0.0), sa, grad_a),
                                      (y, np.where(cb, 0.0, g), sb, grad_b)):
        if not used:
            assert t.grad is None
            continue
        assert t.grad.shape == shape
        np.testing.assert_allclose(t.grad.numpy(), np_sum_to(want_full, shape), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("name", ["add", "mul", "maximum"])
@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3), seed=seeds,
       scalar=st.sampled_from([2, -1.5, 0.0]), left=st.booleans())
def test_python_scalar_operand(name, shape, seed, scalar, left):
    op, ref, _, _ = BINARY[name]
    r = np.random.default_rng(seed)
    a = r.standard_normal(shape).astype(np.float32)
    x = cr.tensor(a, requires_grad=True)
    out = op(scalar, x) if left else op(x, scalar)
    expected = ref(scalar, a) if left else ref(a, scalar)
    assert out.shape == shape
    assert out.dtype == np.float32  # NumPy 2: Python scalars are weak
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-6)
    out.backward(cr.ones_like(out))
    assert x.grad.shape == shape and x.grad.dtype == np.float32


# ---------------------------------------------------------- incompatible shapes


@st.composite
def incompatible_shapes(draw):
    """Two shapes that do not broadcast: one axis has sizes that differ, neither 1."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4))
    nd = len(shape)
    ax = draw(st.integers(0, nd - 1))
    m, n = draw(st.lists(st.sampled_from([0, 2, 3, 4]), min_size=2, max_size=2, unique=True))
    a = list(shape)
    a[ax] = m
    b = [1 if draw(st.booleans()) else s for s in a]  # ones still broadcast
    b[ax] = n
    b = b[draw(st.integers(0, ax)):]  # drop some leading dims (not the clashing one)
    a, b = tuple(a), tuple(b)
    return (b, a) if draw(st.booleans()) else (a, b)


ERROR_OPS = {
    "add": cr.add, "sub": cr.sub, "mul": cr.mul, "div": cr.div, "pow": cr.pow,
    "maximum": cr.maximum, "minimum": cr.minimum,
}


def _check_message(msg, name, sa, sb):
    assert msg.startswith(f"{name}:") or f"{name}:" in msg, msg
    assert str(tuple(sa)) in msg, f"{sa} not in {msg!r}"
    assert str(tuple(sb)) in msg, f"{sb} not in {msg!r}"


@pytest.mark.parametrize("requires_grad", [False, True], ids=["nograd", "grad"])
@pytest.mark.parametrize("name", list(ERROR_OPS))
@SETTINGS
@given(shapes=incompatible_shapes())
def test_incompatible_shapes_raise(name, requires_grad, shapes):
    sa, sb = shapes
    x = cr.tensor(np.ones(sa), requires_grad=requires_grad)
    y = cr.tensor(np.ones(sb))
    with pytest.raises(ValueError) as exc:
        ERROR_OPS[name](x, y)
    _check_message(str(exc.value), name, sa, sb)


@pytest.mark.parametrize("requires_grad", [False, True], ids=["nograd", "grad"])
@SETTINGS
@given(shapes=incompatible_shapes())
def test_incompatible_where_values_raise(requires_grad, shapes):
    sa, sb = shapes
    c = cr.tensor(np.ones((), bool))
    x = cr.tensor(np.ones(sa), requires_grad=requires_grad)
    with pytest.raises(ValueError) as exc:
        cr.where(c, x, cr.tensor(np.ones(sb)))
    _check_message(str(exc.value), "where", sa, sb)


# regression: with a/b requiring grad, the raw NumPy error of np.broadcast_shapes escaped
# (it did not name 'where'); fixed since
@pytest.mark.parametrize("requires_grad", [False, True], ids=["nograd", "grad"])
@SETTINGS
@given(shapes=incompatible_shapes())
def test_incompatible_where_condition_raise(requires_grad, shapes):
    sc, sa = shapes
    c = cr.tensor(np.ones(sc, bool))
    x = cr.tensor(np.ones(sa), requires_grad=requires_grad)
    with pytest.raises(ValueError) as exc:
        cr.where(c, x, 0.0)
    _check_message(str(exc.value), "where", sc, sa)


@SETTINGS
@given(shapes=incompatible_shapes())
def test_incompatible_dunder_names_op(shapes):
    sa, sb = shapes
    x, y = cr.tensor(np.ones(sa), requires_grad=True), cr.tensor(np.ones(sb))
    with pytest.raises(ValueError) as exc:
        x * y
    _check_message(str(exc.value), "mul", sa, sb)


# -------------------------------------------------------------------- reductions


@st.composite
def shape_axes(draw):
    """A shape and an axis spec: None, an int, or a tuple (possibly empty); negative
    axes allowed. 0-d shapes get None or ()."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    nd = len(shape)
    if nd == 0:
        return shape, draw(st.sampled_from([None, ()]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    axes = draw(st.lists(st.integers(0, nd - 1), unique=True, min_size=int(kind == "int"),
                         max_size=1 if kind == "int" else nd))
    axes = [a - nd if draw(st.booleans()) else a for a in axes]
    return shape, (axes[0] if kind == "int" else tuple(axes))


def _np_lse(x, axis, keepdims):
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _prod_grad_ref(x, axis, g_keep):
    """Brute force: d prod / d x_i = product of the other elements of x_i's slice."""
    out = np.empty_like(x)
    gb = np.broadcast_to(g_keep, x.shape)
    for i in np.ndindex(*x.shape):
        y = x.copy()
        y[i] = 1.0
        out[i] = np.broadcast_to(np.prod(y, axis=axis, keepdims=True), x.shape)[i] * gb[i]
    return out


REDUCTIONS = {
    # name: (chainrule, numpy reference, value generator)
    "sum": (cr.sum, np.sum, lambda r, s: r.standard_normal(s)),
    "mean": (cr.mean, np.mean, lambda r, s: r.standard_normal(s)),
    "amax": (cr.amax, np.amax, lambda r, s: r.integers(-2, 3, s).astype(np.float64)),
    "prod": (cr.prod, np.prod,
             lambda r, s: np.where(r.random(s) < 0.15, 0.0, r.uniform(0.5, 1.5, s))),
    "var": (cr.var, lambda x, axis, keepdims: np.var(x, axis=axis, ddof=1, keepdims=keepdims),
            lambda r, s: r.standard_normal(s)),
    "logsumexp": (cr.logsumexp, _np_lse, lambda r, s: r.standard_normal(s)),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@SETTINGS
@given(sa=shape_axes(), keepdim=st.booleans(), seed=seeds)
def test_reduction_matches_numpy(name, sa, keepdim, seed):
    shape, axis = sa
    crf, ref, gen = REDUCTIONS[name]
    r = np.random.default_rng(seed)
    a = gen(r, shape)
    ctx = _quiet()
    try:
        try:
            expected = np.asarray(ref(a, axis=axis, keepdims=keepdim))
        except ValueError:  # e.g. amax over an empty axis: no identity
            with pytest.raises(ValueError):
                crf(cr.tensor(a), axis, keepdim)
            return
        x = cr.tensor(a, requires_grad=True)
        out = crf(x, axis, keepdim)
        assert out.shape == expected.shape, \
            f"{name}{shape} axis={axis} keepdim={keepdim}: {out.shape} != {expected.shape}"
        assert out.dtype == expected.dtype
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12, atol=1e-12,
                                   equal_nan=True)
        g = r.standard_normal(out.shape)
        out.backward(cr.tensor(g))
        assert x.grad is not None and x.grad.shape == shape
        assert x.grad.dtype == np.float64
        # the cotangent with the reduced axes put back as size 1
        g_keep = g if keepdim else np.asarray(
            np.expand_dims(g, tuple(range(len(shape))) if axis is None else axis)
            if axis != () else g)
        if name == "sum":
            np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(g_keep, shape))
        elif name == "mean":
            n = a.size // max(expected.size, 1) if a.size else 0
            if n:
                np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(g_keep, shape) / n,
                                           rtol=1e-12)
        elif name == "prod":
            np.testing.assert_allclose(x.grad.numpy(), _prod_grad_ref(a, axis, g_keep),
                                       rtol=1e-12, atol=1e-12)
        elif name == "amax":
            hit = a == np.broadcast_to(np.amax(a, axis=axis, keepdims=True), shape)
            w = hit / np.broadcast_to(hit.sum(axis=axis, keepdims=True), shape)
            np.testing.assert_allclose(x.grad.numpy(), w * np.broadcast_to(g_keep, shape),
                                       rtol=1e-12)
        elif name == "logsumexp" and a.size:
            sm = np.exp(a - np.broadcast_to(_np_lse(a, axis, True), shape))
            np.testing.assert_allclose(x.grad.numpy(), sm * np.broadcast_to(g_keep, shape),
                                       rtol=1e-10, atol=1e-12)
    finally:
        ctx.__exit__(None, None, None)


@SETTINGS
@given(sa=shape_axes(), keepdim=st.booleans(), seed=seeds)
def test_reduction_method_and_keyword_forms_agree(sa, keepdim, seed):
    shape, axis = sa
    a = np.random.default_rng(seed).standard_normal(shape)
    x = cr.tensor(a)
    np.testing.assert_array_equal(x.sum(axis, keepdim).numpy(),
                                  cr.sum(x, axis=axis, keepdims=keepdim).numpy())
    np.testing.assert_array_equal(x.sum(dim=axis, keepdim=keepdim).numpy(),
                                  np.sum(a, axis=axis, keepdims=keepdim))


# ----------------------------------------------------------- movement round trips


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), seed=seeds)
def test_reshape_round_trip_grad(shape, seed):
    r = np.random.default_rng(seed)
    a = r.standard_normal(shape)
    x = cr.tensor(a, requires_grad=True)
    y = x.reshape(a.size).reshape(tuple(reversed(shape))).reshape(shape)
    assert y.shape == shape
    g = r.standard_normal(shape)
    (y * 1).backward(cr.tensor(g))
    assert x.grad.shape == shape
    np.testing.assert_array_equal(x.grad.numpy(), g)


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
       seed=seeds)
def test_permute_round_trip_grad(data, shape, seed):
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    r = np.random.default_rng(seed)
    a = r.standard_normal(shape)
    x = cr.tensor(a, requires_grad=True)
    y = x.permute(perm)
    np.testing.assert_array_equal(y.detach().numpy(), np.transpose(a, perm))
    g = r.standard_normal(y.shape)
    (y * 1).backward(cr.tensor(g))
    assert x.grad.shape == shape
    np.testing.assert_array_equal(x.grad.numpy(), np.transpose(g, np.argsort(perm)))
    # and back again: permute(inverse) is the identity, gradient included
    x.grad = None
    z = x.permute(perm).permute(tuple(np.argsort(perm)))
    assert z.shape == shape
    z.backward(cr.tensor(g.transpose(np.argsort(perm))))
    assert x.grad.shape == shape


@SETTINGS
@given(shapes=BCAST2, seed=seeds)
def test_broadcast_to_round_trip_grad(shapes, seed):
    (sa, _), target = shapes.input_shapes, shapes.result_shape
    r = np.random.default_rng(seed)
    a = r.standard_normal(sa)
    x = cr.tensor(a, requires_grad=True)
    y = cr.broadcast_to(x, target)
    assert y.shape == target
    np.testing.assert_array_equal(y.detach().numpy(), np.broadcast_to(a, target))
    # through more movement: permute (reverse the axes) and flatten
    z = y.permute(tuple(range(len(target) - 1, -1, -1))).reshape(-1) if len(target) else y
    g = r.standard_normal(z.shape)
    z.backward(cr.tensor(g))
    g_full = np.reshape(g, tuple(reversed(target))).transpose() if len(target) else g
    assert x.grad.shape == sa
    np.testing.assert_allclose(x.grad.numpy(), np_sum_to(np.asarray(g_full), sa), rtol=1e-12,
                               atol=1e-12)


@SETTINGS
@given(shapes=BCAST2, seed=seeds)
def test_expand_and_sum_to_agree(shapes, seed):
    (sa, _), target = shapes.input_shapes, shapes.result_shape
    r = np.random.default_rng(seed)
    g = r.standard_normal(target)
    out = cr.sum_to(cr.tensor(g), sa)
    assert out.shape == sa
    np.testing.assert_allclose(out.numpy(), np_sum_to(g, sa), rtol=1e-12, atol=1e-12)
