"""Elementwise primitives: one row each (impl, shape rule, vjp, jvp), then the public ops.

Rules whose local derivative can be infinite (log at 0, sqrt at 0, exp overflow,
division by 0, pow) use *strong zeros*: where the incoming cotangent is exactly
0 the input gets exactly 0, never ``0 * inf = nan`` (see ``_strong``). This is what keeps the
gradient of ``where(c, a, b)`` free of NaN/Inf from the branch it did not select.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..core import dispatch
from ..core.dispatch import _interpreters, bind
from ..core.primitive import defprim
from ..core.tensor import TENSOR_TYPES as _TENSOR_TYPES, Tensor
from ._erf import erf as _erf
from ._util import broadcast_rule, const, scalar


def _plus(*terms):
    """Sum of tangent terms, skipping None (zero) ones."""
    out = None
    for t in terms:
        if t is not None:
            out = t if out is None else add(out, t)
    return out


def _zero(x):
    return scalar(0, x.dtype)


def _one(x):
    return scalar(1, x.dtype)


def _strong(p, g):
    """``p`` (= g * d or g / d) with 0 wherever it is nan because g == 0 (0 * inf, 0 / 0).

    Still linear in ``g`` wherever the local derivative is finite, so second
    derivatives taken through the cotangent stay exact.
    """
    return where(logical_and(isnan(p), eq(g, _zero(g))), _zero(p), p)


def _smul(g, d):
    """g * d with strong zeros."""
    return _strong(mul(g, d), g)


def _sdiv(g, d):
    """g / d with strong zeros."""
    return _strong(div(g, d), g)


def _mask(cond, g):
    if not (g.requires_grad or _interpreters) and cond.shape == g.shape:
        return bind(P_where, cond, g, _zero(g))  # (a plain backward: nothing to broadcast)
    return where(cond, g, _zero(g))


def _unary(name, impl, vjp, jvp, **flags):
    return defprim(name, impl, broadcast_rule(impl), vjp, jvp, **flags)


def _sigmoid_impl(x):
    e = np.exp(-np.abs(x))
    r = 1.0 / (1.0 + e)
    return np.where(x >= 0, r, e * r).astype(x.dtype, copy=False)


_TWO_OVER_SQRT_PI = float(2.0 / np.sqrt(np.pi))  # a Python float: weak in promotion

# ------------------------------------------------------------------ unary rows
# name       impl          vjp(g, out, x)                               jvp((t,), out, x)
P_neg = _unary("neg", np.negative,
               lambda g, out, x: (neg(g),),
               lambda t, out, x: neg(t[0]))
P_exp = _unary("exp", np.exp,
               lambda g, out, x: (_smul(g, out),),
               lambda t, out, x: mul(t[0], out), save_out=True)
P_log = _unary("log", np.log,
               lambda g, out, x: (_sdiv(g, x),),
               lambda t, out, x: div(t[0], x), saves=(0,))
P_log1p = _unary("log1p", np.log1p,
                 lambda g, out, x: (_sdiv(g, add(x, 1)),),
                 lambda t, out, x: div(t[0], add(x, 1)), saves=(0,))
P_expm1 = _unary("expm1", np.expm1,
                 lambda g, out, x: (_smul(g, add(out, 1)),),
                 lambda t, out, x: mul(t[0], add(out, 1)), save_out=True)
P_sqrt = _unary("sqrt", np.sqrt,
                lambda g, out, x: (_sdiv(g, mul(out, 2)),),
                lambda t, out, x: div(t[0], mul(out, 2)), save_out=True)
P_sin = _unary("sin", np.sin,
               lambda g, out, x: (mul(g, cos(x)),),
               lambda t, out, x: mul(t[0], cos(x)), saves=(0,))
P_cos = _unary("cos", np.cos,
               lambda g, out, x: (neg(mul(g, sin(x))),),
               lambda t, out, x: neg(mul(t[0], sin(x))), saves=(0,))
P_tanh = _unary("tanh", np.tanh,
                lambda g, out, x: (mul(g, sub(_one(out), mul(out, out))),),
                lambda t, out, x: mul(t[0], sub(_one(out), mul(out, out))), save_out=True)
P_sigmoid = _unary("sigmoid", _sigmoid_impl,
                   lambda g, out, x: (mul(g, mul(out, sub(_one(out), out))),),
                   lambda t, out, x: mul(t[0], mul(out, sub(_one(out), out))), save_out=True)
P_softplus = _unary("softplus",  # own row: exact for all x, and softplus'' = sigmoid' at 0
                    lambda x: (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(
                        x.dtype, copy=False),
                    lambda g, out, x: (mul(g, sigmoid(x)),),
                    lambda t, out, x: mul(t[0], sigmoid(x)), saves=(0,))
P_abs = _unary("abs", np.abs,
               lambda g, out, x: (mul(g, sign(x)),),
               lambda t, out, x: mul(t[0], sign(x)), saves=(0,))
P_sign = _unary("sign", np.sign,
                lambda g, out, x: (mul(g, _zero(g)),),
                lambda t, out, x: mul(t[0], _zero(t[0])))


def _as_row(s, x):
    """The scalar ``s`` (0-d, or broadcast: all strides 0) as one line of ``x`` along its
    contiguous axis (the last, or the first of an F-ordered ``x``), when that line is
    long: NumPy's maximum and minimum run their SIMD loop for two arrays but not for an
    array and a scalar (3x slower here). Against a row along the last axis of an
    F-ordered ``x`` NumPy walks ``x`` across its memory: relu of a (128, 512) F-ordered
    activation out of cache takes 62 us so and 54 us with a column (in cache: 15.8, 14.4)."""
    f = x.ndim >= 2 and x.flags.f_contiguous and not x.flags.c_contiguous
    n = x.shape[0 if f else -1] if x.ndim else 0
    if n >= 16 and s.dtype == x.dtype and s.size and not any(s.strides) \
            and (s.ndim == 0 or s.shape == x.shape):
        return np.full((n,) + (1,) * (x.ndim - 1) if f else n, s.flat[0], x.dtype)
    return s


def _minmax_impl(ufunc):
    return lambda a, b: ufunc(_as_row(a, b), _as_row(b, a))


P_relu = _unary("relu", lambda x: np.maximum(x, _as_row(x.dtype.type(0), x)),
                lambda g, out, x: (_mask(gt(out, 0), g),),
                lambda t, out, x: _mask(gt(out, 0), t[0]), save_out=True)
P_erf = _unary("erf", _erf,
               lambda g, out, x: (mul(g, mul(exp(neg(mul(x, x))), _TWO_OVER_SQRT_PI)),),
               lambda t, out, x: mul(t[0], mul(exp(neg(mul(x, x))), _TWO_OVER_SQRT_PI)),
               saves=(0,))


def _cast_vjp(g, out, x, *, dtype):
    return (cast(g, x.dtype) if x.dtype.kind == "f" else None,)


def _cast_jvp(t, out, x, *, dtype):
    return cast(t[0], dtype) if np.dtype(dtype).kind == "f" else None


P_cast = defprim("cast", lambda x, *, dtype: x.astype(dtype),
                 lambda x, *, dtype: (x.shape, np.dtype(dtype)), _cast_vjp, _cast_jvp)

# ----------------------------------------------------------------- binary rows
# Inputs that require grad always arrive with the output's shape and dtype (the
# public ops broadcast and cast them explicitly), so rules need no reductions.


def _rg(x):
    return x.requires_grad


def _div_vjp(g, out, a, b):
    ga = _sdiv(g, b)
    return ga, (neg(_smul(ga, out)) if _rg(b) else None)


def _dpow_da(a, b):
    """b * a**(b-1), and 0 where b == 0 (also at a == 0, where 0 * inf would be nan)."""
    d = b.data
    if not (_rg(b) or _interpreters) and d.size and not any(d.strides):
        # an exponent constant everywhere (a broadcast scalar) that no level varies
        # (no interpreter, no grad): x**3 -> 3 * x**2, with the exponent a scalar
        e = d.flat[0].item()
        if e != 0:
            return mul(b, pow(a, e - 1))
    return where(eq(b, _zero(b)), _zero(b), mul(b, pow(a, sub(b, _one(b)))))


def _pow_vjp(g, out, a, b):
    ga = _smul(g, _dpow_da(a, b)) if _rg(a) else None
    gb = None
    if _rg(b):
        zero_base = eq(a, 0)
        dlog = mul(out, log(where(zero_base, scalar(1, a.dtype), a)))
        gb = _smul(g, where(logical_and(zero_base, ge(b, 0)), _zero(out), dlog))
    return ga, gb


def _pow_jvp(t, out, a, b):
    ta = mul(t[0], _dpow_da(a, b)) if t[0] is not None else None
    tb = None
    if t[1] is not None:
        zero_base = eq(a, 0)
        tb = mul(t[1], mul(out, log(where(zero_base, scalar(1, a.dtype), a))))
    return _plus(ta, tb)


def _pick(win, tie, g):
    """``g`` where ``win``, ``g / 2`` where ``tie`` (ties share, as in PyTorch), else 0."""
    return where(win, g, where(tie, mul(g, 0.5), _zero(g)))


def _minmax_vjp(g, a, b, first):
    tie = eq(a, b)
    return (_pick(first(a, b), tie, g) if _rg(a) else None,
            _pick(first(b, a), tie, g) if _rg(b) else None)


def _minmax_jvp(t, a, b, first):
    tie = eq(a, b)
    return _plus(_pick(first(a, b), tie, t[0]) if t[0] is not None else None,
                 _pick(first(b, a), tie, t[1]) if t[1] is not None else None)


def _binary_row(name, impl, vjp, jvp, **flags):
    return defprim(name, impl, broadcast_rule(impl), vjp, jvp, **flags)


P_add = _binary_row("add", np.add,
                    lambda g, out, a, b: (g, g),
                    lambda t, out, a, b: _plus(t[0], t[1]))
P_sub = _binary_row("sub", np.subtract,
                    lambda g, out, a, b: (g, neg(g) if _rg(b) else None),
                    lambda t, out, a, b: _plus(t[0], neg(t[1]) if t[1] is not None else None))
P_mul = _binary_row("mul", np.multiply,
                    lambda g, out, a, b: (mul(g, b) if _rg(a) else None,
                                          mul(g, a) if _rg(b) else None),
                    lambda t, out, a, b: _plus(mul(t[0], b) if t[0] is not None else None,
                                               mul(a, t[1]) if t[1] is not None else None),
                    saves=(0, 1))
P_div = _binary_row("div", np.true_divide, _div_vjp,
                    lambda t, out, a, b: _plus(
                        div(t[0], b) if t[0] is not None else None,
                        neg(div(mul(t[1], out), b)) if t[1] is not None else None),
                    saves=(1,), save_out=True)


def _power(a, b):
    """``np.power``, with the scalar exponents 2 and 3 as products, as PyTorch does:
    NumPy's float power of a negative base takes a slow path (about 100x here). The
    exponent may be a scalar broadcast to the base's shape (all strides 0)."""
    if a.dtype.kind == "f" and b.size and not any(b.strides):
        e = b.flat[0]
        if e == 2:
            return np.multiply(a, a)
        if e == 3:
            return np.multiply(np.multiply(a, a), a)
    return np.power(a, b)


