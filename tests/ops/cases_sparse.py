"""Cases for the embedding row-gather primitive (dense gradient; the sparse gradient is
tested in tests/nn/test_sparse_grad.py)."""
import numpy as np

from .cases import CASES, Case, real

CASES["embedding"] = [
    Case([real(5, 3)], {"index": np.array([[0, 4], [4, 2]]), "sparse": False},
         ref=lambda w, index, sparse: w[index]),
    Case([real(4, 2)], {"index": np.array([1, 1, 3]), "sparse": False},
         ref=lambda w, index, sparse: w[index]),
    Case([real(3, 2)], {"index": np.zeros(0, np.int64), "sparse": False},
         ref=lambda w, index, sparse: w[index]),
]
