"""Datasets that need no download.

* ``load_digits`` and ``load_breast_cancer``: scikit-learn's bundled files (the
  ``examples`` extra), as float32 features and int64 labels;
* ``stratified_split`` and ``standardize``: a deterministic train/test split that keeps
  the class proportions, and feature scaling fitted on the training part only;
* ``load_pydoc_text`` and ``char_corpus``: a character-level language-modelling corpus
  made of the documentation text that ships with Python (``pydoc_data.topics``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.dispatch import user_site
from ..core.tensor import Tensor
from ..ops.creation import Generator
from .dataset import Dataset, TensorDataset

_EXTRA = "pip install 'chainrule[examples]'"


def _sklearn_datasets(name: str):
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise ImportError(f"chainrule.data.datasets.{name} reads scikit-learn's bundled data "
                          f"files, and scikit-learn is not installed: {_EXTRA}") from exc
    return datasets


def _result(x: np.ndarray, y: np.ndarray, return_X_y: bool):
    x = Tensor(np.ascontiguousarray(x, dtype=np.float32))
    y = Tensor(np.ascontiguousarray(y, dtype=np.int64))
    return (x, y) if return_X_y else TensorDataset(x, y)


def load_digits(*, images: bool = False, return_X_y: bool = False):
    """The 1,797 8x8 handwritten digits (labels 0-9) bundled with scikit-learn.

    Pixels are scaled from 0..16 to [0, 1]. Features are (N, 64), or (N, 1, 8, 8) with
    ``images=True`` (for CNNs). Returns a ``TensorDataset(x, y)``, or ``(x, y)`` with
    ``return_X_y=True``; x is float32, y int64.
    """
    bunch = _sklearn_datasets("load_digits").load_digits()
    x = bunch.data / 16.0
    if images:
        x = x.reshape(-1, 1, 8, 8)  # (N, C=1, H=8, W=8)
    return _result(x, bunch.target, return_X_y)


def load_breast_cancer(*, return_X_y: bool = False):
    """The 569 breast-cancer samples bundled with scikit-learn: 30 features (raw, not
    scaled; see ``standardize``), labels 0 (malignant) and 1 (benign).

    Returns a ``TensorDataset(x, y)``, or ``(x, y)`` with ``return_X_y=True``; x is float32,
    y int64.
    """
    bunch = _sklearn_datasets("load_breast_cancer").load_breast_cancer()
    return _result(bunch.data, bunch.target, return_X_y)


def _array(t) -> np.ndarray:
    return t.data if isinstance(t, Tensor) else np.asarray(t)


def stratified_split(x, y, test_size: float = 0.2, seed: int = 0) -> tuple:
    """Split ``(x, y)`` into ``(x_train, x_test, y_train, y_test)`` tensors, keeping each
    class's share in both parts; the same ``seed`` gives the same split.

    The test part has ``ceil(test_size * N)`` samples, shared among the classes in
    proportion to their sizes (largest remainders get the leftover samples). Both parts
    come in a shuffled order.
    """
    xa, ya = _array(x), _array(y)
    n = len(ya)
    if len(xa) != n:
        raise ValueError(f"stratified_split: x has {len(xa)} samples but y has {n}, "
                         f"at {user_site()}")
    if not 0 < test_size < 1:
        raise ValueError(f"stratified_split: test_size must be in (0, 1), got {test_size}, "
                         f"at {user_site()}")
    rng = Generator(seed).rng
    classes, counts = np.unique(ya, return_counts=True)
    quota = test_size * counts
    n_test = np.floor(quota).astype(np.int64)
    leftover = math.ceil(test_size * n) - int(n_test.sum())
    n_test[np.argsort(-(quota - n_test), kind="stable")[:leftover]] += 1
    test, train = [], []
    for c, k in zip(classes, n_test):
        members = rng.permutation(np.flatnonzero(ya == c))
        test.append(members[:k])
        train.append(members[k:])
    train_idx = rng.permutation(np.concatenate(train))
    test_idx = rng.permutation(np.concatenate(test))
    return (Tensor(xa[train_idx]), Tensor(xa[test_idx]),
            Tensor(ya[train_idx]), Tensor(ya[test_idx]))


def standardize(train, *others) -> tuple:
    """Scale features to zero mean and unit variance with the mean and standard
    deviation of ``train`` (over dim 0), applied to ``train`` and to each of ``others``,
    so nothing about the test data leaks into training. Constant features are only
    centred. Returns a tuple of tensors."""
    xa = _array(train)
    mean = xa.mean(axis=0)
    std = xa.std(axis=0)
    std = np.where(std > 0, std, 1).astype(xa.dtype)
    return tuple(Tensor(((_array(t) - mean) / std).astype(xa.dtype)) for t in (train, *others))

# ---------------------------------------------------------------- text


def load_pydoc_text() -> str:
    """The documentation topics bundled with Python (``pydoc_data.topics.topics``),
    concatenated in sorted key order and separated by blank lines: about half a million
    characters of English and code. The text depends on the Python version."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"