P_pow = _binary_row("pow", _power, _pow_vjp, _pow_jvp, saves=(0, 1), save_out=True)
P_maximum = _binary_row("maximum", _minmax_impl(np.maximum),
                        lambda g, out, a, b: _minmax_vjp(g, a, b, gt),
                        lambda t, out, a, b: _minmax_jvp(t, a, b, gt), saves=(0, 1))
P_minimum = _binary_row("minimum", _minmax_impl(np.minimum),
                        lambda g, out, a, b: _minmax_vjp(g, a, b, lt),
                        lambda t, out, a, b: _minmax_jvp(t, a, b, lt), saves=(0, 1))


def _where_vjp(g, out, c, a, b):
    z = _zero(g)
    return (None, where(c, g, z) if _rg(a) else None, where(c, z, g) if _rg(b) else None)


def _where_jvp(t, out, c, a, b):
    z = _zero(out)
    ta = t[1] if t[1] is not None else z
    tb = t[2] if t[2] is not None else z
    return where(c, ta, tb)


_INT = {4: np.int32, 8: np.int64}


def _where_impl(c, a, b):
    """np.where, branch-free for float32/64: ``b ^ ((a ^ b) & mask)`` on the bits.

    With a random mask np.where mispredicts branches and runs ~4x slower here (ReLU's
    backward is a where); the bit select is exact for every value, NaN and inf included.
    """
    u = _INT.get(a.dtype.itemsize) if a.dtype == b.dtype and a.dtype.kind == "f" else None
    if u is None or not (c.ndim or a.ndim or b.ndim):
        return np.where(c, a, b)
    # True -> all ones: a byte cast, then negated in place (10 us for 64K; 0 - c: 17 us)
    mask = c.astype(np.bool_, copy=False).view(np.uint8).astype(u)
    np.negative(mask, out=mask)
    if b.ndim == 0 and not b.view(u):  # where(c, a, +0.0): the masks of backward rules
        # (into the mask when that keeps NumPy's order for (c, a): F only if both are)
        out = mask if mask.shape == a.shape and (
            mask.flags.c_contiguous or a.flags.f_contiguous) else None
        return np.bitwise_and(a.view(u), mask, out=out).view(a.dtype)
    bits = np.bitwise_and(np.bitwise_xor(a.view(u), b.view(u)), mask)
    np.bitwise_xor(bits, b.view(u), out=bits)
    return bits.view(a.dtype)


