"""hypergrad: the hypergradient through the unrolled SGD steps equals a finite
difference of the validation loss, and a short run raises a too-small learning rate and
lowers the validation loss."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

import chainrule as cr  # noqa: E402
from chainrule.examples import hypergrad  # noqa: E402
from chainrule.optim import SGD  # noqa: E402


def _problem():
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((60, 8)))  # float64
    y = cr.tensor(rng.integers(0, 3, 60))
    return x[:40], y[:40], x[40:], y[40:]


def _val_loss(model, data, create_graph):
    x_train, y_train, x_val, y_val = data
    params = model(x_train, y_train, create_graph=create_graph)
    return hypergrad.cross_entropy(params, x_val, y_val)


def test_hypergradient_matches_finite_differences():
    data = _problem()
    model = hypergrad.UnrolledSGD(8, 3, steps=6, lr=0.5)
    _val_loss(model, data, create_graph=True).backward()
    analytic = model.log_lr.grad.item()
    eps, log_lr = 1e-5, model.log_lr.item()
    values = []
    for sign in (1, -1):
        with cr.no_grad():
            model.log_lr.fill_(log_lr + sign * eps)
        values.append(_val_loss(model, data, create_graph=False).item())
    numeric = (values[0] - values[1]) / (2 * eps)
    assert abs(numeric) > 1e-3  # the learning rate matters here
    assert analytic == pytest.approx(numeric, rel=1e-6)


def test_unrolled_steps_are_plain_sgd():
    data = _problem()
    model = hypergrad.UnrolledSGD(8, 3, steps=2, lr=0.3)
    w, b = model(data[0], data[1], create_graph=False)
    params = [cr.zeros(8, 3, dtype=cr.float64, requires_grad=True),
              cr.zeros(3, dtype=cr.float64, requires_grad=True)]
    opt = SGD(params, lr=0.3)
    for _ in range(2):  # the same two steps with the optimizer class
        opt.zero_grad()
        hypergrad.cross_entropy(params, data[0], data[1]).backward()
        opt.step()
    np.testing.assert_allclose(w.detach().numpy(), params[0].detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.detach().numpy(), params[1].detach().numpy(), rtol=1e-12)


def test_short_run_raises_the_lr_and_lowers_the_validation_loss(tmp_path, capsys):
    result = hypergrad.run(epochs=12, steps=8, out=tmp_path, verbose=False)
    lrs = [row["lr"] for row in result["history"]]
    losses = [row["val_loss"] for row in result["history"]]
    assert all(b > a for a, b in zip(lrs, lrs[1:]))  # from 0.01, far too small, upwards
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.6 * result["initial_val_loss"]
    assert result["initial_val_loss"] == pytest.approx(math.log(10), rel=0.2)
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"learned lr: \S+ \(validation loss after 8 steps: \d\.\d{3} at lr "
                        r"0\.01 -> \d\.\d{3}\)", line), line
