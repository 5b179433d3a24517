"""A multilayer perceptron on scikit-learn's 8x8 handwritten digits, flattened to 64
pixel values: two hidden ReLU layers with dropout, trained with Adam and label
smoothing. It reaches about 97-98% held-out accuracy in a few seconds; compare
``digits-cnn``, which sees the pixels as an image. The run folder, resume and Ctrl-C
behaviour come from ``chainrule.examples.runner``.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from .. import nn
from ..core.tensor import Tensor
from ..ops.creation import manual_seed
from .runner import Progress, Run, train_digits

NAME = "digits-mlp"
DEFAULTS: dict[str, Any] = {"epochs": 20, "lr": 3e-3, "seed": 0, "batch_size": 32,
                            "gamma": 0.85, "label_smoothing": 0.1, "hidden": (256, 128),
                            "dropout": 0.1, "test_size": 0.2}


class DigitsMLP(nn.Module):
    """(B, 64) -> Linear-ReLU-Dropout twice -> Linear -> (B, 10) logits."""

    def __init__(self, hidden: tuple[int, ...] = (256, 128), dropout: float = 0.1,
                 features: int = 64, classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        width = features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]  # (B, h)
            width = h
        layers.append(nn.Linear(width, classes))                            # (B, classes)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, 64) -> (B, classes)


def run(epochs: int | None = None, lr: float | None = None, seed: int | None = None, *,
        out: str | os.PathLike | None = None, resume: bool = False, verbose: bool = True,
        progress: bool | None = None, batch_size: int | None = None,
        hidden: tuple[int, ...] | None = None,
        on_batch_end: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Train the MLP and write the run folder (default ``runs/digits-mlp``); return the
    final metrics, the per-epoch ``history``, ``parameters`` and ``seconds``.

    Options left as None take the defaults (``DEFAULTS``), or, with ``resume=True``,
    the checkpoint's values. The last line printed is ``test accuracy: XX.X%``.
    """
    session = Run(NAME, out, resume=resume, verbose=verbose, progress=progress)
    settings = session.settings(DEFAULTS, epochs=epochs, lr=lr, seed=seed,
                                batch_size=batch_size,
                                hidden=None if hidden is None else tuple(hidden))
    manual_seed(settings["seed"])
    model = DigitsMLP(tuple(settings["hidden"]), settings["dropout"])
    return train_digits(session, settings, model, images=False,
                        describe="an MLP on the flattened 8x8 digits",
                        on_batch_end=on_batch_end)
