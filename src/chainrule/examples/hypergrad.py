"""Learning the learning rate by gradient descent through the training run itself.

The inner problem is softmax regression on the digits (64 standardized pixels, ten
classes), trained from zero weights by ``steps`` full-batch SGD steps. Those steps are
written with the pure update rule ``chainrule.optim.functional.sgd`` and gradients taken
by ``chainrule.autograd.grad(..., create_graph=True)``, so the weights after the last
step are a differentiable function of the learning rate. The validation loss of those
weights is the outer objective: its gradient with respect to ``log(lr)`` (a
hypergradient, through every unrolled step) drives Adam on ``log(lr)``, one outer step
per epoch. The run prints the learning rate and the validation loss after each outer
step: the rate climbs from a too-cautious start and the loss falls; if the rate
overshoots, the hypergradient turns and pulls it back.

In the metrics, ``train_loss`` is the outer objective at the rate the epoch started
with, and ``lr``, ``val_loss``, ``test_loss``, ``test_acc`` are measured after its step.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

from .. import nn
from ..autodiff.backward import grad
from ..backend import float64
from ..core.dispatch import no_grad
from ..core.tensor import Tensor
from ..data.datasets import load_digits, standardize, stratified_split
from ..nn import functional as F
from ..ops.creation import tensor, zeros
from ..ops.elementwise import exp
from ..optim import Adam
from ..optim import functional as optim_f
from .runner import RUN_FILES, Progress, Run, Task

NAME = "hypergrad"
DESCRIPTION = "learns the learning rate by differentiating through unrolled SGD steps"
DEFAULTS: dict[str, Any] = {"epochs": 50, "lr": 0.01, "seed": 0, "steps": 20,
                            "meta_lr": 0.2, "val_size": 0.25, "test_size": 0.25}


class UnrolledSGD(nn.Module):
    """``steps`` steps of full-batch SGD on softmax regression, from zero weights, as a
    function of the one parameter ``log_lr``."""

    def __init__(self, features: int, classes: int, steps: int, lr: float):
        super().__init__()
        self.features, self.classes, self.steps = features, classes, steps
        self.log_lr = nn.Parameter(tensor(math.log(lr), dtype=float64))  # ()

    @property
    def lr(self) -> float:
        """The current learning rate, ``exp(log_lr)``."""
        return math.exp(self.log_lr.item())

    def forward(self, x: Tensor, y: Tensor, create_graph: bool = True) -> list[Tensor]:
        """Train on ``(x, y)`` and return the final ``[weight, bias]``. With
        ``create_graph`` they keep their dependence on ``log_lr`` (and every step)."""
        lr = exp(self.log_lr) if create_graph else self.lr
        params = [zeros(self.features, self.classes, dtype=float64, requires_grad=True),
                  zeros(self.classes, dtype=float64, requires_grad=True)]  # (D, K), (K,)
        buffers = [None, None]
        for _ in range(self.steps):
            loss = cross_entropy(params, x, y)
            grads = grad(loss, params, create_graph=create_graph)
            params, buffers = optim_f.sgd(params, grads, buffers, lr=lr)
        return params


def cross_entropy(params: list[Tensor], x: Tensor, y: Tensor) -> Tensor:
    """Mean softmax cross-entropy of the linear classifier ``x @ w + b``."""
    w, b = params
    return F.cross_entropy(x @ w + b, y)  # logits (N, K)


def accuracy(params: list[Tensor], x: Tensor, y: Tensor) -> float:
    """Fraction of ``x`` whose highest logit is the label."""
    w, b = params
    return ((x @ w + b).argmax(1) == y).sum().item() / len(y)


def run(epochs: int | None = None, lr: float | None = None, seed: int | None = None, *,
        out: str | os.PathLike | None = None, resume: bool = False, verbose: bool = True,
        progress: bool | None = None, steps: int | None = None,
        on_batch_end: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Learn SGD's learning rate (starting from ``lr``) with ``epochs`` outer steps, each
    differentiating the validation loss through ``steps`` unrolled SGD steps; write the
    run folder (default ``runs/hypergrad``). Returns the final metrics (``lr``,
    ``val_loss``, ``test_loss``, ``test_acc``), ``initial_val_loss``, the ``history`` and
    ``seconds``. The last line printed is ``learned lr: ... (validation loss A -> B)``.
    """
    start = time.perf_counter()
    session = Run(NAME, out, resume=resume, verbose=verbose, progress=progress)
    cfg = session.settings(DEFAULTS, epochs=epochs, lr=lr, seed=seed, steps=steps)
    x, y = load_digits(return_X_y=True)
    x_rest, x_test, y_rest, y_test = stratified_split(x, y, cfg["test_size"], seed=cfg["seed"])
    x_train, x_val, y_train, y_val = stratified_split(
        x_rest, y_rest, cfg["val_size"] / (1 - cfg["test_size"]), seed=cfg["seed"])
    x_train, x_val, x_test = (t.to(float64) for t in standardize(x_train, x_val, x_test))

    model = UnrolledSGD(x_train.shape[1], 10, cfg["steps"], cfg["lr"])
    optimizer = Adam(model.parameters(), lr=cfg["meta_lr"])

    def step(_batch) -> tuple[Tensor, int, dict[str, float]]:
        params = model(x_train, y_train)          # [(D, K), (K,)], functions of log_lr
        val = cross_entropy(params, x_val, y_val)  # the hyper-objective
        return val, 1, {"loss": val.item()}

    def evaluate() -> dict[str, float]:
        params = model(x_train, y_train, create_graph=False)
        with no_grad():
            return {"lr": model.lr, "val_loss": cross_entropy(params, x_val, y_val).item(),
                    "test_loss": cross_entropy(params, x_test, y_test).item(),
                    "test_acc": accuracy(params, x_test, y_test)}

    session.header(f"{NAME}: {DESCRIPTION}", [
        ("inner", f"softmax regression on the digits, {cfg['steps']} full-batch SGD steps "
                  f"from zero weights (optim.functional.sgd)"),
        ("data", f"{len(y_train)} train / {len(y_val)} validation / {len(y_test)} test "
                 f"samples, stratified (seed {cfg['seed']}), float64"),
        ("outer", f"{cfg['epochs']} Adam steps (lr {cfg['meta_lr']:g}) on log(lr), from lr "
                  f"{cfg['lr']:g}; gradient through all {cfg['steps']} steps"),
        ("run folder", str(session.folder)),
    ])
    task = Task(model=model, optimizer=optimizer, step=step, evaluate=evaluate,
                batches_per_epoch=1)
    history = session.train(task, cfg["epochs"], on_batch_end)
    final, initial = history[-1], history[0]["train_loss"]  # the loss at the first lr
    seconds = time.perf_counter() - start
    every = max(1, len(history) // 6)
    marks = [history[i] for i in range(0, len(history), every)]
    if marks[-1] is not final:
        marks.append(final)
    session.say(f"wrote {', '.join(RUN_FILES)} to {session.folder}; {seconds:.1f} s in all",
                "lr trajectory:       " + " -> ".join(f"{r['lr']:.3g}" for r in marks),
                "validation loss:     " + " -> ".join(f"{r['val_loss']:.3f}" for r in marks),
                f"test accuracy after {cfg['steps']} steps at the learned lr: "
                f"{final['test_acc']:.1%}")
    session.result(f"learned lr: {final['lr']:.3g} (validation loss after {cfg['steps']} "
                   f"steps: {initial:.3f} at lr {cfg['lr']:g} -> {final['val_loss']:.3f})")
    return {**final, "initial_val_loss": initial, "history": history, "seconds": seconds}
