"""Matrix factorization for recommendations, on synthetic ratings with a known answer.

The data: ``users x items`` ratings ``mu + b_u + b_i + <p_u, q_i> + noise`` from random
low-rank factors (seeded), of which a random ``density`` share is observed; a random
fifth of those is held out. The model learns a vector and a bias for every user and
every item (``nn.Embedding`` tables) and a global offset, and predicts
``mu + b_u + b_i + <p_u, q_i>``. Adam minimizes the squared error plus an L2 penalty on
the looked-up vectors. The held-out RMSE must beat predicting the global mean (the
baseline) and approach the noise level (the best any model can do).
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

import numpy as np

from .. import nn
from ..core.dispatch import no_grad
from ..core.tensor import Tensor
from ..data import DataLoader, TensorDataset
from ..ops.creation import Generator, manual_seed
from ..optim import Adam
from .runner import RUN_FILES, Progress, Run, Task, count_parameters

NAME = "recommender"
DESCRIPTION = "matrix factorization with user/item embeddings and biases on synthetic ratings"
DEFAULTS: dict[str, Any] = {
    "epochs": 12, "lr": 0.02, "seed": 0, "batch_size": 512, "dim": 8, "l2": 0.02,
    "users": 800, "items": 500, "rank": 4, "density": 0.1, "noise": 0.3, "test_size": 0.2,
}


def synthetic_ratings(users: int, items: int, rank: int, density: float, noise: float,
                      seed: int) -> dict[str, np.ndarray]:
    """Observed (user, item, rating) triples of a random low-rank model, shuffled.

    Ratings are ``3.5 + b_u + b_i + <p_u, q_i> + noise * N(0, 1)`` with biases of
    standard deviation 0.4 and factors scaled so that ``<p_u, q_i>`` has standard
    deviation 0.8. Each pair is observed with probability ``density``.
    """
    rng = Generator(seed).rng
    p = rng.normal(0, math.sqrt(0.8 / math.sqrt(rank)), (users, rank))
    q = rng.normal(0, math.sqrt(0.8 / math.sqrt(rank)), (items, rank))
    b_user, b_item = rng.normal(0, 0.4, users), rng.normal(0, 0.4, items)
    u, i = np.nonzero(rng.random((users, items)) < density)
    order = rng.permutation(len(u))
    u, i = u[order], i[order]
    r = 3.5 + b_user[u] + b_item[i] + np.einsum("nk,nk->n", p[u], q[i])
    r = r + noise * rng.normal(0, 1, len(u))
    return {"user": u.astype(np.int64), "item": i.astype(np.int64),
            "rating": r.astype(np.float32)}


class MatrixFactorization(nn.Module):
    """``rating(u, i) = mu + b_u + b_i + <p_u, q_i>`` with embedding tables."""

    def __init__(self, users: int, items: int, dim: int, mean: float = 0.0):
        super().__init__()
        self.user = nn.Embedding(users, dim)        # p_u: (users, dim)
        self.item = nn.Embedding(items, dim)        # q_i: (items, dim)
        self.user_bias = nn.Embedding(users, 1)     # b_u: (users, 1)
        self.item_bias = nn.Embedding(items, 1)     # b_i: (items, 1)
        self.mean = nn.Parameter(Tensor(np.full((), mean, dtype=np.float32)))
        with no_grad():  # small factors, zero biases: training starts at the global mean
            for table in (self.user, self.item):
                nn.init.normal_(table.weight, std=0.1)
            for table in (self.user_bias, self.item_bias):
                nn.init.zeros_(table.weight)

    def forward(self, user: Tensor, item: Tensor) -> tuple[Tensor, Tensor]:
        """Predicted ratings (B,) and the L2 penalty term: the mean squared norm of the
        looked-up vectors."""
        p, q = self.user(user), self.item(item)                      # (B, dim) each
        bias = self.user_bias(user)[:, 0] + self.item_bias(item)[:, 0]  # (B,)
        rating = self.mean + bias + (p * q).sum(-1)                  # (B,)
        penalty = ((p * p).sum(-1) + (q * q).sum(-1)).mean()         # ()
        return rating, penalty


def run(epochs: int | None = None, lr: float | None = None, seed: int | None = None, *,
        out: str | os.PathLike | None = None, resume: bool = False, verbose: bool = True,
        progress: bool | None = None, users: int | None = None, items: int | None = None,
        batch_size: int | None = None,
        on_batch_end: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Train the factorization and write the run folder (default ``runs/recommender``);
    return the final metrics (``test_rmse``, ``baseline_rmse``, ``noise``, ...), the
    ``history``, ``parameters`` and ``seconds``. The last line printed is
    ``test RMSE: ... (global-mean baseline ...)``.
    """
    start = time.perf_counter()
    session = Run(NAME, out, resume=resume, verbose=verbose, progress=progress)
    cfg = session.settings(DEFAULTS, epochs=epochs, lr=lr, seed=seed, users=users, items=items,
                           batch_size=batch_size)
    data = synthetic_ratings(cfg["users"], cfg["items"], cfg["rank"], cfg["density"],
                             cfg["noise"], cfg["seed"])
    n_test = math.ceil(cfg["test_size"] * len(data["rating"]))
    test = {k: Tensor(v[:n_test]) for k, v in data.items()}
    train = {k: Tensor(v[n_test:]) for k, v in data.items()}
    mean = float(train["rating"].data.mean())
    baseline = float(np.sqrt(np.mean((test["rating"].data - mean) ** 2)))

    manual_seed(cfg["seed"])
    model = MatrixFactorization(cfg["users"], cfg["items"], cfg["dim"], mean)
    optimizer = Adam(model.parameters(), lr=cfg["lr"])
    loader = DataLoader(TensorDataset(train["user"], train["item"], train["rating"]),
                        batch_size=cfg["batch_size"], shuffle=True)

    def step(batch) -> tuple[Tensor, int, dict[str, float]]:
        user, item, rating = batch
        pred, penalty = model(user, item)           # (B,), ()
        mse = ((pred - rating) ** 2).mean()
        n = len(rating)
        return mse + cfg["l2"] * penalty, n, {"loss": mse.item() * n}

    def evaluate() -> dict[str, float]:
        with no_grad():
            pred, _ = model(test["user"], test["item"])
            mse = ((pred - test["rating"]) ** 2).mean().item()
        return {"test_loss": mse, "test_rmse": math.sqrt(mse), "baseline_rmse": baseline}

    n_params = count_parameters(model)
    session.header(f"{NAME}: {DESCRIPTION}", [
        ("model", f"MatrixFactorization(dim {cfg['dim']}), {n_params:,} parameters"),
        ("data", f"{len(data['rating']):,} ratings of {cfg['users']} users x {cfg['items']} "
                 f"items (rank {cfg['rank']}, noise {cfg['noise']}, seed {cfg['seed']}): "
                 f"{len(train['rating']):,} train / {n_test:,} test"),
        ("training", f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, Adam lr "
                     f"{cfg['lr']:g}, L2 {cfg['l2']:g} on the looked-up vectors"),
        ("run folder", str(session.folder)),
    ])
    task = Task(model=model, optimizer=optimizer, step=step, evaluate=evaluate, loader=loader)
    history = session.train(task, cfg["epochs"], on_batch_end)
    final = history[-1]
    seconds = time.perf_counter() - start
    session.say(f"wrote {', '.join(RUN_FILES)} to {session.folder}",
                f"noise level (the best possible RMSE): {cfg['noise']:.3f}; {seconds:.1f} s "
                f"in all")
    session.result(f"test RMSE: {final['test_rmse']:.3f} (global-mean baseline "
                   f"{baseline:.3f})")
    return {**final, "noise": cfg["noise"], "history": history, "parameters": n_params,
            "seconds": seconds}
