"""Anomaly mode: the op, the phase, the user's line and the input statistics."""
import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd import AnomalyError, detect_anomaly


def line_of(marker: str) -> int:
    with open(__file__) as f:
        return next(i for i, s in enumerate(f, 1) if marker in s and "line_of" not in s)


def test_forward_nan_names_op_line_and_input_statistics():
    x = cr.tensor([1.0, -1.0, 4.0], requires_grad=True)
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        cr.sqrt(x)  # MARK-FWD
    msg = str(info.value)
    assert info.value.phase == "forward"
    assert "'sqrt' produced NaN in the forward pass" in msg
    assert f"test_anomaly.py:{line_of('MARK-FWD')}" in msg
    assert "input 0: (3,) float32: min -1, max 4, 0 NaN, 0 Inf" in msg
    assert "output: (3,) float32: min 1, max 2, 1 NaN, 0 Inf" in msg


def test_backward_inf_names_the_forward_line_of_the_op():
    x = cr.tensor([0.0, 1.0], dtype=cr.float64, requires_grad=True)
    with detect_anomaly():
        y = cr.sqrt(x)  # MARK-BWD
        with pytest.raises(AnomalyError) as info:
            y.sum().backward()
    err = info.value
    assert err.phase == "backward" and err.node is y.grad_fn
    msg = str(err)
    assert "backward pass" in msg and "'sqrt'" in msg
    assert f"test_anomaly.py:{line_of('MARK-BWD')}" in msg
    assert "1 Inf" in msg


def test_nan_made_by_a_vjp_rule_itself_is_named():
    class BadGrad(cr.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g * np.nan

    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with detect_anomaly():
        y = BadGrad.apply(x)  # MARK-FN
        with pytest.raises(AnomalyError, match=r"backward.*BadGrad.*test_anomaly.py:%d"
                           % line_of("MARK-FN")):
            y.sum().backward()


def test_values_that_arrive_nonfinite_pass_and_masks_stay_legal():
    logits = cr.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    mask = cr.tensor([[False, False, True]])
    with detect_anomaly():
        p = cr.softmax(cr.masked_fill(logits, mask, float("-inf")), -1)  # -inf is an input
        p[0, 0].backward()
    assert np.isfinite(logits.grad.data).all()
    np.testing.assert_allclose(p.data[0, 2], 0.0)


def test_anomaly_mode_changes_no_result_and_is_off_after():
    x = cr.randn(4, 3, requires_grad=True)
    w = cr.randn(3, 2, requires_grad=True)
    with detect_anomaly():
        assert cr.autograd.is_anomaly_enabled()
        (cr.tanh(x @ w) ** 2).sum().backward()
    a = (x.grad.data.copy(), w.grad.data.copy())
    x.grad = w.grad = None
    (cr.tanh(x @ w) ** 2).sum().backward()
    np.testing.assert_array_equal(a[0], x.grad.data)
    np.testing.assert_array_equal(a[1], w.grad.data)
    assert not cr.autograd.is_anomaly_enabled()


def test_decorator_form_and_inplace_error_names_both_lines():
    @detect_anomaly()
    def step(x):
        a = x * 2
        b = a * a  # MARK-SAVED
        a.add_(1)  # MARK-CHANGED
        b.sum().backward()

    with pytest.raises(RuntimeError) as info:
        step(cr.ones(3, requires_grad=True))
    msg = str(info.value)
    assert f"saved by 'mul' at {__file__}:{line_of('MARK-SAVED')}" in msg
    assert f"changed by add_ at {__file__}:{line_of('MARK-CHANGED')}" in msg


def test_inplace_error_without_anomaly_mode_says_how_to_find_the_saving_line():
    x = cr.ones(3, requires_grad=True)
    a = x * 2
    b = a * a
    a.add_(1)
    with pytest.raises(RuntimeError, match="Run under chainrule.autograd.detect_anomaly"):
        b.sum().backward()
