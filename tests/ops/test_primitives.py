"""Tests generated from the primitive table: every row, every case.

* forward value against a NumPy reference, in float64 and float32, and the shape
  rule against the value the impl produced;
* reverse mode against finite differences in float64, first and second order;
* the jvp rule against finite differences, and against the vjp rule:
  <u, J v> == <J^T u, v>.
"""
import importlib
import pathlib

import numpy as np
import pytest

import chainrule as cr
from chainrule.core.dispatch import bind, no_grad
from chainrule.core.primitive import PRIMITIVES
from chainrule.testing import gradcheck, gradgradcheck

from .cases import CASES

# More rows register their cases in tests/ops/cases_*.py (one file per op family).
for _mod in sorted(pathlib.Path(__file__).parent.glob("cases_*.py")):
    importlib.import_module(f"{__package__}.{_mod.stem}")

ALL = [(n, c) for n, cs in CASES.items() for c in cs]
IDS = [f"{n}{c!r}" for n, c in ALL]


def _diff_idx(case):
    if case.grad is not None:
        return case.grad
    return tuple(i for i, a in enumerate(case.args) if a.dtype.kind == "f")


DIFF = [(n, c) for n, c in ALL if PRIMITIVES[n].vjp is not None and _diff_idx(c)]
DIFF_IDS = [f"{n}{c!r}" for n, c in DIFF]


class AVal:
    def __init__(self, a):
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim


def test_every_primitive_has_cases():
    missing = set(PRIMITIVES) - set(CASES)
    assert not missing, f"primitives without test cases in tests/ops/cases.py: {missing}"


def test_every_differentiable_primitive_has_a_jvp():
    assert [n for n, p in PRIMITIVES.items() if p.vjp is not None and p.jvp is None] == []


@pytest.mark.parametrize("name,case", ALL, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_numpy_and_shape_rule(name, case, dtype):
    prim = PRIMITIVES[name]
    arrays = [a.astype(dtype) if a.dtype.kind == "f" and name != "cast" else a
              for a in case.args]
    out = bind(prim, *[cr.Tensor(a) for a in arrays], **case.params)
    ref = np.asarray(case.ref(*arrays, **case.params))
    assert out.shape == ref.shape
    assert isinstance(out.data, np.ndarray)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(out.data, ref, rtol=tol, atol=tol)
    if ref.dtype.kind == "f" and arrays[0].dtype.kind == "f" and name != "cast":
        assert out.dtype == arrays[0].dtype, "float ops keep their input dtype"
    shape, rdtype = prim.shape(*[AVal(a) for a in arrays], **case.params)
    assert tuple(shape) == out.shape and np.dtype(rdtype) == out.dtype


def _inputs(case):
    idx = _diff_idx(case)
    return [cr.Tensor(a.copy(), requires_grad=i in idx) for i, a in enumerate(case.args)]


@pytest.mark.parametrize("name,case", DIFF, ids=DIFF_IDS)
def test_vjp_first_order(name, case):
    prim = PRIMITIVES[name]
    assert gradcheck(lambda *xs: bind(prim, *xs, **case.params), _inputs(case))


@pytest.mark.parametrize("name,case", [d for d in DIFF if d[1].order2],
                         ids=[i for d, i in zip(DIFF, DIFF_IDS) if d[1].order2])
def test_vjp_second_order(name, case):
    prim = PRIMITIVES[name]
    assert gradgradcheck(lambda *xs: bind(prim, *xs, **case.params), _inputs(case))


@pytest.mark.parametrize("name,case", DIFF, ids=DIFF_IDS)
def test_jvp_against_finite_differences_and_vjp(name, case):
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(7)
    xs = _inputs(case)
    idx = _diff_idx(case)
    tangents = tuple(cr.Tensor(rng.standard_normal(x.shape)) if i in idx else None
                     for i, x in enumerate(xs))
    eps = 1e-6
    with no_grad():
        out = bind(prim, *xs, **case.params)
        jv = prim.jvp(tangents, out, *xs, **case.params)
        shifted = []
        for sgn in (1, -1):
            moved = [cr.Tensor(x.data + sgn * eps * t.data) if t is not None else x
                     for x, t in zip(xs, tangents)]
            shifted.append(bind(prim, *moved, **case.params).data)
        fd = (shifted[0] - shifted[1]) / (2 * eps)
        np.testing.assert_allclose(jv.data, fd, rtol=1e-5, atol=1e-6)
        assert jv.shape == out.shape and jv.dtype == out.dtype
        u = cr.Tensor(rng.standard_normal(out.shape))
        ct = prim.vjp(u, out, *xs, **case.params)
        lhs = float(np.sum(u.data * jv.data))
        rhs = sum(float(np.sum(g.data * t.data)) for g, t in zip(ct, tangents)
                  if t is not None)
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-9)