P_where = defprim("where", _where_impl, broadcast_rule(np.where), _where_vjp, _where_jvp,
                  saves=(0,))

# ----------------------------------------------- comparisons and predicates (no grad)
_PREDICATES = {}
for _name, _fn in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                   ("logical_and", np.logical_and), ("logical_or", np.logical_or),
                   ("logical_not", np.logical_not), ("isnan", np.isnan),
                   ("isinf", np.isinf), ("isfinite", np.isfinite)]:
    _PREDICATES[_name] = defprim(_name, _fn, broadcast_rule(_fn))

# ---------------------------------------------------------------- public ops


def _prep(name, a, b):
    """Tensors of one dtype; inputs that require grad broadcast explicitly to the result."""
    if not isinstance(a, Tensor):
        a = const(a, b if isinstance(b, Tensor) else None)
    if not isinstance(b, Tensor):
        b = const(b, a)
    if a.data.dtype != b.data.dtype:
        dt = np.result_type(a.data.dtype, b.data.dtype)
        if a.data.dtype != dt:
            a = cast(a, dt)
        if b.data.dtype != dt:
            b = cast(b, dt)
    if a.data.shape != b.data.shape and (a.requires_grad or b.requires_grad
                                         or _interpreters):
        sa, sb = a.data.shape, b.data.shape
        try:  # common case first: one shape is a suffix of the other (a bias)
            shape = (sa if sa[len(sa) - len(sb):] == sb else sb if sb[len(sb) - len(sa):] == sa
                     else np.broadcast_shapes(sa, sb))
        except ValueError:
            raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot "
                             f"be broadcast together, at {dispatch.user_site()}") from None
        if a.data.shape != shape:
            a = mv.broadcast_to(a, shape)
        if b.data.shape != shape:
            b = mv.broadcast_to(b, shape)
    return a, b


