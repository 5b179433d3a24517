"""Cases for the rows that index by an integer tensor operand (ops/indexing.py). The
index is an input without gradient; the sparse gradient of ``take`` is tested in
tests/nn/test_sparse_grad.py."""
import numpy as np

from .cases import CASES, Case, real

_i = np.array([[0, 4], [4, 2]])
CASES["take"] = [
    Case([real(5, 3), _i], {"axis": 0}, ref=lambda x, i, axis: np.take(x, i, axis), grad=(0,)),
    Case([real(2, 4), np.array([3, 3, 0])], {"axis": 1}, ref=lambda x, i, axis: np.take(x, i, axis),
         grad=(0,)),
    Case([real(3, 2), np.zeros(0, np.int64)], {"axis": 0},
         ref=lambda x, i, axis: np.take(x, i, axis), grad=(0,)),
]
CASES["take_add"] = [
    Case([real(2, 2, 3), _i], {"axis": 0, "shape": (5, 3)},
         ref=lambda g, i, axis, shape: _scatter(g, i, shape), grad=(0,)),
]
_g = np.array([[1, 0, 1], [2, 2, 0]])
CASES["take_along"] = [
    Case([real(3, 3), _g.T[:, :2].copy()], {"axis": 0},
         ref=lambda x, i, axis: np.take_along_axis(x[:, :2], i, axis), grad=(0,)),
    Case([real(2, 3), _g], {"axis": 1}, ref=lambda x, i, axis: np.take_along_axis(x, i, axis),
         grad=(0,)),
]
CASES["take_along_add"] = [
    Case([real(2, 3), _g], {"axis": 1, "shape": (2, 3)},
         ref=lambda g, i, axis, shape: _along(g, i, shape), grad=(0,)),
]


def _scatter(g, i, shape):
    out = np.zeros(shape)
    for k, row in zip(i.reshape(-1), g.reshape(-1, shape[1])):
        out[k] += row
    return out


def _along(g, i, shape):
    out = np.zeros(shape)
    for r in range(i.shape[0]):
        for c in range(i.shape[1]):
            out[r, i[r, c]] += g[r, c]
    return out
