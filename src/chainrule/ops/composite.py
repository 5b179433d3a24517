"""Ops composed from primitives: activations and losses, written to stay finite.

Each function here is plain chainrule code; its gradient (and forward-mode
derivative) comes from the primitives it uses.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.dispatch import bind
from ..core.tensor import Tensor
from . import elementwise as ew
from . import indexing as ix
from . import movement as mv
from . import reduce as rd
from . import special as sp
from ._util import const, scalar


def _f(x):
    return x if isinstance(x, Tensor) else const(x)


def square(x) -> Tensor:
    """x * x."""
    x = _f(x)
    return ew.mul(x, x)


def reciprocal(x) -> Tensor:
    """1 / x."""
    return ew.div(1, _f(x))


def rsqrt(x) -> Tensor:
    """1 / sqrt(x)."""
    return ew.div(1, ew.sqrt(_f(x)))


def clamp(x, min=None, max=None) -> Tensor:
    """Limit ``x`` to [min, max]; the gradient passes where min <= x <= max."""
    x = _f(x)
    if min is not None:
        lo = min if isinstance(min, Tensor) else scalar(min, np.result_type(x.data, min))
        x = ew.where(ew.lt(x, lo), lo, x)
    if max is not None:
        hi = max if isinstance(max, Tensor) else scalar(max, np.result_type(x.data, max))
        x = ew.where(ew.gt(x, hi), hi, x)
    return x


clip = clamp


def softplus(x, beta=1.0, threshold=None) -> Tensor:
    """log(1 + exp(beta x)) / beta, exact for all inputs; with ``threshold`` (PyTorch's
    option) it returns x where beta x > threshold."""
    x = _f(x)
    bx = x if beta == 1 else ew.mul(x, beta)
    out = ew.softplus_(bx)
    if beta != 1:
        out = ew.div(out, beta)
    return out if threshold is None else ew.where(ew.gt(bx, threshold), x, out)


def log_sigmoid(x) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x): finite for all finite x."""
    return ew.neg(softplus(ew.neg(_f(x))))


logsigmoid = log_sigmoid


def silu(x) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    x = _f(x)
    return ew.mul(x, ew.sigmoid(x))


def gelu(x, approximate="none") -> Tensor:
    """Gaussian error linear unit: exact (erf) or the tanh approximation."""
    x = _f(x)
    if approximate == "tanh":
        inner = ew.mul(ew.add(x, ew.mul(ew.mul(ew.mul(x, x), x), 0.044715)),
                       math.sqrt(2.0 / math.pi))
        return ew.mul(ew.mul(x, 0.5), ew.add(ew.tanh(inner), 1))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return ew.mul(ew.mul(x, 0.5), ew.add(ew.erf(ew.mul(x, 1 / math.sqrt(2.0))), 1))


def _xmul(a, b):
    """a * b, but 0 where a == 0 and b is infinite: the limit a loss needs."""
    return ew.where(ew.logical_and(ew.eq(a, 0), ew.isinf(b)), scalar(0, b.dtype), ew.mul(a, b))


def _reduce(loss, reduction, op):
    if reduction == "mean":
        return rd.mean(loss)
    if reduction == "sum":
        return rd.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(x, y, op):
    if x.shape != y.shape:
        raise ValueError(f"{op}: input shape {tuple(x.shape)} and target shape "
                         f"{tuple(y.shape)} differ")


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None) -> Tensor:
    """-[y log sigmoid(x) + (1-y) log(1-sigmoid(x))], from logits, stable for any x.

    Written as (1-y) softplus(x) + pos_weight y softplus(-x) with strong zeros, so
    x = ±inf gives the right limits (0 when the label agrees) and the gradient
    sigmoid(x) - y stays finite.
    """
    x, y = _f(input), _f(target)
    _same_shape(x, y, "binary_cross_entropy_with_logits")
    y = ew.cast(y, x.dtype)
    pos = y if pos_weight is None else ew.mul(y, pos_weight)
    loss = ew.add(_xmul(ew.sub(1, y), softplus(x)), _xmul(pos, softplus(ew.neg(x))))
    if weight is not None:
        loss = ew.mul(loss, weight)
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def binary_cross_entropy(input, target, weight=None, reduction="mean") -> Tensor:
    """BCE on probabilities; logs are clamped at -100 as in PyTorch."""
    p, y = _f(input), _f(target)
    _same_shape(p, y, "binary_cross_entropy")
    y = ew.cast(y, p.dtype)
    lp = ew.maximum(ew.log(p), -100.0)
    lq = ew.maximum(ew.log(ew.sub(1, p)), -100.0)
    loss = ew.neg(ew.add(ew.mul(y, lp), ew.mul(ew.sub(1, y), lq)))
    if weight is not None:
        loss = ew.mul(loss, weight)
    return _reduce(loss, reduction, "binary_cross_entropy")


def _targets(target, logp, ignore_index, op):
    """Class targets as an int64 tensor, checked against the input's shape; returns
    (targets with ignored entries set to 0, mask of the valid entries)."""
    tgt = ix._index(target, op)
    want = logp.shape[:1] + logp.shape[2:]
    if tuple(tgt.shape) != want:
        raise ValueError(f"{op}: target shape {tuple(tgt.shape)} does not match input shape "
                         f"{tuple(logp.shape)} (expected {want})")
    d = tgt.data
    if d.__class__ is np.ndarray:  # known values (not under jit): check the range
        n_cls = logp.shape[1]
        lo, hi = (int(d.min()), int(d.max())) if d.size else (0, -1)
        if 0 <= lo and hi < n_cls and not lo <= ignore_index <= hi:
            return tgt, None  # every target is a class and none is ignored: no mask
        live = d[d != ignore_index]
        if live.size and (live.min() < 0 or live.max() >= n_cls):
            raise IndexError(f"{op}: target values must be in [0, {n_cls}) or "
                             f"{ignore_index} (ignore_index), got [{live.min()}, {live.max()}]")
        if live.size == d.size:
            return tgt, None
    valid = ew.ne(tgt, ignore_index)
    return ew.where(valid, tgt, 0), valid


