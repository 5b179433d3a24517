"""Tests for the ``logreg`` demo (``make demo``) and the ``python -m chainrule`` CLI."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from chainrule.__main__ import MODELS, main  # noqa: E402
from chainrule.examples import logreg  # noqa: E402

EPOCHS = 600
LAST_LINE = re.compile(r"test accuracy: \d+\.\d%")


@pytest.fixture(scope="module")
def metrics() -> dict:
    return logreg.run(epochs=EPOCHS, lr=0.5, seed=0, verbose=False)


def test_generalizes(metrics):
    assert metrics["test_acc"] >= 0.94
    assert metrics["train_acc"] >= 0.95


def test_training_reduces_loss(metrics):
    assert metrics["initial_loss"] == pytest.approx(np.log(2), abs=0.02)  # w ~ 0, b = 0
    assert metrics["train_objective"] < 0.2 * metrics["initial_loss"]


def test_matches_sklearn_on_the_same_objective(metrics):
    # Same L2-penalized objective, strongly convex: both must reach the same minimum.
    assert metrics["train_objective"] == pytest.approx(metrics["sklearn_train_objective"],
                                                       abs=1e-4)
    assert metrics["train_objective"] >= metrics["sklearn_train_objective"] - 1e-7
    assert abs(metrics["train_loss"] - metrics["sklearn_train_loss"]) < 0.02
    assert abs(metrics["train_acc"] - metrics["sklearn_train_acc"]) <= 0.01
    assert abs(metrics["test_acc"] - metrics["sklearn_test_acc"]) <= 0.02
    assert metrics["max_abs_prob_diff"] < 0.01
    assert metrics["max_abs_weight_diff"] < 0.05


def test_loss_history_decreases_monotonically():
    split = logreg.load_data(seed=1)
    history = logreg.fit(split, epochs=100, lr=0.5, seed=1)["history"]
    assert len(history) == 101
    assert all(b <= a + 1e-12 for a, b in zip(history, history[1:]))


def test_standardized_with_training_statistics_only():
    split = logreg.load_data(seed=0)
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(split.x_train.std(axis=0), 1, atol=1e-12)
    assert np.abs(split.x_test.mean(axis=0)).max() > 1e-3  # test stats were not used
    # stratified: class balance preserved in both splits
    assert abs(split.y_train.mean() - split.y_test.mean()) < 0.01


def test_seed_is_reproducible():
    a = logreg.run(epochs=50, seed=3, verbose=False)
    b = logreg.run(epochs=50, seed=3, verbose=False)
    keys = [k for k in a if k != "train_seconds"]
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_quiet_prints_only_the_result(capsys):
    logreg.run(epochs=20, verbose=False)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and LAST_LINE.fullmatch(out[0])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chainrule", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_trains_logreg():
    result = _cli("train", "logreg", "--epochs", "300", "--seed", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
    assert "sklearn" in result.stdout and "L2" in result.stdout
    assert float(lines[-1].split()[-1].rstrip("%")) >= 94.0


def test_cli_unknown_model_lists_available():
    result = _cli("train", "no-such-model")
    assert result.returncode != 0
    assert "no-such-model" in result.stderr
    for name in MODELS:
        assert name in result.stderr


def test_main_rejects_bad_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "logreg", "--epochs", "0"])
    assert exc.value.code != 0
    assert "--epochs" in capsys.readouterr().err


# ---------------------------------------------------------------- the CLI for every model

def test_no_arguments_prints_usage_with_the_models():
    result = _cli()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: chainrule")
    for name, (_, description) in MODELS.items():
        assert f"{name}  " in result.stdout and description in result.stdout


def test_train_help_lists_every_model_with_its_description(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--epochs", "--lr", "--seed", "--out", "--resume", "--no-progress",
                   "--quiet"):
        assert option in out
    for name, (_, description) in MODELS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(description)}$", out, re.M), name


def test_every_registered_model_has_a_run_entry_point():
    import importlib
    import inspect
    for name, (module_name, _) in MODELS.items():
        params = inspect.signature(importlib.import_module(module_name).run).parameters
        assert {"epochs", "lr", "seed", "verbose"} <= set(params), name
        if name != "logreg":  # the others write a run folder and can resume
            assert {"out", "resume", "progress", "on_batch_end"} <= set(params), name


def test_cli_trains_digits_cnn_into_a_run_folder(tmp_path, capsys):
    code = main(["train", "digits-cnn", "--epochs", "1", "--seed", "3", "--lr", "0.01",
                 "--quiet", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and LAST_LINE.fullmatch(out[0]), out
    import chainrule as cr
    settings = cr.load(tmp_path / "checkpoint.safetensors")["settings"]
    assert (settings["epochs"], settings["seed"], settings["lr"]) == (1, 3, 0.01)
    assert main(["train", "digits-cnn", "--epochs", "1", "--resume", "--quiet",
                 "--out", str(tmp_path)]) == 0  # nothing left to train: the same result
    assert capsys.readouterr().out.strip() == out[0]


def test_cli_reports_run_errors_without_a_traceback(tmp_path, capsys):
    assert main(["train", "digits-cnn", "--resume", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: digits-cnn: nothing to resume")
    assert "Traceback" not in err


def test_cli_refuses_run_folder_options_for_logreg(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "logreg", "--resume", "--out", "x"])
    assert exc.value.code == 2
    assert "model 'logreg' does not take --out, --resume" in capsys.readouterr().err


def test_cli_exits_130_after_ctrl_c(monkeypatch):
    from chainrule.examples import digits_cnn

    def interrupted(**options):
        raise KeyboardInterrupt

    monkeypatch.setattr(digits_cnn, "run", interrupted)
    assert main(["train", "digits-cnn"]) == 130


def test_ctrl_c_on_the_command_line_saves_a_checkpoint_that_resume_finishes(tmp_path, capsys):
    import signal

    import chainrule as cr
    args = ["train", "digits-cnn", "--epochs", "3", "--no-progress", "--out", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "chainrule", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until training runs, then press Ctrl-C
        if line.startswith("epoch 1/3"):
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "Traceback" not in err
    ckpt = cr.load(tmp_path / "checkpoint.safetensors")
    assert ckpt["epoch"] >= 1 and ckpt["step"] < 3 * 23  # stopped before the end
    assert main([*args, "--resume", "--quiet"]) == 0
    assert LAST_LINE.fullmatch(capsys.readouterr().out.strip())
    assert cr.load(tmp_path / "checkpoint.safetensors")["epoch"] == 3
