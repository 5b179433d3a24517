"""Every primitive through the transforms, at second order, in all four mode pairs.

For a scalar f(x) = <w, prim(x)>, the Hessian-vector products computed
reverse-over-reverse, forward-over-reverse, reverse-over-forward and
forward-over-forward (u^T H v) must agree; and the jvp transform (the forward-mode
interpreter) must agree with the vjp transform: <u, J v> == <J^T u, v>.
"""
import numpy as np
import pytest

import chainrule as cr
from chainrule.core.dispatch import bind
from chainrule.core.primitive import PRIMITIVES

from .test_primitives import DIFF, DIFF_IDS, _diff_idx

ORDER2 = [d for d in DIFF if d[1].order2]
ORDER2_IDS = [i for d, i in zip(DIFF, DIFF_IDS) if d[1].order2]


def _setup(name, case, seed=3):
    prim = PRIMITIVES[name]
    idx = _diff_idx(case)
    rng = np.random.default_rng(seed)
    args = [cr.Tensor(a.copy()) for a in case.args]
    xs = tuple(args[i] for i in idx)

    def f(*d):
        full = list(args)
        for i, x in zip(idx, d):
            full[i] = x
        return bind(prim, *full, **case.params)

    out = f(*xs)
    w = cr.Tensor(rng.standard_normal(out.shape))

    def scalar(*d):
        return (f(*d) * w).sum()

    vs = tuple(cr.Tensor(rng.standard_normal(x.shape)) for x in xs)
    us = tuple(cr.Tensor(rng.standard_normal(x.shape)) for x in xs)
    return f, scalar, xs, vs, us


def _dot(a, b):
    return sum(float(np.sum(x.data * y.data)) for x, y in zip(a, b))


@pytest.mark.parametrize("name,case", DIFF, ids=DIFF_IDS)
def test_jvp_transform_against_vjp_transform(name, case):
    f, _, xs, vs, _ = _setup(name, case)
    out, jv = cr.jvp(f, xs, vs)
    rng = np.random.default_rng(11)
    u = cr.Tensor(rng.standard_normal(out.shape))
    out2, vjp_fn = cr.vjp(f, *xs)
    np.testing.assert_allclose(out.data, out2.data)
    assert _dot([u], [jv]) == pytest.approx(_dot(vjp_fn(u), vs), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name,case", ORDER2, ids=ORDER2_IDS)
def test_second_order_in_all_mode_pairs(name, case):
    _, g, xs, vs, us = _setup(name, case)
    n = len(xs)
    nums = tuple(range(n))
    # reverse over reverse: grad of <grad g, v>
    rr = cr.grad(lambda *d: sum((gi * v).sum() for gi, v in
                                zip(cr.grad(g, nums)(*d), vs)), nums)(*xs)
    # forward over reverse
    _, fr = cr.jvp(cr.grad(g, nums), xs, vs)
    # reverse over forward
    rf = cr.grad(lambda *d: cr.jvp(g, d, vs)[1], nums)(*xs)
    # forward over forward: u^T H v
    _, ff = cr.jvp(lambda *d: cr.jvp(g, d, vs)[1], xs, us)
    for a, b, c in zip(rr, fr, rf):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(a.data, c.data, rtol=1e-8, atol=1e-9)
    assert float(ff) == pytest.approx(_dot(us, rr), rel=1e-8, abs=1e-9)