def _target_weights(tgt, valid, weight, dtype):
    """Per-target weights: the class weight (or 1), 0 where ignored; None if all 1."""
    w = None if weight is None else ix.take(ew.cast(_f(weight), dtype), tgt)
    if valid is not None:
        v = ew.cast(valid, dtype)
        w = v if w is None else ew.mul(w, v)
    return w


def _weighted(loss, w, reduction, op):
    if w is None:
        return _reduce(loss, reduction, op)
    loss = ew.mul(loss, w)
    if reduction == "mean":
        return ew.div(rd.sum(loss), rd.sum(w))
    return _reduce(loss, reduction, op)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean") -> Tensor:
    """Negative log-likelihood of class indices; ``input`` is (N, C, ...) log-probabilities."""
    logp = _f(input)
    if logp.ndim == 1:  # unbatched: (C,) with a 0-d target
        tgt = ix._index(target, "nll_loss")
        loss = nll_loss(mv.unsqueeze(logp, 0), mv.unsqueeze(tgt, 0), weight, ignore_index,
                        reduction)
        return mv.squeeze(loss, 0) if reduction == "none" else loss
    tgt, valid = _targets(target, logp, ignore_index, "nll_loss")
    n = logp.shape[0]
    if weight is None and valid is None and logp.ndim == 2 and n and \
            reduction in ("mean", "sum"):
        # every target is a class (checked): the (N, 1) picks summed as they are, times
        # -1/N (the mean's multiply and the sign in one, exactly): three ops fewer each way
        total = rd.sum(bind(ix.P_take_along, logp, mv.unsqueeze(tgt, 1), axis=1))
        return ew.mul(total, -1.0 / n) if reduction == "mean" else ew.neg(total)
    picked = mv.squeeze(ix.take_along(logp, mv.unsqueeze(tgt, 1), 1), 1)  # (N, ...)
    return _weighted(ew.neg(picked), _target_weights(tgt, valid, weight, logp.dtype),
                     reduction, "nll_loss")


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0) -> Tensor:
    """Softmax cross-entropy from logits (N, C, ...), with class-index or probability
    targets, class weights, ``ignore_index`` and label smoothing, as PyTorch."""
    x, tgt = _f(input), _f(target)
    if x.ndim == 1:  # unbatched (C,): a batch of one, squeezed back for 'none'
        loss = cross_entropy(mv.unsqueeze(x, 0), mv.unsqueeze(tgt, 0), weight, ignore_index,
                             reduction, label_smoothing)
        return mv.squeeze(loss, 0) if reduction == "none" else loss
    if tgt.dtype.kind != "f" and x.ndim == 2 and weight is None and not label_smoothing \
            and reduction in ("mean", "sum") and x.shape[0]:
        classes, valid = _targets(tgt, x, ignore_index, "cross_entropy")
        if valid is None:  # every target is a class (checked): the fused row
            return bind(sp.P_xent, x, classes, scale=-1.0 / x.shape[0] if reduction == "mean"
                        else -1.0)
    logp = sp.log_softmax(x, 1)
    n_cls = x.shape[1]
    class_shape = (n_cls,) + (1,) * (x.ndim - 2)  # class weights broadcast over (N, C, ...)
    if tgt.dtype.kind == "f":  # class probabilities
        _same_shape(x, tgt, "cross_entropy")
        if label_smoothing:
            tgt = ew.add(ew.mul(tgt, 1 - label_smoothing), label_smoothing / n_cls)
        terms = ew.mul(logp, tgt)
        if weight is not None:
            terms = ew.mul(terms, mv.reshape(_f(weight), class_shape))
        return _reduce(ew.neg(rd.sum(terms, 1)), reduction, "cross_entropy")
    nll = nll_loss(logp, tgt, weight, ignore_index, reduction)
    if not label_smoothing:
        return nll
    safe, valid = _targets(tgt, logp, ignore_index, "cross_entropy")
    lp = logp if weight is None else ew.mul(logp, mv.reshape(_f(weight), class_shape))
    smooth = ew.neg(rd.sum(lp, 1))
    if valid is not None:
        smooth = ew.mul(smooth, ew.cast(valid, logp.dtype))
    if reduction == "mean":
        w = _target_weights(safe, valid, weight, logp.dtype)
        denom = rd.sum(w) if w is not None else float(smooth.numel())
        smooth = ew.div(rd.sum(smooth), denom)
    else:
        smooth = _reduce(smooth, reduction, "cross_entropy")
    return ew.add(ew.mul(nll, 1 - label_smoothing), ew.mul(smooth, label_smoothing / n_cls))


def mse_loss(input, target, reduction="mean") -> Tensor:
    """Mean squared error (or its sum, or per element with ``reduction="none"``)."""
    d = ew.sub(_f(input), _f(target))
    return _reduce(ew.mul(d, d), reduction, "mse_loss")


def l1_loss(input, target, reduction="mean") -> Tensor:
    """Mean absolute error (or its sum, or per element with ``reduction="none"``)."""
    return _reduce(ew.abs(ew.sub(_f(input), _f(target))), reduction, "l1_loss")
