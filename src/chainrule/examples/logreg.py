"""Logistic regression on scikit-learn's breast-cancer data: backpropagation done right.

The model is ``p(y=1 | x) = sigmoid(x @ w + b)``, trained by full-batch gradient
descent on the mean binary cross-entropy computed stably from the logits, plus an
L2 penalty ``(l2 / 2) * ||w||^2`` on the weights (not the bias).

Why the penalty: with all 30 standardized features the training split is linearly
separable, so the unregularized optimum is at infinity (the weights grow without
bound and any "comparison" depends on when one stops). With the penalty the
objective is strongly convex, its minimizer is unique, and scikit-learn's
``LogisticRegression(C=1 / (n_train * l2))`` minimizes exactly the same function
(its objective is ``C * sum(loss) + ||w||^2 / 2``, intercept unpenalized), so the
weights and probabilities of the two can be compared directly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

import chainrule as cr

DEFAULT_EPOCHS = 1500
DEFAULT_LR = 0.5
DEFAULT_SEED = 0
L2 = 1e-2  # weight decay on w; matched by sklearn's C = 1 / (n_train * L2)
TEST_SIZE = 0.2
N_LOGS = 5  # progress lines printed during training
DTYPE = cr.float64  # exact enough to compare with sklearn's lbfgs to ~1e-6


@dataclass(frozen=True)
class Split:
    """A standardized, stratified train/test split (NumPy arrays)."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]


def load_data(seed: int = DEFAULT_SEED, test_size: float = TEST_SIZE) -> Split:
    """Load the bundled dataset, split it (stratified, seeded) and standardize it.

    The mean and standard deviation come from the training split only, so no
    information about the test set leaks into training.
    """
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=test_size, stratify=data.target,
        random_state=seed)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    return Split((x_train - mean) / std, (x_test - mean) / std,
                 y_train.astype(np.float64), y_test.astype(np.float64),
                 tuple(data.feature_names))


def logits(x: cr.Tensor, w: cr.Tensor, b: cr.Tensor) -> cr.Tensor:
    """The linear score ``x @ w + b`` (the log-odds of class 1)."""
    return x @ w + b


def objective(z: cr.Tensor, y: cr.Tensor, w: cr.Tensor, l2: float) -> tuple[cr.Tensor, cr.Tensor]:
    """Return (mean BCE from logits, BCE + (l2 / 2) ||w||^2)."""
    bce = cr.binary_cross_entropy_with_logits(z, y, reduction="mean")
    return bce, bce + 0.5 * l2 * (w * w).sum()


