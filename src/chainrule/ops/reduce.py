"""Reduction primitives (sum, amax, amin, prod, argmax, argmin, cumsum) and the
reductions composed from them (mean, var, std, norm, max, min)."""
from __future__ import annotations

import builtins
from collections import namedtuple

import numpy as np

from .. import backend
from ..core.dispatch import bind
from ..core.primitive import defprim
from ..core.tensor import Tensor
from . import elementwise as ew
from ._util import const, norm_axis, per_batch, reduced_shape


def _reduce_rule(impl):
    def rule(x, *, axis, keepdims):
        dtype = impl(np.ones((1,) * builtins.max(x.ndim, 1), x.dtype)).dtype
        return reduced_shape(x.shape, axis, keepdims), dtype
    return rule


def _keep(g, x_ndim, axis, keepdims):
    """``g`` reshaped so the reduced axes are present with size 1."""
    if keepdims or axis == ():
        return g
    axes = range(x_ndim) if axis is None else axis
    shape = list(g.shape)
    for a in sorted(axes):
        shape.insert(a, 1)
    return mv.reshape(g, tuple(shape))


def _spread(g, x, axis, keepdims):
    return mv.broadcast_to(_keep(g, x.ndim, axis, keepdims), x.shape)


_BLAS = (np.dtype(np.float32), np.dtype(np.float64))
ROW_MAX = 4096  # longer rows keep NumPy's pairwise sum (BLAS sums in SIMD lanes)


def along_rows(x, axis) -> bool:
    """Whether ``axis`` is the last axis of a C-ordered batch of rows (2 or more axes)."""
    return axis == (x.ndim - 1,) and x.ndim >= 2 and x.flags.c_contiguous


def add_reduce(x, axis, keepdims, out=None):
    """``np.add.reduce``; over the last axis of C-ordered float32/64 rows (at least 8 of
    them, at most ``ROW_MAX`` long), one BLAS gemv ``x @ ones``, as ``linear`` sums its
    bias gradient: NumPy loops row by row (LayerNorm's (2048, 128) rows: 95 us reduced,
    20 us as a product; a (2048, 10) row sum: 40 and 5 us). ``sum``, its compiled form
    and the softmax family sum through here, so they all round alike."""
    n = x.shape[-1] if x.ndim else 0
    if not (along_rows(x, axis) and 0 < n <= ROW_MAX and x.size >= 8 * n
            and x.dtype in _BLAS):
        return np.add.reduce(x, axis=axis, keepdims=keepdims, out=out)
    shape = x.shape[:-1] + ((1,) if keepdims else ())
    flat = None if out is None or not out.flags.c_contiguous else out.reshape(-1)
    r = np.matmul(x.reshape(-1, n), per_batch("ones", n, x.dtype), out=flat).reshape(shape)
    if out is None:
        return r
    if flat is None:  # (a given array that is not C-ordered)
        np.copyto(out, r)
    return out


# Impls call ufunc.reduce directly: np.sum/np.max add ~1 us of Python wrapper per call.
P_sum = defprim("sum", lambda x, *, axis, keepdims: add_reduce(x, axis, keepdims),
                _reduce_rule(np.sum),
                lambda g, out, x, *, axis, keepdims: (_spread(g, x, axis, keepdims),),
                lambda t, out, x, *, axis, keepdims: sum(t[0], axis, keepdims))


def _extreme_weights(out, x, axis, keepdims):
    """Where ``x`` attains the extreme, 1/count; elsewhere 0 (ties share equally)."""
    hit = ew.cast(ew.eq(x, _spread(out, x, axis, keepdims)), x.dtype)
    return ew.div(hit, sum(hit, axis, True))


def _extreme_vjp(g, out, x, *, axis, keepdims):
    """``g`` shared equally by the elements that attain the extreme, ``g / count``
    divided at the reduced size (max pooling's backward: one full-size division fewer
    than ``g * (hit / count)``)."""
    hit = ew.cast(ew.eq(x, _spread(out, x, axis, keepdims)), x.dtype)
    share = ew.div(_keep(g, x.ndim, axis, keepdims), sum(hit, axis, True))
    return (ew.mul(mv.broadcast_to(share, x.shape), hit),)


def _extreme_row(name, fn):
    return defprim(
        name, fn, _reduce_rule(fn), _extreme_vjp,
        lambda t, out, x, *, axis, keepdims: sum(
            ew.mul(t[0], _extreme_weights(out, x, axis, keepdims)), axis, keepdims),
        saves=(0,), save_out=True)


