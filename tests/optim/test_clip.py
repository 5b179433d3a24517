"""chainrule.nn.utils: gradient clipping against PyTorch, and flat parameter vectors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.nn.utils import (clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_,
                                get_total_norm, parameters_to_vector, vector_to_parameters)

SHAPES = [(3, 4), (4,), (2, 2, 2)]


def _params(lib, dtype=np.float64, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    ps = []
    for s in SHAPES:
        p = lib.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
        p.grad = lib.tensor(rng.standard_normal(s).astype(dtype) * scale)
        ps.append(p)
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    cps, tps = _params(cr, dtype), _params(torch, dtype)
    cps.append(cr.tensor([1.0], requires_grad=True))  # no grad: ignored
    tps.append(torch.tensor([1.0], requires_grad=True))
    total = clip_grad_norm_(cps, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type, foreach=False)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert total.dtype == dtype and total.shape == ()
    np.testing.assert_allclose(total.data, ttotal.numpy(), rtol=rtol)
    for c, t in zip(cps[:-1], tps[:-1]):
        assert c.grad.dtype == dtype
        np.testing.assert_allclose(c.grad.data, t.grad.numpy(), rtol=rtol, atol=1e-12)
    assert cps[-1].grad is None


def test_clip_grad_norm_semantics():
    ps = _params(cr)
    grads = [p.grad.data for p in ps]
    before = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    total = clip_grad_norm_(ps, 1.0)
    assert float(total) == pytest.approx(before, rel=1e-12)
    assert all(p.grad.data is g for p, g in zip(ps, grads))  # in place
    after = float(get_total_norm([p.grad for p in ps]))
    assert after == pytest.approx(1.0, rel=1e-5)
    # a single tensor, and already-small gradients are left as they are
    p = cr.tensor([3.0, 4.0], requires_grad=True)
    p.grad = cr.tensor([0.3, 0.4])
    assert float(clip_grad_norm_(p, 10.0)) == pytest.approx(0.5)
    np.testing.assert_array_equal(p.grad.data, np.float32([0.3, 0.4]))
    # no gradients at all: a zero norm, nothing to do
    assert float(clip_grad_norm_([cr.tensor([1.0], requires_grad=True)], 1.0)) == 0.0


def test_clip_grad_norm_nonfinite():
    ps = _params(cr)
    ps[1].grad.data[0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite|is inf") as err:
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    assert "test_clip.py" in str(err.value)
    np.testing.assert_array_equal(ps[0].grad.data, _params(cr)[0].grad.data)  # untouched
    assert math.isinf(float(clip_grad_norm_(ps, 1.0)))


def test_clip_grads_with_norm_uses_given_norm():
    ps = _params(cr)
    old = [p.grad.data.copy() for p in ps]
    clip_grads_with_norm_(ps, 1.0, cr.tensor(4.0, dtype=cr.float64))
    for p, g in zip(ps, old):
        np.testing.assert_allclose(p.grad.data, g / (4.0 + 1e-6), rtol=1e-12)


def test_clip_grad_value():
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    cps, tps = _params(cr, scale=3.0), _params(torch, scale=3.0)
    grads = [p.grad.data for p in cps]
    clip_grad_value_(cps, 1.5)
    torch.nn.utils.clip_grad_value_(tps, 1.5, foreach=False)
    for c, t, g in zip(cps, tps, grads):
        assert c.grad.data is g
        np.testing.assert_array_equal(c.grad.data, t.grad.numpy())
    assert max(float(np.abs(g).max()) for g in grads) == 1.5


def test_parameters_vector_round_trip():
    ps = _params(cr)
    vec = parameters_to_vector(ps)
    assert vec.shape == (sum(int(np.prod(s)) for s in SHAPES),)
    np.testing.assert_array_equal(vec.data, np.concatenate([p.data.ravel() for p in ps]))
    # differentiable: d(vec . w)/dp is w's slice
    w = cr.tensor(np.arange(vec.shape[0], dtype=np.float64))
    (vec * w).sum().backward()
    np.testing.assert_array_equal(ps[1].grad.data, _params(cr)[1].grad.data + w.data[12:16])
    # the inverse writes into the parameters' own buffers, bumping their versions
    buffers, versions = [p.data for p in ps], [p._version_count for p in ps]
    vector_to_parameters(cr.tensor(np.arange(vec.shape[0], dtype=np.float64)), ps)
    for p, b, v in zip(ps, buffers, versions):
        assert p.data is b and p._version_count == v + 1
    np.testing.assert_array_equal(ps[2].data.ravel(), np.arange(16, 24))
    with pytest.raises(ValueError, match="has 5 elements but the parameters hold 24"):
        vector_to_parameters(cr.zeros(5, dtype=cr.float64), ps)
    with pytest.raises(TypeError, match="expected a 1-d Tensor"):
        vector_to_parameters(cr.zeros(2, 12), ps)
