"""The run machinery (chainrule.examples.runner), exercised through a tiny digits-cnn:
the run folder, exact resume, Ctrl-C at any point of a step, settings on resume,
determinism, the progress bar and quiet output."""
from __future__ import annotations

import re
import signal

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

import chainrule as cr  # noqa: E402
from chainrule.examples import digits_cnn  # noqa: E402
from chainrule.examples.runner import RunError, _DeferredInterrupt  # noqa: E402

from ._util import assert_same_weights, check_run_folder, without_time  # noqa: E402

TINY = {"channels": (4, 8), "batch_size": 128, "lr": 0.03, "verbose": False}  # 12 batches an epoch


def tiny_run(folder, **options):
    return digits_cnn.run(out=folder, **{**TINY, **options})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Three epochs in one go (seed 5): the reference for every resume test."""
    folder = tmp_path_factory.mktemp("full")
    return folder, tiny_run(folder, epochs=3, seed=5)


def test_run_folder_holds_weights_checkpoint_metrics_plot_and_graph(uninterrupted):
    folder, result = uninterrupted
    check_run_folder(folder, result["history"],
                     ["features.0.weight", "features.4.weight", "classifier.bias"])
    ckpt = cr.load(folder / "checkpoint.safetensors")
    assert ckpt["run"] == "digits-cnn" and ckpt["settings"]["seed"] == 5
    assert ckpt["optimizer"]["state"] and ckpt["scheduler"]["last_epoch"] == 3
    assert ckpt["rng"]["bit_generator"] == "PCG64" and ckpt["loader"]["batches_done"] == 12
    model = digits_cnn.DigitsCNN((4, 8))  # the weights load into a fresh model
    model.load_state_dict(cr.load(folder / "model.safetensors"))


def test_learning_happens_even_in_a_tiny_run(uninterrupted):
    history = uninterrupted[1]["history"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["test_acc"] > 0.88  # chance is 0.1


def test_stop_and_resume_equals_uninterrupted_bitwise(tmp_path, uninterrupted):
    tiny_run(tmp_path, epochs=2, seed=5)
    resumed = digits_cnn.run(out=tmp_path, epochs=3, resume=True, verbose=False)
    assert_same_weights(tmp_path, uninterrupted[0])  # seed and sizes came from the checkpoint
    assert without_time(resumed["history"]) == without_time(uninterrupted[1]["history"])
    check_run_folder(tmp_path, resumed["history"], ["classifier.weight"])


def test_resume_without_epochs_finishes_the_planned_run(tmp_path, uninterrupted):
    def stop(progress):
        if progress.epoch == 1 and progress.batch == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        tiny_run(tmp_path, epochs=3, seed=5, on_batch_end=stop)
    ckpt = cr.load(tmp_path / "checkpoint.safetensors")
    assert (ckpt["epoch"], ckpt["batch"]) == (1, 3)  # mid-epoch, after the third batch
    resumed = digits_cnn.run(out=tmp_path, resume=True, verbose=False)
    assert len(resumed["history"]) == 3
    assert_same_weights(tmp_path, uninterrupted[0])
    assert without_time(resumed["history"]) == without_time(uninterrupted[1]["history"])


def test_ctrl_c_during_a_forward_pass_stops_after_that_batch(tmp_path, monkeypatch,
                                                             uninterrupted, capsys):
    calls = {"n": 0}
    forward = digits_cnn.DigitsCNN.forward

    def patched(self, x):
        calls["n"] += 1
        if calls["n"] == 20:  # the 8th batch of epoch 2 (12 batches + 1 evaluation per epoch)
            signal.raise_signal(signal.SIGINT)  # a real Ctrl-C, in the middle of the step
        return forward(self, x)

    monkeypatch.setattr(digits_cnn.DigitsCNN, "forward", patched)
    with pytest.raises(KeyboardInterrupt):
        tiny_run(tmp_path, epochs=3, seed=5)
    assert "checkpoint saved" in capsys.readouterr().err
    ckpt = cr.load(tmp_path / "checkpoint.safetensors")
    assert (ckpt["epoch"], ckpt["batch"]) == (1, 7)  # the interrupted batch was completed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    monkeypatch.setattr(digits_cnn.DigitsCNN, "forward", forward)
    digits_cnn.run(out=tmp_path, resume=True, verbose=False)
    assert_same_weights(tmp_path, uninterrupted[0])


def test_keyboard_interrupt_inside_a_step_keeps_the_last_checkpoint(tmp_path, monkeypatch,
                                                                    uninterrupted, capsys):
    calls = {"n": 0}
    forward = digits_cnn.DigitsCNN.forward

    def patched(self, x):
        calls["n"] += 1
        if calls["n"] == 20:  # raised as an exception: the step is left half done
            raise KeyboardInterrupt
        return forward(self, x)

    monkeypatch.setattr(digits_cnn.DigitsCNN, "forward", patched)
    with pytest.raises(KeyboardInterrupt):
        tiny_run(tmp_path, epochs=3, seed=5)
    assert "is kept" in capsys.readouterr().err
    ckpt = cr.load(tmp_path / "checkpoint.safetensors")
    assert (ckpt["epoch"], ckpt["batch"]) == (1, 0)  # the end of epoch 1, consistent
    monkeypatch.setattr(digits_cnn.DigitsCNN, "forward", forward)
    digits_cnn.run(out=tmp_path, resume=True, verbose=False)
    assert_same_weights(tmp_path, uninterrupted[0])


def test_second_ctrl_c_raises_at_once():
    before = signal.getsignal(signal.SIGINT)
    with _DeferredInterrupt() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    with pytest.raises(RunError, match="nothing to resume"):
        digits_cnn.run(out=tmp_path, resume=True)
    tiny_run(tmp_path, epochs=2, seed=1)
    with pytest.raises(RunError, match=r"seed=2 \(the checkpoint has 1\)"):
        digits_cnn.run(out=tmp_path, seed=2, resume=True)
    with pytest.raises(RunError, match="beyond --epochs 1"):
        digits_cnn.run(out=tmp_path, epochs=1, resume=True, verbose=False)
    from chainrule.examples import digits_mlp
    with pytest.raises(RunError, match="checkpoint of 'digits-cnn'"):
        digits_mlp.run(out=tmp_path, resume=True)


def test_resume_of_a_finished_run_trains_nothing(tmp_path):
    first = tiny_run(tmp_path, epochs=1)
    again = digits_cnn.run(out=tmp_path, resume=True, verbose=False)
    assert again["history"] == first["history"]  # seconds included: nothing was rerun


def test_a_fresh_run_starts_over_in_an_old_folder(tmp_path):
    tiny_run(tmp_path, epochs=2)
    result = tiny_run(tmp_path, epochs=1)
    assert [row["epoch"] for row in result["history"]] == [1]
    assert cr.load(tmp_path / "checkpoint.safetensors")["epoch"] == 1


def _strip_times(text: str) -> str:
    return re.sub(r"\d+\.\d s", "T s", text)


def test_output_is_deterministic_under_a_seed(tmp_path, capsys):
    runs = []
    for name in ("a", "b", "c"):
        result = tiny_run(tmp_path / name, epochs=2, seed=0 if name != "c" else 1,
                          verbose=True, progress=False)
        out = capsys.readouterr().out.replace(str(tmp_path / name), "DIR")
        runs.append((without_time(result["history"]), _strip_times(out)))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]


def test_header_epochs_and_result_line(tmp_path, capsys):
    result = tiny_run(tmp_path, epochs=2, verbose=True, progress=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("digits-cnn:")
    assert f"{result['parameters']:,} parameters" in lines[1]
    assert "1,437 train / 360 test" in lines[2]
    assert lines[-1] == f"test accuracy: {result['test_acc']:.1%}"
    assert sum(line.startswith("epoch ") for line in lines) == 2


def test_progress_bar_shows_loss_accuracy_and_samples_per_second(tmp_path, capsys):
    pytest.importorskip("tqdm")
    tiny_run(tmp_path, epochs=1, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "acc=" in err and "samples/s=" in err