class CharDataset(Dataset):
    """Next-character prediction blocks over an encoded text.

    Sample ``i`` is ``(data[i:i + block_size], data[i + 1:i + block_size + 1])``: the
    targets are the inputs shifted by one. ``get_batch`` gathers a whole batch with one
    fancy index.
    """

    def __init__(self, data: Tensor, block_size: int):
        if block_size < 1 or len(data) <= block_size:
            raise ValueError(f"CharDataset: need block_size >= 1 and more than block_size "
                             f"characters, got block_size={block_size} and {len(data)}, "
                             f"at {user_site()}")
        self.data = data
        self.block_size = block_size

    def __len__(self) -> int:
        return len(self.data) - self.block_size

    def __getitem__(self, index: int) -> tuple:
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(f"CharDataset: index {index} out of range for length {n}")
        return self.data[i:i + self.block_size], self.data[i + 1:i + 1 + self.block_size]

    def get_batch(self, indices) -> list:
        """``[x, y]`` of shape (B, block_size) each, for the samples at ``indices``."""
        rows = np.asarray(indices, dtype=np.int64)[:, None] + np.arange(self.block_size)
        data = self.data.data
        return [Tensor(data[rows]), Tensor(data[rows + 1])]  # (B, T), (B, T)


@dataclass
class CharCorpus:
    """A character-level corpus: the vocabulary, the encoded text and its splits."""

    text: str
    itos: list      # index -> character, sorted
    stoi: dict      # character -> index
    data: Tensor    # the whole text encoded, int64 (N,)
    train: CharDataset
    val: CharDataset

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> Tensor:
        """Characters to an int64 tensor of indices (KeyError for an unknown one)."""
        return Tensor(np.array([self.stoi[c] for c in text], dtype=np.int64))

    def decode(self, ids) -> str:
        """Indices (a tensor, array or list) back to text."""
        return "".join(self.itos[i] for i in np.asarray(_array(ids)).ravel().tolist())


def char_corpus(block_size: int, val_fraction: float = 0.1, text: str | None = None
                ) -> CharCorpus:
    """A ``CharCorpus`` of ``text`` (``load_pydoc_text()`` by default) with
    ``CharDataset``s of ``block_size``: the first ``1 - val_fraction`` of the text for
    training, the rest for validation (a contiguous split, so no block spans both)."""
    text = load_pydoc_text() if text is None else text
    itos = sorted(set(text))
    stoi = {c: i for i, c in enumerate(itos)}
    data = Tensor(np.array([stoi[c] for c in text], dtype=np.int64))
    cut = int(len(data) * (1 - val_fraction))
    return CharCorpus(text, itos, stoi, data, CharDataset(data[:cut], block_size),
                      CharDataset(data[cut:], block_size))
