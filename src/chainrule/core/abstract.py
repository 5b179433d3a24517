"""Abstract values: what a tensor holds while ``jit`` traces a function.

A traced tensor's ``data`` is a ``ShapedArray``: a shape, a dtype and the graph variable
it stands for, but no numbers. Reading numbers from it (``bool``, ``float``, ``item``,
``numpy``, ``np.asarray``) raises ``TracerError`` naming the user's line: the value is
not known until the compiled function runs, so Python cannot branch on it.
"""
from __future__ import annotations

import numpy as np


class TracerError(TypeError):
    """Python needed the value of a traced tensor (control flow, conversion)."""


class _Flags:
    writeable = True


class ShapedArray:
    __slots__ = ("shape", "dtype", "var")
    base = None
    flags = _Flags()

    def __init__(self, shape: tuple, dtype, var=None):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.var = var

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def _concrete(self, what: str):
        from .dispatch import user_site
        raise TracerError(
            f"jit: {what} needs the value of a traced tensor ({self.shape} {self.dtype}), "
            f"which is not known while tracing, at {user_site()}. Python control flow "
            f"cannot depend on traced values: mark the argument static "
            f"(jit(fn, static_argnums=...)) if it is a setting, or compute both branches "
            f"and pick with chainrule.where(cond, a, b).")

    def __bool__(self):
        self._concrete("bool()")

    def __float__(self):
        self._concrete("float()")

    def __int__(self):
        self._concrete("int()")

    def __index__(self):
        self._concrete("using a tensor as an index or size")

    def __array__(self, *a, **k):
        self._concrete("converting to a NumPy array")

    def __len__(self):
        return self.shape[0]

    def item(self):
        self._concrete(".item()")

    def tolist(self):
        self._concrete(".tolist()")

    def astype(self, *a, **k):
        self._concrete("reading the values as an array")

    def __getitem__(self, i):
        self._concrete("reading elements as an array")

    def __repr__(self) -> str:
        return f"ShapedArray({self.shape}, {self.dtype})"