def _binary(prim):
    def op(a, b):
        # fast path: tensors of one dtype that need no explicit broadcasting
        if a.__class__ in _TENSOR_TYPES and b.__class__ in _TENSOR_TYPES:
            ad, bd = a.data, b.data
            if ad.dtype == bd.dtype and (ad.shape == bd.shape or not (
                    a.requires_grad or b.requires_grad or _interpreters)):
                return bind(prim, a, b)
        a, b = _prep(prim.name, a, b)
        return bind(prim, a, b)
    op.__name__ = prim.name
    op.__doc__ = f"Elementwise ``{prim.name}`` with NumPy broadcasting and promotion."
    return op


def _unary_op(prim):
    def op(x):
        return bind(prim, x if isinstance(x, Tensor) else const(x))
    op.__name__ = prim.name
    op.__doc__ = f"Elementwise ``{prim.name}``."
    return op


add = _binary(P_add)
sub = _binary(P_sub)
mul = _binary(P_mul)
div = _binary(P_div)
pow = _binary(P_pow)
maximum = _binary(P_maximum)
minimum = _binary(P_minimum)
true_divide = divide = div
multiply = mul
subtract = sub

neg = _unary_op(P_neg)
exp = _unary_op(P_exp)
log = _unary_op(P_log)
log1p = _unary_op(P_log1p)
expm1 = _unary_op(P_expm1)
sqrt = _unary_op(P_sqrt)
sin = _unary_op(P_sin)
cos = _unary_op(P_cos)
tanh = _unary_op(P_tanh)
sigmoid = _unary_op(P_sigmoid)
abs = _unary_op(P_abs)
sign = _unary_op(P_sign)
relu = _unary_op(P_relu)
softplus_ = _unary_op(P_softplus)
erf = _unary_op(P_erf)
negative = neg


