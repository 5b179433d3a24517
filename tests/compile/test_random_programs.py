"""Random programs (hypothesis): compiled == eager, forward and gradients.

A program is 1-3 inputs of mutually broadcastable shapes (0-d included) and a short
sequence of steps; each step applies an op to values made earlier (inputs or earlier
steps). The ops are elementwise (including the patterns the numerically safe rewrites
look for, at values where eager is finite), binary with broadcasting, reductions that
keep their axes, a matmul by a captured matrix, reshape and transpose round trips and
identities the simplifier removes. Every value stays broadcastable with every other, so
any two can be combined. Hypothesis shrinks a failure to a short program, which the
failure message prints as a listing.

Each program runs with fusion off, through the full pipeline with fused groups on the
NumPy kernel target, and (a few examples: kernel builds are slow) on numba kernels.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chainrule as cr
from chainrule.compile import jit

from .test_differential import TARGET_ENV, compiled_twice, passes

MATS = {n: cr.tensor(np.random.default_rng(n).standard_normal((n, n)) / n) for n in range(1, 5)}


def _last(fn):
    """An op over the last axis; on a 0-d value it falls back to tanh."""
    return lambda v: fn(v) if v.ndim else cr.tanh(v)


UNARY = {
    "tanh": cr.tanh, "sigmoid": cr.sigmoid, "sin": cr.sin, "neg": cr.neg, "abs": cr.abs,
    "relu": cr.relu, "softplus": cr.softplus, "square": lambda v: v * v,
    "exp": lambda v: cr.exp(cr.tanh(v) * 3),
    "sqrt": lambda v: cr.sqrt(v * v + 1.0),
    # the patterns of the safe rewrites, at arguments where eager is finite
    "log1p": lambda v: cr.log(1 + v * v),
    "log_sigmoid": lambda v: cr.log(cr.sigmoid(v)),
    "expm1": lambda v: cr.exp(cr.tanh(v)) - 1,
    "log_softmax": _last(lambda v: cr.log(cr.softmax(v, -1))),
    "logsumexp": _last(lambda v: cr.log(cr.exp(v).sum(-1, keepdim=True))),
    # identities and round trips for the simplifier
    "identity": lambda v: (v * 1.0 + 0.0) / 1.0,
    "reshape": lambda v: v.reshape(-1).reshape(v.shape),
    "transpose": lambda v: v.transpose(-1, -2).transpose(-1, -2) if v.ndim >= 2 else v + 0,
    "broadcast": lambda v: v + cr.tensor(0.5, dtype=v.dtype).expand(*v.shape),
    # reductions that keep their axes (the value stays broadcastable with the others)
    "sum": _last(lambda v: v.sum(-1, keepdim=True)),
    "mean": lambda v: v.mean(),
    "amax": _last(lambda v: cr.amax(v, -1, keepdim=True)),
    "cumsum": _last(lambda v: cr.cumsum(v, -1)),
    "matmul": _last(lambda v: v @ MATS[v.shape[-1]]),
}
BINARY = {
    "add": cr.add, "sub": cr.sub, "mul": cr.mul,
    "div": lambda a, b: a / (1.0 + b * b),
    "maximum": cr.maximum,
    "where": lambda a, b: cr.where(a > b, a, b * 2.0),
    "pow": lambda a, b: (1.0 + a * a) ** cr.tanh(b),
}


@st.composite
def programs(draw):
    n_in = draw(st.integers(1, 3))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=n_in, min_dims=0, max_dims=3,
                                                    min_side=1, max_side=4)).input_shapes
    steps = []
    for k in range(draw(st.integers(1, 7))):
        n_vals = n_in + k
        if draw(st.booleans()):
            steps.append((draw(st.sampled_from(sorted(UNARY))),
                          draw(st.integers(0, n_vals - 1))))
        else:
            steps.append((draw(st.sampled_from(sorted(BINARY))),
                          draw(st.integers(0, n_vals - 1)), draw(st.integers(0, n_vals - 1))))
    return list(shapes), steps


def run(steps, xs):
    """All values of the program: its inputs, then one per step."""
    vals = list(xs)
    for name, *args in steps:
        op = UNARY.get(name) or BINARY[name]
        vals.append(op(*[vals[i] for i in args]))
    return vals


def listing(shapes, steps) -> str:
    lines = [f"%{i}: {s}" for i, s in enumerate(shapes)]
    lines += [f"%{len(shapes) + k} = {name} " + " ".join(f"%{i}" for i in args)
              for k, (name, *args) in enumerate(steps)]
    return "\n".join(lines)


def forward(n_in, steps):
    def fn(*xs):
        vals = run(steps, xs)
        return vals[-1], vals[n_in:][0]  # the last value and the first step's
    return fn


def loss(n_in, steps):
    def fn(*xs):  # every step reaches the loss, so every rule runs in backward
        return sum(cr.tanh(v).sum() for v in run(steps, xs)[n_in:])
    return fn


def inputs(shapes, seed):
    rng = np.random.default_rng(seed)
    return [cr.tensor(rng.standard_normal(s)) for s in shapes]


def assert_compiled_equals_eager(fn, xs, program, fuse):
    got = compiled_twice(jit(fn, passes=passes(fuse)), *xs)
    want = fn(*xs)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, f"output {k}\n{program}"
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-9, atol=1e-10,
                                   err_msg=f"output {k} of\n{program}")


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=40, **SETTINGS)
@given(programs(), st.integers(0, 2 ** 32 - 1))
def test_random_programs_without_fusion(program, seed):
    shapes, steps = program
    xs, text = inputs(shapes, seed), listing(shapes, steps)
    n = len(xs)
    assert_compiled_equals_eager(forward(n, steps), xs, text, fuse=False)
    assert_compiled_equals_eager(cr.grad(loss(n, steps), argnums=tuple(range(n))), xs, text,
                                 fuse=False)


@settings(max_examples=15, **SETTINGS)
@given(programs(), st.integers(0, 2 ** 32 - 1))
def test_random_programs_full_pipeline(program, seed):
    check(program, seed, "numpy")


@settings(max_examples=3, **SETTINGS)  # each example builds numba kernels (~0.5 s each)
@given(programs(), st.integers(0, 2 ** 32 - 1))
def test_random_programs_on_numba_kernels(program, seed):
    pytest.importorskip("numba")
    check(program, seed, "numba")


def check(program, seed, target):
    """Forward and gradients, full pipeline, fused groups on ``target``."""
    shapes, steps = program
    xs, text = inputs(shapes, seed), listing(shapes, steps)
    n = len(xs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TARGET_ENV, target)
        assert_compiled_equals_eager(forward(n, steps), xs, text, fuse=True)
        assert_compiled_equals_eager(cr.grad(loss(n, steps), argnums=tuple(range(n))), xs,
                                     text, fuse=True)
