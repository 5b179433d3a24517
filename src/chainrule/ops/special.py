"""Softmax, log-softmax and logsumexp: primitives of their own because the composed
forms overflow or give NaN (see the module tests): every finite input gives finite
values and gradients, and ±inf give the mathematical limits. Softmax cross-entropy with
class targets is one too, for speed (see below)."""
from __future__ import annotations

import numpy as np

from ..core.dispatch import bind
from ..core.primitive import defprim
from ..core.tensor import Tensor
from . import elementwise as ew
from . import reduce as rd
from ._util import const, norm_axis, per_batch, reduced_shape, scalar


# NumPy's overflow/invalid warnings from these kernels are silenced by the package-wide
# filter (chainrule/__init__.py); the results below are the mathematical limits.

def _row_max(x, axis):
    """``np.maximum.reduce`` over ``axis``, keeping it. A short last axis of many rows
    (class logits) is reduced over a transposed copy, whose inner loop runs across the
    rows: NumPy's loop along a row of 10 costs more per row than the work (row max of
    (128, 10) float32: 6.5 us, 2.2 us so; (2048, 10): 88 and 14 us)."""
    if rd.along_rows(x, axis) and x.shape[-1] <= 32 and x.size >= 16 * x.shape[-1]:
        t = x.T if x.ndim == 2 else x.transpose((x.ndim - 1,) + tuple(range(x.ndim - 1)))
        return np.maximum.reduce(np.ascontiguousarray(t), axis=0)[..., None]
    return np.maximum.reduce(x, axis=axis, keepdims=True)


def _shift(x, axis):
    """(max along ``axis``, the shift: the max where finite, else 0, whether all finite)."""
    m = _row_max(x, axis)
    finite = np.isfinite(m)
    if finite.all():
        return m, m, True
    return m, np.where(finite, m, 0), False


def _softmax_impl(x, *, axis):
    if x.size == 0:
        return x.copy()
    m, shift, finite = _shift(x, axis)
    e = np.exp(x - shift)
    s = e / rd.add_reduce(e, axis, True)
    top = None if finite else np.equal(m, np.inf)  # (np.isposinf's wrapper: 2 us a call)
    if top is not None and top.any():  # limit: mass shared by the +inf entries
        hit = np.isposinf(x)
        s = np.where(top, hit / np.add.reduce(hit, axis=axis, keepdims=True), s)
    return s.astype(x.dtype, copy=False)


def _lse_impl(x, *, axis, keepdims):
    if x.size == 0:
        return np.asarray(np.logaddexp.reduce(x, axis=axis, keepdims=keepdims))
    _, shift, _ = _shift(x, axis)
    out = np.log(rd.add_reduce(np.exp(x - shift), axis, True)) + shift
    out = out.astype(x.dtype, copy=False)
    return out if keepdims else np.squeeze(out, axis=axis)


def _log_softmax_impl(x, *, axis):
    if x.size == 0:
        return x.copy()
    m, shift, finite = _shift(x, axis)  # (x - max) - log(sum(exp(x - max))), as PyTorch
    out = x - shift
    out -= np.log(rd.add_reduce(np.exp(out), axis, True))
    top = None if finite else np.equal(m, np.inf)
    if top is not None and top.any():
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


# Softmax cross-entropy with class targets, as ``cross_entropy`` calls it for (N, C)
# logits without weights or ignored targets: ``scale * sum_i log_softmax(x)[i, t_i]``
# (scale -1/N for the mean, -1 for the sum). One row each way instead of the ~15 small
# ops of its composed form (log_softmax, gather, sum, scale and their vjps): on
# MLP-sized logits those cost more in Python than the arithmetic. Its vjp is the row
# ``cross_entropy_grad``, (softmax(x) - onehot(t)) * -(g * scale), whose own rules are
# composed of ops, so every order differentiates. Both give the composed form's numbers
# bit for bit (the same NumPy operations in the same order).

def _picked(logp, t):
    return logp[per_batch("rows", t.size, np.intp), t]  # (np.take_along_axis: 4x slower)


def _xent_impl(x, t, *, scale):
    return np.multiply(np.add.reduce(_picked(_log_softmax_impl(x, axis=(1,)), t), axis=None),
                       x.dtype.type(scale))


def _xent_grad_impl(x, t, g, *, scale):
    c = np.negative(np.multiply(g, x.dtype.type(scale)))
    out = np.exp(_log_softmax_impl(x, axis=(1,)))
    out *= c
    out[per_batch("rows", t.size, np.intp), t] -= c  # (one target per row)
    return out


def _xent_vjp(g, out, x, t, *, scale):
    return bind(P_xent_grad, x, t, g, scale=scale), None


def _xent_jvp(tan, out, x, t, *, scale):
    return rd.sum(ew.mul(_xent_slope(x, t, scale), tan[0]))


def _xent_slope(x, t, scale):
    """d loss / d x: cross_entropy_grad at a unit cotangent."""
    return bind(P_xent_grad, x, t, scalar(1, x.dtype), scale=scale)


def _xent_grad_vjp(u, out, x, t, g, *, scale):
    gx = None
    if x.requires_grad:  # the softmax's vjp, times -(g * scale)
        gx = ew.mul(_softmax_vjp(u, bind(P_softmax, x, axis=(1,)), x, axis=(1,))[0],
                    ew.mul(g, -scale))
    gg = rd.sum(ew.mul(_xent_slope(x, t, scale), u)) if g.requires_grad else None
    return gx, None, gg


def _xent_grad_jvp(tan, out, x, t, g, *, scale):
    return ew._plus(
        None if tan[0] is None else ew.mul(
            _softmax_jvp((tan[0],), bind(P_softmax, x, axis=(1,)), x, axis=(1,)),
            ew.mul(g, -scale)),
        None if tan[2] is None else bind(P_xent_grad, x, t, tan[2], scale=scale))


P_xent = defprim("cross_entropy", _xent_impl, lambda x, t, *, scale: ((), x.dtype),
                 _xent_vjp, _xent_jvp, saves=(0, 1))
P_xent_grad = defprim("cross_entropy_grad", _xent_grad_impl,
                      lambda x, t, g, *, scale: (x.shape, x.dtype),
                      _xent_grad_vjp, _xent_grad_jvp, saves=(0, 1, 2))


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