P_amax = _extreme_row("amax", np.maximum.reduce)
P_amin = _extreme_row("amin", np.minimum.reduce)


def _prod_others(out, x, axis, keepdims):
    """For every element, the product of the other elements reduced with it.

    ``out / x`` where x != 0; at a zero, the product of the slice's non-zeros if it is
    the slice's only zero, else 0. Written in chainrule ops, so it is differentiable
    again (exactly, for slices with at most one zero).
    """
    out_b = _spread(out, x, axis, keepdims)
    zero = ew.eq(x, 0)
    if isinstance(zero.data, np.ndarray) and not np.any(zero.data):  # else: traced
        return ew.div(out_b, x)
    safe = ew.where(zero, 1, x)
    nonzeros = mv.broadcast_to(prod(safe, axis, keepdim=True), x.shape)
    single = ew.eq(sum(ew.cast(zero, x.dtype), axis, True), 1)
    at_zero = ew.where(single, nonzeros, 0)
    return ew.where(zero, at_zero, ew.div(out_b, safe))


P_prod = defprim("prod", np.multiply.reduce, _reduce_rule(np.prod),
                 lambda g, out, x, *, axis, keepdims: (
                     ew.mul(_spread(g, x, axis, keepdims), _prod_others(out, x, axis, keepdims)),),
                 lambda t, out, x, *, axis, keepdims: sum(
                     ew.mul(t[0], _prod_others(out, x, axis, keepdims)), axis, keepdims),
                 saves=(0,), save_out=True)


def _arg_row(name, fn):
    def impl(x, *, axis, keepdims):
        return np.asarray(fn(x, axis=axis, keepdims=keepdims), dtype=np.int64)

    def rule(x, *, axis, keepdims):
        ax = None if axis is None else (axis,)
        shape = reduced_shape(x.shape, ax, keepdims) if axis is not None else \
            ((1,) * x.ndim if keepdims else ())
        return shape, backend.int64
    return defprim(name, impl, rule)


P_argmax = _arg_row("argmax", np.argmax)
P_argmin = _arg_row("argmin", np.argmin)


def _cumsum_vjp(g, out, x, *, axis):
    return (mv.flip(cumsum(mv.flip(g, axis), axis), axis),)


P_cumsum = defprim("cumsum", lambda x, *, axis: np.cumsum(x, axis=axis) if x.ndim else x.copy(),
                   lambda x, *, axis: (x.shape, np.cumsum(np.ones(1, x.dtype)).dtype),
                   _cumsum_vjp,
                   lambda t, out, x, *, axis: cumsum(t[0], axis))

# ---------------------------------------------------------------- public ops


def _axis(x, dim, axis, op):
    return norm_axis(dim if axis is None else axis, x.ndim, op)


def _t(x):
    return x if isinstance(x, Tensor) else const(x)


def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:
    """Sum over ``dim`` (all dims when None); ``keepdim`` keeps them with size 1."""
    x = _t(x)
    return bind(P_sum, x, axis=_axis(x, dim, axis, "sum"),
                keepdims=bool(keepdim if keepdims is None else keepdims))


def _count(x, axes):
    return int(np.prod([x.shape[a] for a in (range(x.ndim) if axes is None else axes)]))


def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:
    """Arithmetic mean over ``dim``."""
    x = _t(x)
    if x.dtype.kind != "f":
        x = ew.cast(x, backend.float64)
    axes = _axis(x, dim, axis, "mean")
    s = bind(P_sum, x, axis=axes, keepdims=bool(keepdim if keepdims is None else keepdims))
    n = _count(x, axes)
    return ew.mul(s, 1.0 / n) if n else ew.div(s, n)  # a multiply: one op in backward


def var(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None,
        keepdims=None) -> Tensor:
    """Variance over ``dim`` with Bessel's correction by default (as PyTorch)."""
    x = _t(x)
    if unbiased is not None:
        correction = int(unbiased)
    axes = _axis(x, dim, axis, "var")
    kd = bool(keepdim if keepdims is None else keepdims)
    d = ew.sub(x, mean(x, axes, True))
    return ew.div(sum(ew.mul(d, d), axes, kd), builtins.max(_count(x, axes) - correction, 0))


def std(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=None,
        keepdims=None) -> Tensor:
    """Standard deviation: ``sqrt(var(...))``."""
    v = var(x, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis,
            keepdims=keepdims)
    return _safe_root(v, ew.sqrt)


