"""Shared pieces of the PyTorch reference tests: input generators, the case table and
the comparison helpers. Imported only after ``pytest.importorskip("torch")``."""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

INF = float("inf")

# --------------------------------------------------------------------------- inputs
# A generator part maps a numpy Generator to one array; ``G`` joins parts into
# the argument list of a case.


def normal(*shape, scale=1.0):
    return lambda r: r.standard_normal(shape) * scale


def uniform(lo, hi, *shape):
    return lambda r: r.uniform(lo, hi, shape)


def positive(*shape):
    return uniform(0.5, 2.0, *shape)


def nonzero(*shape):
    return lambda r: r.uniform(0.5, 2.0, shape) * r.choice([-1.0, 1.0], shape)


def ints(lo, hi, *shape):
    """Integer-valued floats: plenty of ties for max/min/amax."""
    return lambda r: r.integers(lo, hi, shape).astype(np.float64)


def index(hi, *shape, lo=0):
    """int64 index arrays."""
    return lambda r: r.integers(lo, hi, shape).astype(np.int64)


def mask(*shape):
    return lambda r: r.random(shape) < 0.5


def probs(*shape, axis=1):
    """Rows of class probabilities (softmax of noise) along ``axis``."""
    def make(r):
        e = np.exp(r.standard_normal(shape))
        return e / e.sum(axis=axis, keepdims=True)
    return make


def fixed(value, dtype=np.float64):
    return lambda r: np.array(value, dtype=dtype)


def G(*parts):
    return lambda r: [p(r) for p in parts]


# --------------------------------------------------------------------------- table


@dataclass
class Case:
    id: str
    crf: Callable
    thf: Callable
    gen: Callable
    rtol: float = 1e-10
    atol: float = 1e-12
    grad: tuple | None = None  # indices of inputs to differentiate; None: all floating
    f32: bool = False          # also run in float32
    xfail: str | None = None   # reason: a known, still open chainrule bug
    regression: str | None = None  # a chainrule bug this row caught (fixed since)


CASES: list[Case] = []


def case(id, crf, thf, *parts, **kw):
    if any(c.id == id for c in CASES):
        raise AssertionError(f"duplicate case id {id}")
    CASES.append(Case(id, crf, thf, G(*parts), **kw))


def same(id, fn, *parts, **kw):
    """A case whose code is the same for both libraries (methods, dunders)."""
    case(id, fn, fn, *parts, **kw)



# ------------------------------------------------------------------- comparison


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def _outs(o):
    return list(o) if isinstance(o, (tuple, list)) else [o]


def _np_dtype(dt) -> np.dtype:
    return np.dtype(str(dt).replace("torch.", ""))


def _close(actual, expected, rtol, atol, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if actual.dtype.kind in "biu" or expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=what)