def accuracy(z: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose predicted class (logit > 0) equals the label."""
    return float(np.mean((z > 0) == (y > 0.5)))


def fit(split: Split, epochs: int, lr: float, seed: int, l2: float = L2,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train by full-batch gradient descent; return the parameters and loss history."""
    gen = cr.Generator(seed)
    x, y = cr.tensor(split.x_train, dtype=DTYPE), cr.tensor(split.y_train, dtype=DTYPE)
    x_test = cr.tensor(split.x_test, dtype=DTYPE)
    w = (0.01 * cr.randn(x.shape[1], generator=gen, dtype=DTYPE)).requires_grad_()
    b = cr.zeros((), dtype=DTYPE, requires_grad=True)
    every = max(1, epochs // N_LOGS)
    history: list[float] = []
    for epoch in range(epochs + 1):
        z = logits(x, w, b)
        bce, loss = objective(z, y, w, l2)
        history.append(loss.item())
        if log is not None and (epoch % every == 0 or epoch == epochs):
            with cr.no_grad():
                z_test = logits(x_test, w, b).numpy()
            log(f"epoch {epoch:5d}  objective {loss.item():.6f}  bce {bce.item():.6f}  "
                f"train acc {accuracy(z.detach().numpy(), split.y_train):6.1%}  "
                f"test acc {accuracy(z_test, split.y_test):6.1%}")
        if epoch == epochs:  # the last pass only evaluates the final parameters
            break
        loss.backward()
        with cr.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        w.grad = None
        b.grad = None
    return {"w": w.detach().numpy().copy(), "b": float(b.item()), "history": history,
            "bce": bce.item()}


def sklearn_baseline(split: Split, l2: float = L2) -> LogisticRegression:
    """Fit scikit-learn's LogisticRegression on the same objective (C = 1 / (n * l2))."""
    c = 1.0 / (len(split.y_train) * l2)
    return LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(split.x_train, split.y_train)


def _table(rows: list[tuple[str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def run(epochs: int = DEFAULT_EPOCHS, lr: float = DEFAULT_LR, seed: int = DEFAULT_SEED,
        verbose: bool = True, l2: float = L2) -> dict[str, float]:
    """Train, compare with scikit-learn, print a report; return the metrics.

    ``seed`` fixes both the train/test split and the weight initialization.
    Losses are mean binary cross-entropies on the training split, without the
    penalty (``*_objective`` includes it). With ``verbose=False`` only the final
    ``test accuracy: XX.X%`` line is printed.
    """
    say: Callable[[str], None] = print if verbose else (lambda _msg: None)
    start = time.perf_counter()
    split = load_data(seed)
    n, d = split.x_train.shape
    say(f"breast cancer: {n} train / {len(split.y_test)} test samples, {d} features "
        f"(standardized with training statistics), {DTYPE}")
    say(f"full-batch gradient descent: {epochs} epochs, lr {lr}, L2 {l2} on the weights")
    fitted = fit(split, epochs, lr, seed, l2, log=say)
    train_seconds = time.perf_counter() - start

    w, b = fitted["w"], fitted["b"]
    z_train, z_test = split.x_train @ w + b, split.x_test @ w + b
    sk = sklearn_baseline(split, l2)
    sk_w = sk.coef_.ravel()
    sk_p_train = sk.predict_proba(split.x_train)[:, 1]
    sk_p_test = sk.predict_proba(split.x_test)[:, 1]
    p_all = 1.0 / (1.0 + np.exp(-np.concatenate([z_train, z_test])))
    metrics = {
        "initial_loss": fitted["history"][0],
        "train_objective": fitted["history"][-1],
        "train_loss": fitted["bce"],
        "train_acc": accuracy(z_train, split.y_train),
        "test_acc": accuracy(z_test, split.y_test),
        "sklearn_train_objective": log_loss(split.y_train, sk_p_train)
        + 0.5 * l2 * float(sk_w @ sk_w),
        "sklearn_train_loss": log_loss(split.y_train, sk_p_train),
        "sklearn_train_acc": float(sk.score(split.x_train, split.y_train)),
        "sklearn_test_acc": float(sk.score(split.x_test, split.y_test)),
        "max_abs_weight_diff": float(max(np.abs(w - sk_w).max(), abs(b - sk.intercept_[0]))),
        "max_abs_prob_diff": float(np.abs(p_all - np.concatenate([sk_p_train, sk_p_test])).max()),
        "train_seconds": train_seconds,
    }
    say("")
    say(f"comparison with sklearn LogisticRegression(C=1/(n*L2)={1 / (n * l2):.4g}), "
        "the same L2-penalized objective:")
    say(_table([
        ("metric", "chainrule", "sklearn"),
        ("train objective", f"{metrics['train_objective']:.6f}",
         f"{metrics['sklearn_train_objective']:.6f}"),
        ("train loss (BCE)", f"{metrics['train_loss']:.6f}",
         f"{metrics['sklearn_train_loss']:.6f}"),
        ("train accuracy", f"{metrics['train_acc']:.1%}", f"{metrics['sklearn_train_acc']:.1%}"),
        ("test accuracy", f"{metrics['test_acc']:.1%}", f"{metrics['sklearn_test_acc']:.1%}"),
    ]))
    say(f"max |w - w_sklearn| (incl. bias): {metrics['max_abs_weight_diff']:.2e}   "
        f"max |p - p_sklearn|: {metrics['max_abs_prob_diff']:.2e}")
    say(f"data + training: {train_seconds:.2f} s")
    print(f"test accuracy: {metrics['test_acc']:.1%}")
    return metrics
