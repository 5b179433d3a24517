"""digits-cnn: the full default run (about 10 s here) reaches 98% held-out accuracy and
prints its result last; the model's shapes."""
from __future__ import annotations

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

import chainrule as cr  # noqa: E402
from chainrule.examples import digits_cnn  # noqa: E402
from chainrule.examples.runner import count_parameters  # noqa: E402

from ._util import check_run_folder  # noqa: E402


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits-cnn")
    return folder, digits_cnn.run(out=folder, verbose=False)


def test_default_run_reaches_98_percent(default_run):
    _, result = default_run
    assert len(result["history"]) == digits_cnn.DEFAULTS["epochs"]
    assert result["test_acc"] >= 0.98
    assert result["train_acc"] >= 0.99
    assert result["history"][-1]["test_loss"] < 0.3 * result["history"][0]["train_loss"]


def test_default_run_folder(default_run):
    folder, result = default_run
    check_run_folder(folder, result["history"], ["features.0.weight", "classifier.weight"])


def test_shapes_and_parameter_count():
    model = digits_cnn.DigitsCNN((32, 64))
    assert model(cr.zeros(5, 1, 8, 8)).shape == (5, 10)
    conv = (1 * 9 + 1) * 32 + (32 * 9 + 1) * 64  # weights and biases
    batchnorm = 2 * (32 + 64)
    assert count_parameters(model) == conv + batchnorm + 64 * 4 * 10 + 10
