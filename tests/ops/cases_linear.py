"""Cases for the ``linear`` row (src/chainrule/ops/linalg.py): ``x @ w.T (+ b)``."""
from .cases import CASES, Case, real


def _ref(x, w, *b):
    return x @ w.T + (b[0] if b else 0)


CASES["linear"] = [Case([real(2, 3), real(4, 3), real(4)], ref=_ref),
                   Case([real(2, 3), real(4, 3)], ref=_ref),
                   Case([real(1, 1), real(1, 1), real(1)], ref=_ref),
                   Case([real(0, 3), real(2, 3), real(2)], ref=_ref)]
