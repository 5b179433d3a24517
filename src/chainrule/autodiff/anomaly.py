"""Anomaly mode: find the op that made the first NaN or Inf, forward or backward.

``with detect_anomaly():`` pushes ``_Anomaly``, an interpreter that runs each op one
level down, stamps its tape node with the user's line, and checks the result: an op
whose output holds NaN (or Inf) while none of its inputs did raises ``AnomalyError``
naming the primitive, the phase, the user's line of the forward call and the inputs'
statistics. The backward engine checks every gradient a vjp rule returns the same way
(``check_gradient``), and names the forward line stored on the node. Values that were
already NaN or Inf when they came in pass through: the error is raised where they were
made, not everywhere they flow. (Masks of -inf fed into softmax, say, stay legal.)
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..core import dispatch
from ..core.dispatch import Interpreter

__all__ = ["detect_anomaly", "is_anomaly_enabled", "AnomalyError"]


class AnomalyError(RuntimeError):
    """Raised by anomaly mode. ``node`` is the tape node of the op (None for an op that
    was not recorded), ``phase`` 'forward' or 'backward'."""

    def __init__(self, msg, node=None, phase="forward"):
        super().__init__(msg)
        self.node, self.phase = node, phase


def _bad(a: np.ndarray) -> tuple:
    """(nan count, inf count) of a floating point array; (0, 0) otherwise."""
    if a.dtype.kind not in "fc" or a.size == 0:
        return 0, 0
    if np.isfinite(a).all():
        return 0, 0
    return int(np.isnan(a).sum()), int(np.isinf(a).sum())


def stats(a: np.ndarray) -> str:
    """shape, dtype, min/max over the finite values, NaN and Inf counts."""
    s = f"{tuple(a.shape)} {a.dtype}"
    if a.dtype.kind not in "fc" or a.size == 0:
        return s
    fin = a[np.isfinite(a)]
    rng = f"min {fin.min():.4g}, max {fin.max():.4g}" if fin.size else "no finite values"
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    return f"{s}: {rng}, {nan} NaN, {inf} Inf"


def _where(site) -> str:
    return "%s:%d" % site if site else "an unknown line (the op ran before detect_anomaly)"


def _made_here(out: np.ndarray, inputs) -> str | None:
    nan, inf = _bad(out)
    if not (nan or inf):
        return None
    in_nan = in_inf = 0
    for a in inputs:
        n, i = _bad(a)
        in_nan += n
        in_inf += i
    if nan and not in_nan:
        return "NaN"
    if inf and not in_inf and not in_nan:
        return "Inf"
    return None


class _Anomaly(Interpreter):
    def process(self, prim, args, params):
        out = dispatch.lower(self, prim, args, params)
        site = dispatch.user_frame()
        if out._node is not None:
            out._node.site = site
        kind = _made_here(out.data, [a.data for a in args])
        if kind is not None:
            ins = "\n".join(f"  input {i}: {stats(a.data)}" for i, a in enumerate(args))
            node = _current[0]
            if node is None:
                raise AnomalyError(
                    f"anomaly: '{prim.name}' produced {kind} in the forward pass, at "
                    f"{_where(site)}\n  output: {stats(out.data)}\n{ins}", out._node)
            raise AnomalyError(
                f"anomaly: '{prim.name}' produced {kind} in the backward pass, inside the "
                f"vjp of '{node.prim.name}' whose forward call was at {_where(node.site)}"
                f"\n  output: {stats(out.data)}\n{ins}", node, "backward")
        return out


_current = [None]  # the node whose vjp the engine is running, in anomaly mode


def check_gradient(node, g, gins) -> None:
    """Called by the engine in anomaly mode with a node's incoming gradient ``g`` and the
    gradients ``gins`` its vjp returned."""
    for i, gi in enumerate(gins):
        if gi is None:
            continue
        kind = _made_here(gi.data, [g.data])
        if kind is None:
            continue
        saved = "\n".join(f"  saved input {j}: {stats(x.data)}"
                          for j, x in enumerate(node.inputs) if hasattr(x, "data"))
        if node.out is not None:
            saved += f"\n  saved output: {stats(node.out)}"
        raise AnomalyError(
            f"anomaly: the backward of '{node.prim.name}' produced {kind} in the gradient of "
            f"its input {i}; the forward call was at {_where(node.site)}\n"
            f"  incoming gradient: {stats(g.data)}\n  gradient of input {i}: "
            f"{stats(gi.data)}\n{saved}", node, "backward")


_depth = [0]


def is_anomaly_enabled() -> bool:
    return _depth[0] > 0


@contextlib.contextmanager
def _enabled():
    _depth[0] += 1
    try:
        with dispatch.interpreter(_Anomaly()):
            yield
    finally:
        _depth[0] -= 1


class detect_anomaly(contextlib.ContextDecorator):
    """Context manager and decorator: check every forward and backward result for NaN and
    Inf made there, and name the op and the user's line when one appears. Costs a pass
    over each result (measured in benchmarks/run.py)."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self._cm = _enabled() if self.check_nan else contextlib.nullcontext()
        self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        return False

