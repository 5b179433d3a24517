"""Samplers, ``default_collate`` and ``DataLoader``, as in ``torch.utils.data``.

Shuffling is reproducible and resumable. A shuffling loader owns a ``Generator``
(``generator=`` or, if None, a new one seeded from the default generator when the loader
is built, so ``chainrule.manual_seed(s)`` before building it fixes the batch order). Each
epoch draws its permutation from that generator when the epoch starts. So:

* at an epoch boundary, ``loader.generator.get_state()`` is all a checkpoint needs;
  ``loader.generator.set_state(state)`` in the resumed run gives the same batches;
* anywhere, ``loader.state_dict()`` (the generator state at the start of the current
  epoch and the number of batches already given) and ``loader.load_state_dict(sd)``
  resume in the middle of an epoch: the next epoch redraws the same permutation and
  skips the batches already seen without loading them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .. import backend
from ..core.dispatch import user_site
from ..core.tensor import Tensor
from ..ops.creation import Generator, default_generator, randint, randperm
from ..ops.movement import stack
from .dataset import Dataset

# ---------------------------------------------------------------- samplers


class Sampler(ABC):
    """Yields dataset indices; subclasses define ``__iter__`` (and ``__len__``)."""

    @abstractmethod
    def __iter__(self) -> Iterator[int]:
        """The indices of one epoch."""


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


def _seeded_from_default() -> Generator:
    return Generator(int(default_generator.rng.integers(2 ** 63)))


class RandomSampler(Sampler):
    """A random permutation of the indices each epoch (or ``num_samples`` draws with
    replacement), drawn from ``generator`` when the epoch starts.

    With ``generator=None`` the sampler makes its own, seeded from the default generator
    at construction. ``epoch_start_state`` is the generator state the latest epoch was
    drawn from.
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        if num_samples is not None and not replacement:
            raise ValueError("RandomSampler: num_samples is only used with replacement=True")
        self.generator = generator if generator is not None else _seeded_from_default()
        self.epoch_start_state = None

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        self.epoch_start_state = self.generator.get_state()
        if self.replacement:
            return iter(randint(0, n, (self.num_samples,), generator=self.generator).tolist())
        return iter(randperm(n, generator=self.generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size should be a positive integer, got "
                             f"{batch_size!r}, at {user_site()}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list]:
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

# ---------------------------------------------------------------- collate


def _stack_tensors(batch: list) -> Tensor:
    shapes = {t.shape for t in batch}
    if len(shapes) > 1:
        raise RuntimeError(f"default_collate: samples have different shapes {sorted(shapes)}; "
                           f"pass a collate_fn that pads them")
    if any(t.requires_grad for t in batch):
        return stack(batch)
    return Tensor(np.stack([t.data for t in batch]))


def default_collate(batch: list) -> Any:
    """Merge a list of samples into a batch, as ``torch.utils.data.default_collate``.

    Tensors, NumPy arrays and NumPy scalars are stacked into a tensor with a new leading
    dimension (dtype kept); Python floats become a float64 tensor, ints int64, bools bool;
    strings stay a list; dicts, tuples and lists are collated field by field (a tuple
    becomes a list, a namedtuple stays a namedtuple, as in PyTorch).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, (np.ndarray, np.generic)):
        if elem.dtype.kind in "OSUV":
            raise TypeError(f"default_collate: cannot stack NumPy arrays of dtype {elem.dtype}")
        return _stack_tensors([Tensor(np.asarray(b)) for b in batch])
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=backend.float64))
    if isinstance(elem, int):  # bool is an int: a bool tensor, as in PyTorch
        return Tensor(backend.asarray(batch))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(collated)
        except TypeError:
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, Sequence):
        if len({len(b) for b in batch}) > 1:
            raise RuntimeError("default_collate: each element in list of batch should be of "
                               "equal size")
        fields = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return fields
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(f"default_collate: batch must contain tensors, NumPy arrays, numbers, "
                    f"dicts or lists; found {type(elem).__name__}")

# ---------------------------------------------------------------- loader


class DataLoader:
    """Iterate over ``dataset`` in batches, as ``torch.utils.data.DataLoader`` with
    ``num_workers=0``.

    ``shuffle=True`` draws a new permutation every epoch from ``generator`` (see the
    module docstring for reproducibility and resuming). ``sampler`` (any iterable of
    indices) replaces the default order; ``batch_sampler`` (an iterable of index lists)
    replaces ``batch_size``, ``shuffle``, ``sampler`` and ``drop_last``. When
    ``collate_fn`` is the default and the dataset has ``get_batch`` (``TensorDataset``
    and ``Subset``s of one), a batch is gathered with one fancy index per tensor.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 sampler: Iterable[int] | None = None, batch_sampler: Iterable[list] | None = None,
                 *, drop_last: bool = False, collate_fn: Callable[[list], Any] | None = None,
                 generator: Generator | None = None):
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                                 "batch_size, shuffle, sampler, and drop_last")
            batch_size = None
        elif sampler is None:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = (batch_sampler if batch_sampler is not None
                              else BatchSampler(sampler, batch_size, drop_last))
        self.collate_fn = collate_fn if collate_fn is not None else default_collate
        self.generator = getattr(sampler, "generator", None)  # what shuffling draws from
        self._done = None  # batches given in the current epoch; None between epochs
        self._skip = 0     # batches to skip at the start of the next epoch (resuming)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator:
        return self._epoch()

    def _epoch(self) -> Iterator:
        skip, self._skip = self._skip, 0
        get_batch = None
        if self.collate_fn is default_collate:
            get_batch = getattr(self.dataset, "get_batch", None)
        dataset, collate = self.dataset, self.collate_fn
        self._done = 0
        for i, indices in enumerate(self.batch_sampler):
            if i < skip:
                continue
            if get_batch is not None:
                batch = get_batch(indices)
            else:
                batch = collate([dataset[j] for j in indices])
            self._done = i + 1
            yield batch
        self._done = None

    def state_dict(self) -> dict:
        """Where the loader stands: ``{"generator": state, "batches_done": k}``.

        Mid-epoch, ``state`` is the generator state the current epoch was drawn from and
        ``k`` the batches already given; between epochs, the current generator state and
        0. ``state`` is None for a loader without a generator (no shuffling). The dict is
        plain data (ints, strings), so ``chainrule.save`` stores it.
        """
        g = self.generator
        if self._done:
            state = getattr(self.sampler, "epoch_start_state", None)
        else:
            state = g.get_state() if g is not None else None
        return {"generator": state, "batches_done": self._done or self._skip}

    def load_state_dict(self, state: dict) -> None:
        """Resume from ``state_dict()``: the next epoch draws the same permutation as the
        interrupted one and starts after the batches it had already given."""
        if state.get("generator") is not None:
            if self.generator is None:
                raise ValueError("DataLoader.load_state_dict: the state has a generator "
                                 "state but this loader does not shuffle")
            self.generator.set_state(state["generator"])
        self._skip = int(state.get("batches_done", 0))
        self._done = None
