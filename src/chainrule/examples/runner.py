"""What the example training runs share: the run folder, the training loop with its
progress bar, metrics, plots, the autograd graph, checkpoints, exact resume and Ctrl-C.

A run lives in a folder (``runs/<name>/`` unless ``out`` says otherwise)::

    model.safetensors       the trained weights, a state dict (``chainrule.load``)
    checkpoint.safetensors  all a run needs to continue: model, optimizer, scheduler,
                            data-loader position, RNG states, epoch, metrics so far
    metrics.csv             one row per epoch: epoch, train metrics, test metrics, seconds
    metrics.png             the loss and metric curves
    graph.svg, graph.dot    the autograd graph of the first training loss

An example builds a ``Task`` (model, optimizer, data, the loss of one batch, an
evaluation) and hands it to ``Run.train``. Checkpoints are written at the end of every
epoch. ``Run(..., resume=True)`` restores the latest one, and the run then goes on
exactly as if it had never stopped: the weights after resuming are bitwise those of an
uninterrupted run (the schedules depend on the epoch or step count only, never on the
planned total, so a run of K epochs resumed to N ends where a run of N epochs does).

Ctrl-C during training does not stop a step half done: the first one asks the loop to
stop after the current batch, which then writes a checkpoint of that point (mid-epoch)
and raises ``KeyboardInterrupt``; a second Ctrl-C stops at once. A ``KeyboardInterrupt``
raised from the ``on_batch_end`` callback is handled the same way.
"""
from __future__ import annotations

import csv
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..core.dispatch import no_grad
from ..core.tensor import Tensor
from ..io import load, save
from ..nn.module import Module
from ..nn.utils import clip_grad_norm_
from ..ops.composite import cross_entropy
from ..ops.creation import default_generator
from ..ops.reduce import argmax

EXTRA = "pip install 'chainrule[examples]'"
MODEL, CHECKPOINT, METRICS, PLOT = ("model.safetensors", "checkpoint.safetensors",
                                    "metrics.csv", "metrics.png")
GRAPH_SVG, GRAPH_DOT = "graph.svg", "graph.dot"
RUN_FILES = (MODEL, CHECKPOINT, METRICS, PLOT, GRAPH_SVG, GRAPH_DOT)


class RunError(Exception):
    """A run cannot go on as asked (nothing to resume, options that contradict the
    checkpoint). The CLI prints the message without a traceback."""


@dataclass
class Task:
    """What an example hands to ``Run.train``.

    ``step(batch)`` computes one training batch's loss and returns ``(loss, count,
    sums)``: the loss to minimize, the number of samples (or tokens) in the batch and
    a dict of metric sums over them (``{"loss": mean_loss * count, "acc": n_correct}``);
    the epoch's ``train_<name>`` is the sum over the epoch divided by the count.
    ``evaluate()`` returns held-out metrics (``{"test_loss": ..., "test_acc": ...}``); the
    model is in eval mode then, and ``evaluate`` picks its own grad mode.

    Each epoch takes ``batches_per_epoch`` batches (default: one pass over ``loader``)
    from an endless stream over ``loader`` (or ``None`` batches when ``loader`` is None).
    ``scheduler`` steps after every epoch, or after every batch with
    ``schedule_per_batch``. Randomness during training (initialization aside) must come
    from the default generator or the loader's: their states go into the checkpoint.
    """

    model: Module
    optimizer: Any
    step: Callable[[Any], tuple[Tensor, int, dict[str, float]]]
    evaluate: Callable[[], dict[str, float]]
    loader: Any = None
    scheduler: Any = None
    schedule_per_batch: bool = False
    batches_per_epoch: int | None = None
    max_grad_norm: float | None = None

    def epoch_length(self) -> int:
        """The number of batches in one epoch."""
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        if self.loader is None:
            raise ValueError("Task: batches_per_epoch is needed when there is no loader")
        return len(self.loader)


@dataclass
class Progress:
    """Where the run stands; ``on_batch_end`` callbacks receive it."""

    epoch: int = 0       # epochs completed
    batch: int = 0       # batches completed in the current epoch
    step: int = 0        # batches completed in the whole run
    count: int = 0       # samples seen in the current epoch
    sums: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # time spent in the current epoch so far
    history: list[dict[str, float]] = field(default_factory=list)


