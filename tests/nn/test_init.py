"""chainrule.nn.init: sample statistics within bounds derived from the sample size, fans
and gains equal to PyTorch's, reproducibility under manual_seed and generators."""
from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
from chainrule.nn import init

SHAPE = (256, 128, 3)  # 98,304 samples: fan_in 384, fan_out 768
N = int(np.prod(SHAPE))


def check_stats(values: np.ndarray, mean: float, std: float) -> None:
    """Sample mean within 5 standard errors; sample std within 5 of its standard errors
    (at most std / sqrt(2 N) for distributions with kurtosis <= 3: normal, uniform,
    truncated normal)."""
    v = values.astype(np.float64).ravel()
    assert abs(v.mean() - mean) < 5 * std / math.sqrt(v.size)
    assert abs(v.std() - std) < 5 * std / math.sqrt(2 * v.size)


def empty():
    return cr.empty(*SHAPE, requires_grad=True)


@pytest.mark.parametrize("name,fill,mean,std,bound", [
    ("uniform", lambda t: init.uniform_(t, -2.0, 4.0), 1.0, 6 / math.sqrt(12), (-2, 4)),
    ("normal", lambda t: init.normal_(t, 0.5, 2.0), 0.5, 2.0, None),
    ("xavier_uniform", lambda t: init.xavier_uniform_(t, gain=2.0), 0.0,
     2.0 * math.sqrt(2 / (384 + 768)), None),
    ("xavier_normal", lambda t: init.xavier_normal_(t), 0.0, math.sqrt(2 / (384 + 768)), None),
    ("kaiming_uniform", lambda t: init.kaiming_uniform_(t, nonlinearity="relu"), 0.0,
     math.sqrt(2 / 384), (-math.sqrt(6 / 384), math.sqrt(6 / 384))),
    ("kaiming_uniform_a5", lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)), 0.0,
     1 / math.sqrt(3 * 384), (-1 / math.sqrt(384), 1 / math.sqrt(384))),
    ("kaiming_normal_fan_out", lambda t: init.kaiming_normal_(t, mode="fan_out",
                                                              nonlinearity="relu"),
     0.0, math.sqrt(2 / 768), None),
    ("kaiming_normal_leaky", lambda t: init.kaiming_normal_(t, a=0.2), 0.0,
     math.sqrt(2 / (1 + 0.04)) / math.sqrt(384), None),
])
def test_distribution_statistics(name, fill, mean, std, bound):
    t = empty()
    out = fill(t)
    assert out is t and t.requires_grad and t.is_leaf and t.dtype == np.float32
    check_stats(t.data, mean, std)
    if bound is not None:
        assert bound[0] <= t.data.min() and t.data.max() <= bound[1]
        assert t.data.min() < bound[0] + 0.01 * (bound[1] - bound[0])


def test_trunc_normal_is_bounded_with_the_truncated_moments():
    t = init.trunc_normal_(empty(), mean=1.0, std=2.0, a=-1.0, b=2.0)
    assert -1.0 <= t.data.min() and t.data.max() <= 2.0
    # moments of N(1, 4) truncated to [-1, 2]: alpha = -1, beta = 0.5 in standard units
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    al, be = -1.0, 0.5
    z = cdf(be) - cdf(al)
    mean = 1.0 + 2.0 * (phi(al) - phi(be)) / z
    var = 4.0 * (1 + (al * phi(al) - be * phi(be)) / z - ((phi(al) - phi(be)) / z) ** 2)
    check_stats(t.data, mean, math.sqrt(var))


def test_deterministic_fills():
    t = cr.empty(3, 4)
    np.testing.assert_array_equal(init.constant_(t, 0.25).data, 0.25)
    np.testing.assert_array_equal(init.zeros_(t).data, 0)
    np.testing.assert_array_equal(init.ones_(t).data, 1)
    np.testing.assert_array_equal(init.eye_(t).data, np.eye(3, 4))
    with pytest.raises(ValueError, match="2 dimensions"):
        init.eye_(cr.empty(3))


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 2, 3, 3)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    t = init.orthogonal_(cr.empty(*shape, dtype=cr.float64), gain=2.0)
    m = t.data.reshape(shape[0], -1) / 2.0
    small = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(small, np.eye(small.shape[0]), atol=1e-12)


def test_writes_in_place_without_recording_and_bumps_version():
    w = cr.zeros(4, 4, requires_grad=True)
    data, v = w.data, w._version_count
    init.normal_(w)
    assert w.data is data and w._version_count > v and w.grad_fn is None


def test_manual_seed_makes_models_identical_and_generators_are_independent():
    def build():
        return nn.Sequential(nn.Linear(5, 4), nn.Embedding(3, 4), nn.Linear(4, 2))

    cr.manual_seed(0)
    a = build()
    cr.manual_seed(0)
    b = build()
    c = build()
    for (n, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=n)
        assert not np.array_equal(pa.data, pc.data), n
    t1, t2 = cr.empty(10), cr.empty(10)
    cr.manual_seed(1)
    init.uniform_(t1, generator=cr.Generator(5))
    init.uniform_(t2, generator=cr.Generator(5))
    np.testing.assert_array_equal(t1.data, t2.data)
    r1 = cr.rand(3)  # the global generator was not advanced by the generator draws
    cr.manual_seed(1)
    np.testing.assert_array_equal(r1.data, cr.rand(3).data)


def test_fan_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(cr.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(cr.empty(2, 2), mode="fan_avg")
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


# ------------------------------------------------------------------ against PyTorch


@pytest.mark.parametrize("shape", [(7, 3), (4, 6, 5), (8, 3, 2, 5), (2, 3, 1, 2, 4), (0, 3)])
def test_fans_match_torch(shape):
    torch = pytest.importorskip("torch")
    ours = init._calculate_fan_in_and_fan_out(cr.empty(*shape))
    theirs = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    assert ours == theirs


@pytest.mark.parametrize("args", [("linear",), ("conv2d",), ("sigmoid",), ("tanh",),
                                  ("relu",), ("leaky_relu",), ("leaky_relu", 0.3),
                                  ("selu",), ("conv_transpose2d",)])
def test_gains_match_torch(args):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args),
                                                       rel=1e-15)
