"""digits-mlp: a short run learns; dropout is on in training and off in evaluation."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

import chainrule as cr  # noqa: E402
from chainrule.examples import digits_mlp  # noqa: E402


def test_short_run_learns(tmp_path):
    result = digits_mlp.run(epochs=5, out=tmp_path, verbose=False)
    history = result["history"]
    assert history[-1]["train_loss"] < 0.3 * history[0]["train_loss"]
    assert result["test_acc"] >= 0.93  # chance is 0.1
    assert len(history) == 5 and (tmp_path / "metrics.csv").exists()


def test_dropout_only_in_training():
    cr.manual_seed(0)
    model = digits_mlp.DigitsMLP((32,), dropout=0.5)
    x = cr.rand(4, 64)
    model.train()
    model.requires_grad_(False)
    assert not np.array_equal(model(x).numpy(), model(x).numpy())
    model.eval()
    assert np.array_equal(model(x).numpy(), model(x).numpy())
    assert model(x).shape == (4, 10)
