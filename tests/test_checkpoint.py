"""Gradient checkpointing: the same gradients as the un-checkpointed run (dropout
included), to second order, through every API; less memory kept; clear errors."""
import tracemalloc

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn

F64 = cr.float64


def make_model(seed=0, width=16, depth=6, p=0.3):
    cr.manual_seed(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, dtype=F64), nn.Tanh(), nn.Dropout(p)]
    return nn.Sequential(*layers)


def run(model, x, segments=None, seed=1):
    cr.manual_seed(seed)  # the same dropout masks in both runs
    h = model(x) if segments is None else cr.checkpoint_sequential(model, segments, x)
    return (h ** 2).mean()


def params_grads(model, loss, create_graph=False):
    return cr.autograd.grad(loss, list(model.parameters()), create_graph=create_graph)


def test_checkpoint_sequential_matches_plain_gradients_with_dropout():
    model = make_model()
    x = cr.randn(8, 16, dtype=F64, requires_grad=True)
    plain = params_grads(model, run(model, x))
    ck = params_grads(model, run(model, x, segments=3))
    for a, b in zip(plain, ck):
        np.testing.assert_array_equal(a.data, b.data)


def test_backward_accumulates_into_params_and_inputs_and_runs_twice():
    model = make_model()
    x = cr.randn(4, 16, dtype=F64, requires_grad=True)
    run(model, x).backward()
    want = [p.grad.data.copy() for p in model.parameters()] + [x.grad.data.copy()]
    model.zero_grad()
    x.grad = None
    loss = run(model, x, segments=4)
    loss.backward(retain_graph=True)
    got = [p.grad.data.copy() for p in model.parameters()] + [x.grad.data.copy()]
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)
    loss.backward()  # a second backward recomputes again
    for a, p in zip(want, model.parameters()):
        np.testing.assert_allclose(p.grad.data, 2 * a)


def test_second_order_through_checkpoint_matches_plain():
    model = make_model(depth=3, width=6, p=0.0)
    x = cr.randn(3, 6, dtype=F64)

    def gnorm(segments):
        gs = params_grads(model, run(model, x, segments), create_graph=True)
        return sum((g * g).sum() for g in gs)

    w = list(model.parameters())[0]
    (a,) = cr.autograd.grad(gnorm(None), w)
    (b,) = cr.autograd.grad(gnorm(2), w)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12)


def test_checkpoint_under_functional_grad_and_hvp():
    cr.manual_seed(3)
    w = cr.randn(5, 5, dtype=F64)

    def block(h, w):
        return cr.sin(h @ w)

    def loss(w, ck):
        h = cr.ones(2, 5, dtype=F64)
        for _ in range(3):
            h = cr.checkpoint(block, h, w) if ck else block(h, w)
        return h.sum()

    np.testing.assert_allclose(cr.grad(loss)(w, True).data, cr.grad(loss)(w, False).data)
    v = cr.randn(5, 5, dtype=F64)
    np.testing.assert_allclose(cr.hvp(lambda w: loss(w, True), (w,), (v,))[1][0].data,
                               cr.hvp(lambda w: loss(w, False), (w,), (v,))[1][0].data,
                               rtol=1e-10)


def test_checkpoint_keeps_less_memory():
    cr.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(16) for m in (nn.Linear(256, 256), nn.ReLU())])
    x = cr.randn(128, 256)

    def held(segments):
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        loss = run(model, x, segments)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del loss
        return after - before

    full, ck = held(None), held(4)
    # 16 layers kept in full; with 4 segments, 3 segment inputs and the 4 layers of the
    # last segment (not checkpointed): 7/16 of the activations
    assert ck < 0.5 * full, (full, ck)


def test_nothing_requiring_grad_is_an_error_but_no_grad_just_runs():
    x = cr.ones(3)
    with pytest.raises(RuntimeError, match=r"checkpoint: no output of <lambda> requires grad.*"
                                           r"test_checkpoint.py"):
        cr.checkpoint(lambda a: a * 2, x)
    with cr.no_grad():
        np.testing.assert_allclose(cr.checkpoint(lambda a: a * 2, x).data, 2)


def test_input_modified_in_place_before_backward_is_named():
    w = cr.randn(3, 3, dtype=F64, requires_grad=True)
    h = cr.randn(2, 3, dtype=F64)
    out = cr.checkpoint(lambda a: cr.tanh(a @ w), h)
    h.mul_(2)
    with pytest.raises(RuntimeError, match="checkpoint: an input .* modified in place by mul_"):
        out.sum().backward()


def test_checkpoint_sequential_argument_errors():
    with pytest.raises(ValueError, match="segments=5"):
        cr.checkpoint_sequential([lambda a: a] * 2, 5, cr.ones(2))


def test_saved_tensors_report_names_ops_bytes_and_lines():
    w = cr.randn(64, 32, requires_grad=True)

    def f(x):
        return cr.tanh(x @ w).sum()

    rep = cr.autograd.saved_tensors_report(f, cr.randn(16, 64))
    ops = [r["op"] for r in rep.rows]
    assert ops == ["matmul", "tanh", "sum"]
    mm = rep.rows[0]
    assert [s[:2] for s in mm["saved"]] == [("in0", (16, 64)), ("in1", (64, 32))]
    assert mm["bytes"] == (16 * 64 + 64 * 32) * 4
    assert rep.rows[1]["saved"][0][:2] == ("out", (16, 32))
    assert mm["site"].endswith(f"test_checkpoint.py:{f.__code__.co_firstlineno + 1}")
    assert rep.total_bytes == (16 * 64 + 64 * 32 + 16 * 32) * 4
    text = str(rep)
    assert "matmul" in text and "total: 14,336 bytes in 3 ops" in text