def _safe_root(s, root):
    """root(s), with a zero (not nan) gradient where s == 0: the double-where trick."""
    zero = ew.eq(s, 0)
    return ew.where(zero, 0, root(ew.where(zero, 1, s)))


def norm(x, p=2, dim=None, keepdim=False) -> Tensor:
    """Vector p-norm over ``dim`` (all elements when None): p = 2, 1, 0, ±inf or any float.

    The gradient at an all-zero slice is 0 (as in PyTorch), not nan: the root is taken
    of a sum that is replaced by 1 where it is 0 (the double-where trick).
    """
    x = _t(x)
    if p == 1:
        return sum(ew.abs(x), dim, keepdim)
    if p == float("inf"):
        return amax(ew.abs(x), dim, keepdim)
    if p == float("-inf"):
        return amin(ew.abs(x), dim, keepdim)
    if p == 0:  # the number of non-zeros; its gradient is zero (sign has a zero vjp)
        return sum(ew.sign(ew.abs(x)), dim, keepdim)
    if p == 2 or p == "fro":
        return _safe_root(sum(ew.mul(x, x), dim, keepdim), ew.sqrt)
    return _safe_root(sum(ew.pow(ew.abs(x), p), dim, keepdim), lambda s: ew.pow(s, 1.0 / p))


def amax(x, dim=None, keepdim=False) -> Tensor:
    """Maximum over ``dim``; tied maxima share the gradient equally."""
    x = _t(x)
    return bind(P_amax, x, axis=norm_axis(dim, x.ndim, "amax"), keepdims=bool(keepdim))


def amin(x, dim=None, keepdim=False) -> Tensor:
    """Minimum over ``dim``; tied minima share the gradient equally."""
    x = _t(x)
    return bind(P_amin, x, axis=norm_axis(dim, x.ndim, "amin"), keepdims=bool(keepdim))


def prod(x, dim=None, keepdim=False) -> Tensor:
    """Product over ``dim``; exact gradients also where elements are zero."""
    x = _t(x)
    return bind(P_prod, x, axis=norm_axis(dim, x.ndim, "prod"), keepdims=bool(keepdim))


def _single_axis(x, dim, op):
    if dim is None:
        return None
    return norm_axis(dim, x.ndim, op)[0] if x.ndim else None


def argmax(x, dim=None, keepdim=False) -> Tensor:
    """Index of the maximum (of the flattened tensor when ``dim`` is None)."""
    x = _t(x)
    return bind(P_argmax, x, axis=_single_axis(x, dim, "argmax"), keepdims=bool(keepdim))


def argmin(x, dim=None, keepdim=False) -> Tensor:
    """Index of the minimum (of the flattened tensor when ``dim`` is None)."""
    x = _t(x)
    return bind(P_argmin, x, axis=_single_axis(x, dim, "argmin"), keepdims=bool(keepdim))


MinMax = namedtuple("MinMax", ["values", "indices"])


def _minmax(x, dim, keepdim, other, arg, extreme, pairwise):
    x = _t(x)
    if isinstance(dim, Tensor):
        return pairwise(x, dim)
    if other is not None:
        return pairwise(x, other)
    if dim is None:
        return extreme(x)
    if x.ndim == 0:
        norm_axis(dim, 0, "max")
        return MinMax(x, Tensor(np.zeros((), np.int64)))
    idx = arg(x, dim, keepdim=True)
    values = ix.take_along(x, idx, dim)
    if not keepdim:
        values, idx = mv.squeeze(values, dim), mv.squeeze(idx, dim)
    return MinMax(values, idx)


def max(x, dim=None, keepdim=False, *, other=None):
    """``max(x)``: the maximum; ``max(x, dim)``: (values, indices) with the gradient at the
    index, as PyTorch; ``max(x, y)``: elementwise maximum."""
    return _minmax(x, dim, keepdim, other, argmax, amax, ew.maximum)


def min(x, dim=None, keepdim=False, *, other=None):
    """``min(x)``, ``min(x, dim)`` -> (values, indices), or elementwise ``min(x, y)``."""
    return _minmax(x, dim, keepdim, other, argmin, amin, ew.minimum)


def cumsum(x, dim=None, *, axis=None) -> Tensor:
    """Cumulative sum along ``dim``."""
    x = _t(x)
    d = dim if axis is None else axis
    if d is None:
        raise TypeError("cumsum: dim is required")
    return bind(P_cumsum, x, axis=norm_axis(d, x.ndim, "cumsum")[0] if x.ndim else 0)

from . import movement as mv  # noqa: E402  (movement's rules use this module's ops)
from . import indexing as ix  # noqa: E402
