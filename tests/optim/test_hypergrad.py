"""Hypergradients: the validation loss after k unrolled updates of a small model,
differentiated with respect to the learning rate (and other hyperparameters) through
the pure update rules, checked against finite differences in float64; and a few steps of
hyper-descent on the learning rate lower the validation loss."""
from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.optim import functional as F

K = 5  # unrolled training steps


def _data():
    rng = np.random.default_rng(0)
    w_true = rng.standard_normal((3, 1))

    def split(n):
        x = rng.standard_normal((n, 3))
        return cr.tensor(x), cr.tensor(np.sin(x @ w_true) + 0.1 * rng.standard_normal((n, 1)))

    init = [rng.standard_normal(s) * 0.5 for s in [(3, 8), (8,), (8, 1), (1,)]]
    return init, split(32), split(32)


INIT, TRAIN, VAL = _data()


def _loss(params, data):
    w1, b1, w2, b2 = params
    x, y = data
    return (((cr.tanh(x @ w1 + b1) @ w2 + b2) - y) ** 2).mean()


def _zeros():
    return [cr.zeros(*a.shape, dtype=cr.float64) for a in INIT]


# rule name -> (update(params, grads, state, hyper) -> (params, state), initial state, hyper)
RULES = {
    "sgd": (lambda p, g, s, h: F.sgd(p, g, s, lr=h["lr"], momentum=h.get("momentum", 0.9),
                                     nesterov=True),
            lambda: [None] * 4, dict(lr=0.1)),
    "adam": (lambda p, g, s, h: _adam(p, g, s, h, decoupled=False),
             lambda: (_zeros(), _zeros(), [0] * 4), dict(lr=0.02)),
    "adamw": (lambda p, g, s, h: _adam(p, g, s, h, decoupled=True),
              lambda: (_zeros(), _zeros(), [0] * 4), dict(lr=0.02)),
    "adagrad": (lambda p, g, s, h: _split(F.adagrad(p, g, s[0], s[1], lr=h["lr"],
                                                    lr_decay=0.1, weight_decay=0.01)),
                lambda: (_zeros(), [0] * 4), dict(lr=0.1)),
    "rmsprop": (lambda p, g, s, h: _split(F.rmsprop(p, g, s[0], s[1], s[2], lr=h["lr"],
                                                    centered=True, momentum=0.5)),
                lambda: (_zeros(), _zeros(), _zeros()), dict(lr=0.01)),
}


def _split(out):
    return out[0], out[1:]


def _adam(p, g, s, h, decoupled):
    m, v, steps = s
    new_p, m, v, _, steps = F.adam(p, g, m, v, None, steps, lr=h["lr"],
                                   beta1=h.get("beta1", 0.9), weight_decay=0.1,
                                   decoupled=decoupled)
    return new_p, (m, v, steps)


def _val_after_training(rule, hyper):
    """Validation loss after K updates; differentiable in any tensor in ``hyper``."""
    update, init_state, _ = RULES[rule]
    params = [cr.tensor(a, requires_grad=True) for a in INIT]
    state = init_state()
    for _ in range(K):
        grads = cr.autograd.grad(_loss(params, TRAIN), params, create_graph=True)
        params, state = update(params, grads, state, hyper)
    return _loss(params, VAL)


def _fd(rule, hyper, name, h=1e-6):
    def at(value):
        return float(_val_after_training(rule, {**hyper, name: value}))
    x = float(hyper[name])
    return (at(x + h) - at(x - h)) / (2 * h)


def _hypergrad(rule, hyper, name):
    hyper = dict(hyper)
    hyper[name] = cr.tensor(float(hyper[name]), dtype=cr.float64, requires_grad=True)
    val = _val_after_training(rule, hyper)
    (g,) = cr.autograd.grad(val, [hyper[name]])
    return float(val), float(g)


@pytest.mark.parametrize("rule", list(RULES))
def test_lr_hypergradient_matches_finite_differences(rule):
    hyper = RULES[rule][2]
    val, g = _hypergrad(rule, hyper, "lr")
    assert val == pytest.approx(float(_val_after_training(rule, hyper)), rel=1e-12)
    assert abs(g) > 1e-3  # the check below is not vacuous
    assert g == pytest.approx(_fd(rule, hyper, "lr"), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("rule,name", [("sgd", "momentum"), ("adam", "beta1")])
def test_other_hypergradients(rule, name):
    hyper = {**RULES[rule][2], name: 0.8}
    _, g = _hypergrad(rule, hyper, name)
    assert g == pytest.approx(_fd(rule, hyper, name), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("rule,lr0", [("sgd", 0.01), ("adam", 0.005)])
def test_hyper_descent_lowers_validation_loss(rule, lr0):
    """Plain gradient descent on log(lr), through the unrolled training run."""
    log_lr = np.log(lr0)
    losses = []
    for _ in range(5):
        val, g = _hypergrad(rule, {"lr": float(np.exp(log_lr))}, "lr")
        losses.append(val)
        log_lr -= g * np.exp(log_lr)  # d val / d log(lr) = lr * d val / d lr
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.5 * losses[0]
    assert np.exp(log_lr) > 2 * lr0  # it learned to take larger steps
