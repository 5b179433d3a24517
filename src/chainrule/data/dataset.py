"""Map-style datasets: ``Dataset``, ``TensorDataset``, ``Subset``, ``ConcatDataset`` and
``random_split``, as in ``torch.utils.data``.

A dataset may also define ``get_batch(indices) -> batch``, returning a whole collated
batch at once; ``DataLoader`` uses it instead of one ``dataset[i]`` per sample when its
``collate_fn`` is the default one. ``TensorDataset`` gathers a batch with one fancy index
per tensor, and ``Subset`` passes the call on when the dataset under it can.
"""
from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from ..core.tensor import Tensor
from ..core.dispatch import user_site
from ..ops.creation import Generator, default_generator, randperm


class Dataset(ABC):
    """A map-style dataset: subclasses define ``__getitem__(i)`` and ``__len__()``.

    ``a + b`` concatenates two datasets (a ``ConcatDataset``).
    """

    @abstractmethod
    def __getitem__(self, index: int):
        """The sample at ``index``."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of samples."""

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Samples are rows of equally long tensors: ``ds[i] == (t[i] for t in tensors)``."""

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError(f"TensorDataset: expected at least one tensor, at {user_site()}")
        tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in tensors]
        if None in sizes or len(set(sizes)) != 1:
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ValueError(f"TensorDataset: tensors must have the same size in dim 0, got "
                             f"shapes {shapes}, at {user_site()}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def get_batch(self, indices) -> list:
        """The collated batch for ``indices``: one fancy index per tensor, the same
        value as ``default_collate([ds[i] for i in indices])``."""
        index = np.asarray(indices, dtype=np.int64)
        return [t[index] for t in self.tensors]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)

    def __getattr__(self, name):
        # get_batch exists exactly when the dataset below has it, so DataLoader's
        # hasattr test sees through any depth of Subsets.
        if name != "get_batch":
            raise AttributeError(name)
        inner = getattr(self.dataset, "get_batch")
        index = np.asarray(self.indices, dtype=np.int64)
        return lambda indices: inner(index[np.asarray(indices, dtype=np.int64)])


class ConcatDataset(Dataset):
    """The samples of several datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError(f"ConcatDataset: datasets should not be empty, at {user_site()}")
        self.cumulative_sizes = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int):
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"ConcatDataset: index {index} out of range for length {n}")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def _split_lengths(n: int, lengths: Sequence) -> list:
    """Absolute lengths; fractions that sum to 1 are floored and the remainder is
    handed out one by one from the first split on, as in PyTorch."""
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1 and all(0 <= f <= 1 for f in lengths):
        out = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(out)):
            out[i % len(out)] += 1
        return out
    if any(int(x) != x or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative integers or fractions "
                         f"summing to 1, got {list(lengths)}, at {user_site()}")
    return [int(x) for x in lengths]


def random_split(dataset: Dataset, lengths: Sequence, generator: Generator | None = None
                 ) -> list[Subset]:
    """Split ``dataset`` into disjoint random ``Subset``s of the given lengths.

    ``lengths`` are sizes summing to ``len(dataset)``, or fractions summing to 1
    (``[0.8, 0.2]``). The permutation comes from ``generator`` (the default generator if
    None), so a seeded generator gives the same split every time.
    """
    n = len(dataset)
    sizes = _split_lengths(n, lengths)
    if sum(sizes) != n:
        raise ValueError(f"random_split: sum of input lengths {sum(sizes)} does not equal the "
                         f"length of the dataset {n}, at {user_site()}")
    perm = randperm(n, generator=generator or default_generator).data.tolist()
    out, start = [], 0
    for size in sizes:
        out.append(Subset(dataset, perm[start:start + size]))
        start += size
    return out
