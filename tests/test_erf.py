"""Accuracy and dtype/shape tests for chainrule.ops._erf.erf against math.erf."""

import math

import numpy as np
import pytest

from chainrule.ops._erf import erf

MAX_ULP_F64 = 4.0
BOUNDARIES = (2.0**-28, 0.84375, 1.25, 1.0 / 0.35, 6.0, 28.0, 1.0, 0.25)


def _reference(x):
    return np.array([math.erf(float(v)) for v in np.ravel(x)], dtype=np.float64)


def _max_ulp(got, expected):
    got = np.asarray(got, dtype=np.float64)
    diff = np.abs(got - expected)
    return float(np.max(diff / np.spacing(np.abs(expected)))) if diff.size else 0.0


def _neighbours(points, steps=3):
    out = []
    for p in points:
        for sgn in (1.0, -1.0):
            v = np.float64(sgn * p)
            out.append(v)
            lo = hi = v
            for _ in range(steps):
                lo = np.nextafter(lo, -np.inf)
                hi = np.nextafter(hi, np.inf)
                out.extend((lo, hi))
    return np.array(out, dtype=np.float64)


def _sample_points():
    lin = np.linspace(-7.0, 7.0, 100_001)
    pos = np.logspace(-8, np.log10(7.0), 50_000)
    tiny = np.logspace(-300, -5, 20_000)
    huge = np.array([7.5, 10.0, 27.9, 28.0, 1e3, 1e10, 1e300,
                     np.finfo(np.float64).max])
    sub = np.array([5e-324, 1e-310, 2.2250738585072014e-308, 2.848094538889218e-306])
    mag = np.concatenate([pos, tiny, huge, sub, _neighbours(BOUNDARIES)])
    return np.concatenate([lin, mag, -mag])


def test_float64_max_ulp_against_math_erf():
    x = _sample_points()
    assert x.size >= 200_000
    with np.errstate(all="raise"):
        got = erf(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    expected = _reference(x)
    assert _max_ulp(got, expected) <= MAX_ULP_F64


def test_boundaries_and_neighbours():
    x = _neighbours(BOUNDARIES, steps=16)
    assert _max_ulp(erf(x), _reference(x)) <= MAX_ULP_F64


@pytest.mark.parametrize("v, want", [(np.inf, 1.0), (-np.inf, -1.0),
                                     (0.0, 0.0), (1e308, 1.0), (-1e308, -1.0)])
def test_special_values(v, want):
    assert erf(np.array(v)) == want


def test_nan_and_signed_zero():
    with np.errstate(all="raise"):
        out = erf(np.array([np.nan, -0.0, 0.0, -np.nan]))
    assert np.isnan(out[0]) and np.isnan(out[3])
    assert out[1] == 0.0 and np.signbit(out[1])
    assert out[2] == 0.0 and not np.signbit(out[2])


def test_odd_symmetry_exact():
    x = _sample_points()
    np.testing.assert_array_equal(erf(-x), -erf(x))


def test_float32_matches_rounded_math_erf():
    x = np.concatenate([np.linspace(-7, 7, 20_001),
                        np.logspace(-45, np.log10(7.0), 5_000),
                        -np.logspace(-45, np.log10(7.0), 5_000),
                        [np.inf, -np.inf, 0.0, -0.0, 3e38]]).astype(np.float32)
    got = erf(x)
    assert got.dtype == np.float32
    expected = _reference(x).astype(np.float32)
    np.testing.assert_allclose(got, expected, rtol=2e-7, atol=1e-45)
    assert np.isnan(erf(np.array([np.nan], dtype=np.float32))[0])


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16, bool])
def test_integer_and_bool_inputs_give_float64(dtype):
    x = np.array([0, 1, 2, 5], dtype=dtype) if dtype is not bool else np.array([False, True])
    got = erf(x)
    assert got.dtype == np.float64
    assert _max_ulp(got, _reference(x.astype(np.float64))) <= MAX_ULP_F64


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (2, 3, 4)])
def test_shape_and_dtype_preserved(shape, dtype):
    x = np.full(shape, 0.5, dtype=dtype) if dtype != np.int64 else np.ones(shape, dtype)
    got = erf(x)
    assert isinstance(got, np.ndarray)
    assert got.shape == shape
    assert got.dtype == (np.float32 if dtype == np.float32 else np.float64)


def test_does_not_modify_input_and_accepts_views():
    base = np.linspace(-3, 3, 24)
    x = base.reshape(4, 6)[:, ::2]
    before = x.copy()
    got = erf(x)
    np.testing.assert_array_equal(x, before)
    assert _max_ulp(got.ravel(), _reference(x)) <= MAX_ULP_F64
