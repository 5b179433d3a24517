"""A small convolutional network on scikit-learn's 8x8 handwritten digits.

Two blocks of 3x3 convolution, batch normalization, ReLU and 2x2 max pooling take the
(1, 8, 8) image to (64, 2, 2) features, and one linear layer maps them to the ten
classes. Adam with an exponentially decaying rate reaches about 98-99% held-out accuracy
in ten epochs, without augmentation. The run folder, resume and Ctrl-C behaviour come
from ``chainrule.examples.runner``.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from .. import nn
from ..core.tensor import Tensor
from ..ops.creation import manual_seed
from .runner import Progress, Run, train_digits

NAME = "digits-cnn"
DEFAULTS: dict[str, Any] = {"epochs": 10, "lr": 3e-3, "seed": 0, "batch_size": 64,
                            "gamma": 0.7, "label_smoothing": 0.1, "channels": (32, 64),
                            "test_size": 0.2}


class DigitsCNN(nn.Module):
    """conv3x3-bn-relu-pool twice, then a linear classifier: (B, 1, 8, 8) -> (B, 10)."""

    def __init__(self, channels: tuple[int, int] = (32, 64), classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.MaxPool2d(2),                                    # (B, c1, 4, 4)
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.MaxPool2d(2),                                    # (B, c2, 2, 2)
        )
        self.classifier = nn.Linear(c2 * 2 * 2, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)                # (B, c2, 2, 2)
        return self.classifier(h.flatten(1))  # (B, classes)


def run(epochs: int | None = None, lr: float | None = None, seed: int | None = None, *,
        out: str | os.PathLike | None = None, resume: bool = False, verbose: bool = True,
        progress: bool | None = None, batch_size: int | None = None,
        channels: tuple[int, int] | None = None,
        on_batch_end: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Train the CNN and write the run folder (default ``runs/digits-cnn``); return the
    final metrics (``test_acc``, ``test_loss``, ``train_acc``, ``train_loss``), the
    per-epoch ``history``, ``parameters`` and ``seconds``.

    Options left as None take the defaults (``DEFAULTS``), or, with ``resume=True``,
    the values the checkpoint was made with; ``epochs`` may then be raised to train
    further. The last line printed is ``test accuracy: XX.X%``.
    """
    session = Run(NAME, out, resume=resume, verbose=verbose, progress=progress)
    settings = session.settings(DEFAULTS, epochs=epochs, lr=lr, seed=seed,
                                batch_size=batch_size,
                                channels=None if channels is None else tuple(channels))
    manual_seed(settings["seed"])
    model = DigitsCNN(tuple(settings["channels"]))
    return train_digits(session, settings, model, images=True,
                        describe="a small CNN on the 8x8 digits", on_batch_end=on_batch_end)