def _predicate(name, arity):
    prim = _PREDICATES[name]
    if arity == 1:
        def op(x):
            return bind(prim, x if isinstance(x, Tensor) else const(x))
    else:
        def op(a, b):
            if not isinstance(a, Tensor):
                a = const(a, b if isinstance(b, Tensor) else None)
            if not isinstance(b, Tensor):
                b = const(b, a)
            return bind(prim, a, b)
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` (boolean result, not differentiable)."
    return op


eq, ne, lt, le, gt, ge = (_predicate(n, 2) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
logical_and = _predicate("logical_and", 2)
logical_or = _predicate("logical_or", 2)
logical_not = _predicate("logical_not", 1)
isnan = _predicate("isnan", 1)
isinf = _predicate("isinf", 1)
isfinite = _predicate("isfinite", 1)


def cast(x, dtype) -> Tensor:
    """``x`` converted to ``dtype`` (differentiable between floating dtypes)."""
    dtype = backend.to_dtype(dtype)
    if x.data.dtype == dtype:
        return x
    return bind(P_cast, x, dtype=dtype)


def where(condition, a, b) -> Tensor:
    """``a`` where ``condition`` holds, else ``b``; its gradient never carries NaN/Inf
    from the branch that was not selected."""
    c = condition if isinstance(condition, Tensor) else const(condition)
    if c.data.dtype != backend.bool_:
        c = cast(c, backend.bool_)
    a, b = _prep("where", a, b)
    if a.requires_grad or b.requires_grad or _interpreters:
        try:
            shape = np.broadcast_shapes(c.data.shape, a.data.shape)
        except ValueError:
            raise ValueError(f"where: condition of shape {tuple(c.shape)} cannot be broadcast "
                             f"with values of shape {tuple(a.shape)}, at "
                             f"{dispatch.user_site()}") from None
        if a.data.shape != shape:
            a, b = mv.broadcast_to(a, shape), mv.broadcast_to(b, shape)
    return bind(P_where, c, a, b)

from . import movement as mv  # noqa: E402  (movement's rules use this module's ops)
