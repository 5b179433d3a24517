"""Softmax, log-softmax and logsumexp: primitives of their own because the composed
forms overflow or give NaN (see the module tests): every finite input gives
finite values and gradients, and ±inf give the mathematical limits."""
from __future__ import annotations

import numpy as np

from ..core.dispatch import bind
from ..core.primitive import defprim
from ..core.tensor import Tensor
from . import elementwise as ew
from . import reduce as rd
from ._util import const, norm_axis, reduced_shape, scalar


# NumPy's overflow/invalid warnings from these kernels are silenced by the package-wide
# filter (chainrule/__init__.py); the results below are the mathematical limits.

def _shift(x, axis):
    m = np.maximum.reduce(x, axis=axis, keepdims=True)
    return m, (m if np.isfinite(m).all() else np.where(np.isfinite(m), m, 0))


def _softmax_impl(x, *, axis):
    if x.size == 0:
        return x.copy()
    m, shift = _shift(x, axis)
    e = np.exp(x - shift)
    s = e / np.add.reduce(e, axis=axis, keepdims=True)
    top = np.equal(m, np.inf)  # (np.isposinf's Python wrapper costs 2 us a call)
    if top.any():  # limit: mass shared by the +inf entries
        hit = np.isposinf(x)
        s = np.where(top, hit / np.add.reduce(hit, axis=axis, keepdims=True), s)
    return s.astype(x.dtype, copy=False)


def _lse_impl(x, *, axis, keepdims):
    if x.size == 0:
        return np.asarray(np.logaddexp.reduce(x, axis=axis, keepdims=keepdims))
    m, shift = _shift(x, axis)
    out = np.log(np.add.reduce(np.exp(x - shift), axis=axis, keepdims=True)) + shift
    out = out.astype(x.dtype, copy=False)
    return out if keepdims else np.squeeze(out, axis=axis)


def _log_softmax_impl(x, *, axis):
    if x.size == 0:
        return x.copy()
    m, shift = _shift(x, axis)  # (x - max) - log(sum(exp(x - max))), as PyTorch computes it
    out = x - shift
    out -= np.log(np.add.reduce(np.exp(out), axis=axis, keepdims=True))
    top = np.equal(m, np.inf)
    if top.any():
        hit = np.isposinf(x)
        count = np.add.reduce(hit, axis=axis, keepdims=True)
        out = np.where(top, np.where(hit, -np.log(count), -np.inf), out)
    return out.astype(x.dtype, copy=False)


def _softmax_vjp(g, s, x, *, axis):
    return (ew.mul(s, ew.sub(g, rd.sum(ew.mul(g, s), axis, True))),)


def _softmax_jvp(t, s, x, *, axis):
    return ew.mul(s, ew.sub(t[0], rd.sum(ew.mul(t[0], s), axis, True)))


def _lse_weights(out, x, axis, keepdims):
    """d lse / dx = softmax(x); 0 for slices that are all -inf (lse = -inf)."""
    p = bind(P_softmax, x, axis=axis)
    empty = ew.isinf(ew.minimum(rd._keep(out, x.ndim, axis, keepdims), 0))
    return ew.where(empty, scalar(0, p.dtype), p)


def _lse_vjp(g, out, x, *, axis, keepdims):
    return (ew.mul(rd._spread(g, x, axis, keepdims), _lse_weights(out, x, axis, keepdims)),)


def _lse_jvp(t, out, x, *, axis, keepdims):
    return rd.sum(ew.mul(t[0], _lse_weights(out, x, axis, keepdims)), axis, keepdims)


def _log_softmax_vjp(g, out, x, *, axis):
    total = bind(rd.P_sum, g, axis=axis, keepdims=True)  # (axis: a normalized tuple)
    return (ew.sub(g, ew.mul(ew.exp(out), total)),)


def _log_softmax_jvp(t, out, x, *, axis):
    return ew.sub(t[0], rd.sum(ew.mul(ew.exp(out), t[0]), axis, True))


P_softmax = defprim("softmax", _softmax_impl, lambda x, *, axis: (x.shape, x.dtype),
                    _softmax_vjp, _softmax_jvp, save_out=True)
P_log_softmax = defprim("log_softmax", _log_softmax_impl, lambda x, *, axis: (x.shape, x.dtype),
                        _log_softmax_vjp, _log_softmax_jvp, save_out=True)
P_logsumexp = defprim("logsumexp", _lse_impl,
                      lambda x, *, axis, keepdims: (reduced_shape(x.shape, axis, keepdims),
                                                    x.dtype),
                      _lse_vjp, _lse_jvp, saves=(0,), save_out=True)


def _float(x):
    x = x if isinstance(x, Tensor) else const(x)
    return x if x.dtype.kind == "f" else ew.cast(x, np.float64)


def softmax(x, dim=-1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed without overflow."""
    x = _float(x)
    return bind(P_softmax, x, axis=norm_axis(dim, x.ndim, "softmax"))


def log_softmax(x, dim=-1) -> Tensor:
    """log(softmax(x)) along ``dim``: finite for finite inputs, exact for large logits."""
    x = _float(x)
    return bind(P_log_softmax, x, axis=norm_axis(dim, x.ndim, "log_softmax"))


def logsumexp(x, dim=None, keepdim=False) -> Tensor:
    """log(sum(exp(x))) over ``dim``; an all -inf slice gives -inf and a zero gradient."""
    x = _float(x)
    return bind(P_logsumexp, x, axis=norm_axis(dim, x.ndim, "logsumexp"),
                keepdims=bool(keepdim))