def count_parameters(model: Module) -> int:
    """The number of scalars in the model's parameters."""
    return sum(p.numel() for p in model.parameters())


def format_metric(name: str, value: float) -> str:
    """Accuracies as percentages, everything else with four decimals."""
    return f"{value:.1%}" if name.endswith("acc") else f"{value:.4f}"


def _stream(loader) -> Iterator:
    """Batches without end: one pass over ``loader`` after another."""
    if loader is None:
        while True:
            yield None
    while True:
        yield from loader


class _DeferredInterrupt:
    """While active (in the main thread), the first Ctrl-C sets ``requested`` instead of
    raising, so training stops between two batches; a second one raises at once."""

    def __enter__(self) -> "_DeferredInterrupt":
        self.requested = False
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this batch (press again to stop at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


class Run:
    """One training run and its folder (see the module docstring).

    ``resume=True`` loads ``checkpoint.safetensors`` from the folder at once, so that
    ``settings`` can give back the settings the run was started with. ``verbose``
    prints the header and a line per epoch; ``progress`` shows a tqdm bar per epoch
    (default: as ``verbose``). The final result lines (``result``) always print.
    """

    def __init__(self, name: str, out: str | os.PathLike | None = None, *,
                 resume: bool = False, verbose: bool = True, progress: bool | None = None):
        self.name = name
        self.folder = Path(out) if out is not None else Path("runs") / name
        self.verbose = verbose
        self.progress = verbose if progress is None else progress
        self.saved: dict[str, Any] | None = None
        self._settings: dict[str, Any] = {}
        self.state = Progress()
        self._consistent = True
        self._epoch_start = 0.0
        if resume:
            path = self.folder / CHECKPOINT
            if not path.is_file():
                raise RunError(f"{name}: nothing to resume, {path} does not exist; start the "
                               f"run without --resume first")
            self.saved = load(path)
            if not isinstance(self.saved, dict) or self.saved.get("run") != name:
                found = self.saved.get("run") if isinstance(self.saved, dict) else None
                raise RunError(f"{name}: {path} is a checkpoint of {found!r}, not of {name!r}")

    # ------------------------------------------------------------ settings and output
    def settings(self, defaults: dict[str, Any], **given: Any) -> dict[str, Any]:
        """The run's settings: ``defaults`` with the options ``given`` (None means not
        given). A resumed run takes the checkpoint's settings instead; an option given
        with another value is an error, except ``epochs`` (a resumed run may go on
        longer than planned)."""
        chosen = {k: v for k, v in given.items() if v is not None}
        if self.saved is None:
            self._settings = {**defaults, **chosen}
            return dict(self._settings)
        saved = dict(self.saved["settings"])
        clashes = [f"{k}={v!r} (the checkpoint has {saved.get(k)!r})"
                   for k, v in chosen.items() if k != "epochs" and saved.get(k) != v]
        if clashes:
            raise RunError(f"{self.name}: cannot resume {self.folder} with "
                           f"{', '.join(clashes)}; leave these options out to continue the "
                           f"run as it was started")
        saved.update({k: v for k, v in chosen.items() if k == "epochs"})
        self._settings = saved
        return dict(saved)

    def say(self, *lines: str) -> None:
        """Print when verbose."""
        if self.verbose:
            for line in lines:
                print(line, flush=True)

    def header(self, title: str, rows: list[tuple[str, str]]) -> None:
        """Print the title and aligned ``label  value`` rows (when verbose)."""
        width = max(len(label) for label, _ in rows)
        self.say(title, *(f"  {label:<{width}}  {value}" for label, value in rows))

    @staticmethod
    def result(*lines: str) -> None:
        """Print the result lines: always, and last."""
        for line in lines:
            print(line, flush=True)

    # ------------------------------------------------------------ training
    def train(self, task: Task, epochs: int,
              on_batch_end: Callable[[Progress], None] | None = None) -> list[dict[str, float]]:
        """Train ``task`` until ``epochs`` epochs are complete, writing the run folder;
        return the metrics history (one dict per epoch)."""
        if self.saved is not None:
            self._restore(task)
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            for name in RUN_FILES:  # a fresh run leaves nothing of an older one behind
                (self.folder / name).unlink(missing_ok=True)
        st = self.state
        if st.epoch > epochs:
            raise RunError(f"{self.name}: the checkpoint in {self.folder} is at epoch "
                           f"{st.epoch}, beyond --epochs {epochs}")
        if self.saved is not None:
            self.say(f"resuming from {self.folder / CHECKPOINT}: epoch {st.epoch}, batch "
                     f"{st.batch} of {task.epoch_length()}")
        self._stream = _stream(task.loader)
        with _DeferredInterrupt() as stop:
            try:
                while st.epoch < epochs:
                    self._epoch(task, epochs, stop, on_batch_end)
            except KeyboardInterrupt:
                self._interrupted(task)
                raise
        self._plot()
        return st.history

    def _epoch(self, task: Task, epochs: int, stop: _DeferredInterrupt,
               on_batch_end: Callable[[Progress], None] | None) -> None:
        st, n = self.state, task.epoch_length()
        bar = self._bar(n, st.batch, f"epoch {st.epoch + 1}/{epochs}")
        self._epoch_start = time.perf_counter() - st.seconds
        task.model.train()
        try:
            while st.batch < n:
                self._consistent = False
                loss, count, sums = task.step(next(self._stream))
                if st.step == 0:
                    self._draw_graph(loss, task)
                task.optimizer.zero_grad()
                loss.backward()
                if task.max_grad_norm is not None:
                    clip_grad_norm_(task.model.parameters(), task.max_grad_norm)
                task.optimizer.step()
                if task.scheduler is not None and task.schedule_per_batch:
                    task.scheduler.step()
                st.count += count
                for key, value in sums.items():
                    st.sums[key] = st.sums.get(key, 0.0) + float(value)
                st.batch += 1
                st.step += 1
                self._consistent = True
                if bar is not None:
                    self._postfix(bar, st, last=st.batch == n)
                if on_batch_end is not None:
                    on_batch_end(st)
                if stop.requested:
                    raise KeyboardInterrupt
            task.model.eval()
            metrics = task.evaluate()
            self._consistent = False
            if task.scheduler is not None and not task.schedule_per_batch:
                task.scheduler.step()
            row = {"epoch": st.epoch + 1,
                   **{f"train_{k}": v / max(st.count, 1) for k, v in st.sums.items()},
                   **{k: float(v) for k, v in metrics.items()},
                   "seconds": time.perf_counter() - self._epoch_start}
            st.history.append(row)
            st.epoch, st.batch, st.count, st.sums, st.seconds = st.epoch + 1, 0, 0, {}, 0.0
            self._consistent = True
        finally:
            if bar is not None:
                bar.close()
        self._save_epoch(task)
        self.say(f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  "
                 + "  ".join(f"{k.replace('_', ' ')} {format_metric(k, v)}"
                             for k, v in row.items() if k not in ("epoch", "seconds"))
                 + f"  ({row['seconds']:.1f} s)")
        if stop.requested:
            raise KeyboardInterrupt

    def _bar(self, total: int, initial: int, desc: str):
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError as exc:
            raise ImportError(f"the progress bar needs tqdm: {EXTRA} (or turn it off with "
                              f"--no-progress)") from exc
        return tqdm(total=total, initial=initial, desc=desc, unit="batch", leave=False,
                    file=sys.stderr, dynamic_ncols=True)

    def _postfix(self, bar, st: Progress, last: bool) -> None:
        """Running means and speed; the bar redraws at tqdm's pace, and always at the end
        of the epoch."""
        elapsed = time.perf_counter() - self._epoch_start
        seen = {k: format_metric(k, v / max(st.count, 1)) for k, v in st.sums.items()}
        seen["samples/s"] = f"{st.count / max(elapsed, 1e-9):.0f}"
        bar.set_postfix(seen, refresh=False)
        bar.update(1)
        if last:
            bar.refresh()

    # ------------------------------------------------------------ files
    def _draw_graph(self, loss: Tensor, task: Task) -> None:
        from .. import viz
        params = dict(task.model.named_parameters())
        viz.render(loss, self.folder / GRAPH_SVG, params=params)
        viz.render(loss, self.folder / GRAPH_DOT, params=params)

    def _checkpoint(self, task: Task) -> dict[str, Any]:
        st = self.state
        return {
            "run": self.name, "settings": self._settings,
            "epoch": st.epoch, "batch": st.batch, "step": st.step,
            "partial": {"count": st.count, "sums": dict(st.sums), "seconds": st.seconds},
            "history": st.history,
            "model": task.model.state_dict(),
            "optimizer": task.optimizer.state_dict(),
            "scheduler": None if task.scheduler is None else task.scheduler.state_dict(),
            "loader": None if task.loader is None else task.loader.state_dict(),
            "rng": default_generator.get_state(),
        }

    def _restore(self, task: Task) -> None:
        saved = self.saved
        task.model.load_state_dict(saved["model"])
        task.optimizer.load_state_dict(saved["optimizer"])
        if task.scheduler is not None:
            task.scheduler.load_state_dict(saved["scheduler"])
        if task.loader is not None:
            task.loader.load_state_dict(saved["loader"])
        default_generator.set_state(saved["rng"])
        partial = saved["partial"]
        self.state = Progress(epoch=saved["epoch"], batch=saved["batch"], step=saved["step"],
                              count=partial["count"], sums=dict(partial["sums"]),
                              seconds=partial["seconds"], history=list(saved["history"]))

    def _save_epoch(self, task: Task) -> None:
        save(self._checkpoint(task), self.folder / CHECKPOINT)
        save(task.model.state_dict(), self.folder / MODEL)
        self._write_csv()

    def _interrupted(self, task: Task) -> None:
        st, path = self.state, self.folder / CHECKPOINT
        if self._consistent:
            st.seconds = time.perf_counter() - self._epoch_start if st.batch else 0.0
            save(self._checkpoint(task), path)
            self._plot()
            print(f"\ninterrupted at epoch {st.epoch + 1}, batch {st.batch}: checkpoint "
                  f"saved to {path}; continue with --resume", file=sys.stderr, flush=True)
        elif path.is_file():
            print(f"\ninterrupted inside a training step: the checkpoint in {path} (the "
                  f"last one written) is kept; continue from it with --resume",
                  file=sys.stderr, flush=True)
        else:
            print("\ninterrupted inside the first epoch's training step: no checkpoint "
                  "written yet", file=sys.stderr, flush=True)

    def _write_csv(self) -> None:
        history = self.state.history
        if not history:
            return
        path, tmp = self.folder / METRICS, self.folder / (METRICS + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        os.replace(tmp, path)

    def _plot(self) -> None:
        if self.state.history:
            plot_history(self.state.history, self.folder / PLOT, self.name)


def plot_history(history: list[dict[str, float]], path: str | os.PathLike, title: str) -> None:
    """Draw the metrics per epoch to a PNG: one panel for the losses, then one per kind
    of metric (the name's last word: ``acc`` in percent, ``rmse``, ``lr``). Uses
    matplotlib's Agg canvas directly, so no GUI backend is touched."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"the metrics plot needs matplotlib: {EXTRA}") from exc
    epochs = [row["epoch"] for row in history]
    names = [k for k in history[0] if k not in ("epoch", "seconds")]
    panels: dict[str, list[str]] = {"loss": [k for k in names if "loss" in k]}
    for key in names:
        if "loss" not in key:
            panels.setdefault(key.rsplit("_", 1)[-1], []).append(key)
    panels = {kind: keys for kind, keys in panels.items() if keys}
    fig = Figure(figsize=(1 + 4.5 * len(panels), 4), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (kind, keys) in zip(fig.subplots(1, len(panels), squeeze=False)[0],
                                panels.items()):
        scale = 100 if kind == "acc" else 1
        for key in keys:
            ax.plot(epochs, [row[key] * scale for row in history], marker="o", markersize=3,
                    label=key.replace("_", " "))
        values = [row[k] for row in history for k in keys]
        if kind in ("loss", "lr") and all(math.isfinite(v) and v > 0 for v in values):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("%" if kind == "acc" else kind)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.savefig(os.fspath(path), dpi=100)


# ---------------------------------------------------------------- classifiers


def classification_step(model: Module, label_smoothing: float = 0.0
                        ) -> Callable[[Any], tuple[Tensor, int, dict[str, float]]]:
    """``Task.step`` for a classifier: the cross-entropy of ``model(x)`` against ``y``
    (with ``label_smoothing``, as PyTorch's) to minimize; as sums, the plain
    cross-entropy and the number of correct predictions."""
    def step(batch) -> tuple[Tensor, int, dict[str, float]]:
        x, y = batch
        logits = model(x)  # (B, classes)
        loss = cross_entropy(logits, y, label_smoothing=label_smoothing)
        plain = loss if label_smoothing == 0 else cross_entropy(logits.detach(), y)
        n = len(y)
        correct = (argmax(logits, 1) == y).sum().item()
        return loss, n, {"loss": plain.item() * n, "acc": correct}
    return step


def classification_eval(model: Module, x: Tensor, y: Tensor) -> Callable[[], dict[str, float]]:
    """``Task.evaluate`` for a classifier: mean cross-entropy and accuracy on ``(x, y)``
    in one batch, without recording."""
    def evaluate() -> dict[str, float]:
        with no_grad():
            logits = model(x)  # (N, classes)
            loss = cross_entropy(logits, y).item()
            acc = (argmax(logits, 1) == y).sum().item() / len(y)
        return {"test_loss": loss, "test_acc": acc}
    return evaluate


def train_digits(run: Run, settings: dict[str, Any], model: Module, *, images: bool,
                 describe: str, on_batch_end: Callable[[Progress], None] | None = None
                 ) -> dict[str, Any]:
    """Train a classifier on the digits: a stratified split (``settings["seed"]``,
    ``["test_size"]``), Adam (``["lr"]``) with the rate multiplied by ``["gamma"]`` after
    every epoch, shuffled batches of ``["batch_size"]``, cross-entropy with
    ``["label_smoothing"]`` (the reported train loss is the plain one). Prints the
    header, the epochs and, last, ``test accuracy: XX.X%``; returns the final metrics and
    the history.

    Call ``manual_seed(settings["seed"])`` before building ``model``: the loader's
    shuffling generator is seeded from the default generator here, after it.
    """
    from ..data import DataLoader, TensorDataset
    from ..data.datasets import load_digits, stratified_split
    from ..optim import Adam
    from ..optim.lr_scheduler import ExponentialLR

    start = time.perf_counter()
    x, y = load_digits(images=images, return_X_y=True)
    x_train, x_test, y_train, y_test = stratified_split(x, y, settings["test_size"],
                                                        seed=settings["seed"])
    optimizer = Adam(model.parameters(), lr=settings["lr"])
    scheduler = ExponentialLR(optimizer, gamma=settings["gamma"])
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=settings["batch_size"],
                        shuffle=True)
    n_params = count_parameters(model)
    shape = "x".join(map(str, x_train.shape[1:]))
    run.header(f"{run.name}: {describe}", [
        ("model", f"{type(model).__name__}, {n_params:,} parameters"),
        ("data", f"scikit-learn digits: {len(y_train):,} train / {len(y_test):,} test "
                 f"samples of {shape}, stratified split (seed {settings['seed']})"),
        ("training", f"{settings['epochs']} epochs, batch {settings['batch_size']}, Adam lr "
                     f"{settings['lr']:g}, x{settings['gamma']:g} per epoch"
                     + (f", label smoothing {settings['label_smoothing']:g}"
                        if settings["label_smoothing"] else "")),
        ("run folder", str(run.folder)),
    ])
    smoothing = settings["label_smoothing"]
    task = Task(model=model, optimizer=optimizer, step=classification_step(model, smoothing),
                evaluate=classification_eval(model, x_test, y_test), loader=loader,
                scheduler=scheduler)
    history = run.train(task, settings["epochs"], on_batch_end)
    final = history[-1]
    seconds = time.perf_counter() - start
    run.say(f"wrote {', '.join(RUN_FILES)} to {run.folder}",
            f"train accuracy {final['train_acc']:.1%}, test loss {final['test_loss']:.4f}; "
            f"{seconds:.1f} s in all")
    run.result(f"test accuracy: {final['test_acc']:.1%}")
    return {**final, "history": history, "parameters": n_params, "seconds": seconds}
