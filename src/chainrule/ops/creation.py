"""Tensor creation and random numbers (a seedable ``Generator``, as in PyTorch)."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..core import dispatch
from ..core.tensor import Tensor


def _finish(data, requires_grad) -> Tensor:
    t = Tensor(data)
    if dispatch._traces:  # made while jit traces: a constant of the graph
        dispatch._traces[-1].created(t.data)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    return tuple(int(s) for s in size)


def _dt(dtype, default=None):
    if dtype is None:
        return default if default is not None else backend.get_default_dtype()
    return backend.to_dtype(dtype)


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new tensor copied from data (Python floats become float32, ints int64)."""
    if isinstance(data, Tensor):
        data = data.data
    arr = backend.asarray(data, dtype)
    return _finish(np.array(arr, copy=True), requires_grad)


def as_tensor(data, dtype=None) -> Tensor:
    """A tensor sharing memory with ``data`` where possible."""
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == backend.to_dtype(dtype) else data.to(dtype)
    return Tensor(backend.asarray(data, dtype))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with a NumPy array (dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    return Tensor(array)


def zeros(*size, dtype=None, requires_grad=False) -> Tensor:
    """A tensor of zeros of the given size (float32 unless ``dtype``)."""
    return _finish(np.zeros(_size(size), _dt(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False) -> Tensor:
    """A tensor of ones of the given size (float32 unless ``dtype``)."""
    return _finish(np.ones(_size(size), _dt(dtype)), requires_grad)


def empty(*size, dtype=None, requires_grad=False) -> Tensor:
    """An uninitialized tensor of the given size."""
    return _finish(np.empty(_size(size), _dt(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (dtype from the value by default)."""
    if dtype is None:
        dtype = backend.asarray(fill_value).dtype
    return _finish(np.full(_size((size,)), fill_value, _dt(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False) -> Tensor:
    """Values from start to end (exclusive); int64 unless a bound is a float."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = backend.int64 if is_int else backend.get_default_dtype()
    return _finish(np.arange(start, end, step, dtype=_dt(dtype)), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False) -> Tensor:
    """``steps`` evenly spaced values from start to end, both included."""
    return _finish(np.linspace(start, end, int(steps), dtype=_dt(dtype)), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False) -> Tensor:
    """An n x m identity matrix."""
    return _finish(np.eye(n, m, dtype=_dt(dtype)), requires_grad)


def zeros_like(x, dtype=None, requires_grad=False) -> Tensor:
    """Zeros with the shape (and dtype, unless given) of ``x``."""
    return _finish(np.zeros(x.shape, _dt(dtype, x.dtype)), requires_grad)


def ones_like(x, dtype=None, requires_grad=False) -> Tensor:
    """Ones with the shape (and dtype, unless given) of ``x``."""
    return _finish(np.ones(x.shape, _dt(dtype, x.dtype)), requires_grad)


def empty_like(x, dtype=None, requires_grad=False) -> Tensor:
    """Uninitialized, with the shape (and dtype, unless given) of ``x``."""
    return _finish(np.empty(x.shape, _dt(dtype, x.dtype)), requires_grad)


def full_like(x, fill_value, dtype=None, requires_grad=False) -> Tensor:
    """``fill_value`` with the shape (and dtype, unless given) of ``x``."""
    return _finish(np.full(x.shape, fill_value, _dt(dtype, x.dtype)), requires_grad)

# ---------------------------------------------------------------- random


class Generator:
    """A seedable random source; ``Generator().manual_seed(0)`` as in PyTorch."""

    def __init__(self, seed: int | None = None):
        self.manual_seed(np.random.SeedSequence().entropy if seed is None else seed)

    def manual_seed(self, seed: int) -> "Generator":
        self.seed = int(seed)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        return self

    def initial_seed(self) -> int:
        return self.seed

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (used when no ``generator=`` is given)."""
    return default_generator.manual_seed(seed)


def _rng(generator):
    if dispatch._traces:
        from ..core.abstract import TracerError
        raise TracerError(
            f"jit: random numbers drawn while tracing would be frozen into the compiled "
            f"graph (the same values at every call); draw them outside and pass them in "
            f"(a dropout mask, noise), or call the function without jit, at "
            f"{dispatch.user_site()}")
    return (generator or default_generator).rng


def rand(*size, generator=None, dtype=None, requires_grad=False) -> Tensor:
    """Uniform samples on [0, 1)."""
    dt = _dt(dtype)
    return _finish(_rng(generator).random(_size(size), dtype=np.float64).astype(dt), requires_grad)


def randn(*size, generator=None, dtype=None, requires_grad=False) -> Tensor:
    """Standard normal samples."""
    dt = _dt(dtype)
    data = _rng(generator).standard_normal(_size(size), dtype=np.float64).astype(dt)
    return _finish(data, requires_grad)


def randint(low, high=None, size=(), generator=None, dtype=None) -> Tensor:
    """Integers uniform on [low, high)."""
    if high is None:
        low, high = 0, low
    return Tensor(_rng(generator).integers(low, high, size=tuple(size),
                                           dtype=_dt(dtype, backend.int64)))


def randperm(n, generator=None) -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    return Tensor(_rng(generator).permutation(int(n)).astype(backend.int64))


def rand_like(x, generator=None, dtype=None) -> Tensor:
    """Uniform samples on [0, 1) with the shape of ``x``."""
    return rand(x.shape, generator=generator, dtype=dtype or x.dtype)


def randn_like(x, generator=None, dtype=None) -> Tensor:
    """Standard normal samples with the shape of ``x``."""
    return randn(x.shape, generator=generator, dtype=dtype or x.dtype)
