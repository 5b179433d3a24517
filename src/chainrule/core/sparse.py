"""Row-sparse gradients, for embedding tables too large to get a dense gradient per step.

``Embedding(..., sparse=True)`` makes its table's gradient a ``RowSparseGrad``: the
touched row indices and one row of values each, standing for a dense gradient that is
zero elsewhere. The engine accumulates these by concatenation (duplicates allowed) and
adds them to dense gradients by scatter-add; ``SGD``, ``Adagrad`` and ``SparseAdam``
update only the touched rows.
"""
from __future__ import annotations

import numpy as np

from .tensor import Tensor


class RowSparseGrad:
    """``indices`` (k,) int64 rows of a tensor of ``shape``; ``values`` (k, *shape[1:])."""

    __slots__ = ("indices", "values", "shape")
    is_sparse = True

    def __init__(self, indices: np.ndarray, values: Tensor, shape: tuple):
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self.values = values
        self.shape = tuple(shape)

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def requires_grad(self) -> bool:
        return self.values.requires_grad

    def coalesce(self) -> "RowSparseGrad":
        """Sorted unique rows, duplicates summed."""
        from ..ops import movement
        rows, inverse = np.unique(self.indices, return_inverse=True)
        if rows.size == self.indices.size and np.all(rows == self.indices):
            return self
        values = movement.index_add(self.values, (inverse.reshape(-1),),
                                    (rows.size,) + self.shape[1:])
        return RowSparseGrad(rows, values, self.shape)

    def to_dense(self) -> Tensor:
        from ..ops import movement
        return movement.index_add(self.values, (self.indices,), self.shape)

    def detach(self) -> "RowSparseGrad":
        return RowSparseGrad(self.indices, self.values.detach(), self.shape)

    def __add__(self, other):
        if isinstance(other, RowSparseGrad):
            from ..ops import movement
            return RowSparseGrad(np.concatenate([self.indices, other.indices]),
                                 movement.cat([self.values, other.values]), self.shape)
        return self.to_dense() + other

    __radd__ = __add__

    def __repr__(self) -> str:
        return (f"RowSparseGrad(shape={self.shape}, rows={self.indices.size}, "
                f"dtype={self.dtype})")


def accumulate(prev, g):
    """``prev + g`` where one of two gradients is row-sparse (sparse + sparse stays sparse)."""
    return g + prev if g.__class__ is RowSparseGrad else prev + g
