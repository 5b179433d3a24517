"""Reference cases: elementwise ops, where, clamp, comparisons, reductions."""
from __future__ import annotations

import math  # noqa: F401

import numpy as np  # noqa: F401
import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401

import chainrule as cr  # noqa: F401

from .common import (  # noqa: F401
    CASES, INF, G, Case, case, fixed, index, ints, mask, nonzero, normal, positive, probs,
    same, uniform, _seed)

# ----------------------------------------------------------- elementwise unary

UNARY_SHAPES = [(), (7,), (3, 4), (2, 0, 3)]
UNARY = [
    # name, chainrule, torch, domain, extra kwargs
    ("abs", cr.abs, torch.abs, normal, {}),
    ("sign", cr.sign, torch.sign, normal, {}),
    ("exp", cr.exp, torch.exp, normal, {"f32": True}),
    ("log", cr.log, torch.log, positive, {"f32": True}),
    ("log1p", cr.log1p, torch.log1p, lambda *s: uniform(-0.9, 3.0, *s), {}),
    ("expm1", cr.expm1, torch.expm1, normal, {}),
    ("sqrt", cr.sqrt, torch.sqrt, positive, {}),
    ("rsqrt", cr.rsqrt, torch.rsqrt, positive, {}),
    ("sin", cr.sin, torch.sin, lambda *s: normal(*s, scale=3.0), {}),
    ("cos", cr.cos, torch.cos, lambda *s: normal(*s, scale=3.0), {}),
    ("tanh", cr.tanh, torch.tanh, lambda *s: normal(*s, scale=2.0), {"f32": True}),
    ("sigmoid", cr.sigmoid, torch.sigmoid, lambda *s: normal(*s, scale=4.0), {"f32": True}),
    ("relu", cr.relu, torch.relu, normal, {}),
    ("gelu", cr.gelu, F.gelu, lambda *s: normal(*s, scale=2.0), {"f32": True}),
    ("gelu_tanh", lambda x: cr.gelu(x, approximate="tanh"),
     lambda x: F.gelu(x, approximate="tanh"), lambda *s: normal(*s, scale=2.0), {"f32": True}),
    ("silu", cr.silu, F.silu, lambda *s: normal(*s, scale=3.0), {}),
    ("softplus", cr.softplus, F.softplus, lambda *s: normal(*s, scale=4.0), {"f32": True}),
    ("softplus_beta2", lambda x: cr.softplus(x, beta=2.0), lambda x: F.softplus(x, beta=2.0),
     lambda *s: normal(*s, scale=2.0), {}),
    ("erf", cr.erf, torch.erf, lambda *s: normal(*s, scale=2.0), {"f32": True}),
    ("square", cr.square, torch.square, normal, {}),
    ("reciprocal", cr.reciprocal, torch.reciprocal, nonzero, {}),
    ("neg", cr.neg, torch.neg, normal, {}),
    ("negative", cr.negative, torch.negative, normal, {}),
    ("log_sigmoid", cr.log_sigmoid, F.logsigmoid, lambda *s: normal(*s, scale=4.0), {}),
    ("logsigmoid", cr.logsigmoid, F.logsigmoid, normal, {}),
]
for _name, _c, _t, _dom, _kw in UNARY:
    for _s in UNARY_SHAPES:
        case(f"{_name}{list(_s)}", _c, _t, _dom(*_s), f32=_kw.get("f32", False) and _s == (3, 4))

# the same ops as Tensor methods (both libraries spell them alike)
for _name in ("abs sign exp log log1p expm1 sqrt rsqrt sin cos tanh sigmoid relu gelu silu "
              "softplus erf square reciprocal").split():
    _dom = positive if _name in ("log", "sqrt", "rsqrt", "reciprocal", "log1p") else normal
    # torch.Tensor has no gelu/silu/softplus methods: compare with the functional form
    _tf = getattr(F, _name) if _name in ("gelu", "silu", "softplus") else \
        (lambda x, n=_name: getattr(x, n)())
    case(f"method.{_name}", lambda x, n=_name: getattr(x, n)(), _tf, _dom(3, 4))
same("dunder.neg", lambda x: -x, normal(3, 4))
same("dunder.abs", lambda x: abs(x), normal(3, 4))
same("dunder.pos", lambda x: +x, normal(3, 4))

# special points: kinks and singularities (the conventions agree with PyTorch)
_KINKS = fixed([-1.5, -0.0, 0.0, 0.0, 2.0])
case("abs@0", cr.abs, torch.abs, _KINKS)
case("relu@0", cr.relu, torch.relu, _KINKS)
case("sign@0", cr.sign, torch.sign, _KINKS)
case("sqrt@0", cr.sqrt, torch.sqrt, fixed([0.0, 1.0, 4.0]))
case("log@0", cr.log, torch.log, fixed([0.0, 1.0, 4.0]))
case("softplus_large", cr.softplus, F.softplus, uniform(-40.0, 40.0, 20),
     rtol=1e-8, atol=1e-8)  # torch switches to x above threshold=20: differs by ~exp(-20)
case("softplus_threshold", lambda x: cr.softplus(x, threshold=5.0),
     lambda x: F.softplus(x, threshold=5.0), uniform(-10.0, 10.0, 20),
     regression="softplus(x, beta, threshold) accepts threshold but ignores it (always the exact "
           "formula); PyTorch returns x where beta * x > threshold, so results differ by "
           "log1p(exp(-beta x)) ~ 7e-3 at threshold=5")
case("sigmoid_extreme", cr.sigmoid, torch.sigmoid, fixed([-800.0, -40.0, 0.0, 40.0, 800.0]))
case("log_sigmoid_extreme", cr.log_sigmoid, F.logsigmoid, fixed([-800.0, -40.0, 0.0, 40.0]))
case("tanh_extreme", cr.tanh, torch.tanh, fixed([-400.0, -20.0, 0.0, 20.0, 400.0]))
case("erf_tails", cr.erf, torch.erf, fixed([-6.0, -3.0, -0.5, 1e-8, 0.5, 3.0, 6.0]))

# ----------------------------------------------------------- elementwise binary

BIN_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((2, 1, 4), (3, 1)),
              ((), (3,)), ((5,), ()), ((), ()), ((2, 0, 3), (1, 3))]
BINARY = [
    ("add", cr.add, torch.add, normal, normal),
    ("sub", cr.sub, torch.sub, normal, normal),
    ("mul", cr.mul, torch.mul, normal, normal),
    ("div", cr.div, torch.div, normal, nonzero),
    ("pow", cr.pow, torch.pow, positive, normal),
    ("maximum", cr.maximum, torch.maximum, normal, normal),
    ("minimum", cr.minimum, torch.minimum, normal, normal),
]
for _name, _c, _t, _da, _db in BINARY:
    for _sa, _sb in BIN_SHAPES:
        case(f"{_name}{list(_sa)}{list(_sb)}", _c, _t, _da(*_sa), _db(*_sb),
             f32=(_sa, _sb) == ((3, 4), (4,)))
for _name, _op, _db in [("+", lambda a, b: a + b, normal), ("-", lambda a, b: a - b, normal),
                        ("*", lambda a, b: a * b, normal), ("/", lambda a, b: a / b, nonzero),
                        ("**", lambda a, b: a ** b, normal)]:
    _da = positive if _name == "**" else normal
    for _sa, _sb in [((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,))]:
        same(f"dunder{_name}{list(_sa)}{list(_sb)}", _op, _da(*_sa), _db(*_sb))
same("alias.subtract", lambda a, b: a.sub(b) if isinstance(a, torch.Tensor) else
     cr.subtract(a, b), normal(3), normal(3))
case("alias.multiply", cr.multiply, torch.multiply, normal(3), normal(2, 3))
case("alias.divide", cr.divide, torch.divide, normal(3), nonzero(2, 3))
case("alias.true_divide", cr.true_divide, torch.true_divide, normal(3), nonzero(2, 3))

# Python scalars on either side (float32 stays float32: scalars are weak)
_SCALAR = [
    ("x+2.5", lambda x: x + 2.5, normal), ("2.5+x", lambda x: 2.5 + x, normal),
    ("x-2.5", lambda x: x - 2.5, normal), ("2.5-x", lambda x: 2.5 - x, normal),
    ("x*-1.5", lambda x: x * -1.5, normal), ("-1.5*x", lambda x: -1.5 * x, normal),
    ("x/2.5", lambda x: x / 2.5, normal), ("2.5/x", lambda x: 2.5 / x, nonzero),
    ("x**2", lambda x: x ** 2, normal), ("x**3", lambda x: x ** 3, normal),
    ("x**2.5", lambda x: x ** 2.5, positive), ("x**-1", lambda x: x ** -1, nonzero),
    ("x**0.5", lambda x: x ** 0.5, positive), ("2.5**x", lambda x: 2.5 ** x, normal),
    ("x+2", lambda x: x + 2, normal), ("3*x", lambda x: 3 * x, normal),
    ("1/x", lambda x: 1 / x, nonzero), ("2**x", lambda x: 2 ** x, normal),
]
for _name, _fn, _dom in _SCALAR:
    same(_name, _fn, _dom(3, 4), f32=True)
_T = torch.tensor
for _name, _c, _t in [
    ("add(2,x)", lambda x: cr.add(2, x), lambda x: torch.add(2, x)),
    ("add(x,2.5)", lambda x: cr.add(x, 2.5), lambda x: torch.add(x, 2.5)),
    ("sub(2.5,x)", lambda x: cr.sub(2.5, x), lambda x: torch.sub(2.5, x)),
    ("mul(x,3)", lambda x: cr.mul(x, 3), lambda x: torch.mul(x, 3)),
    ("div(1,x)", lambda x: cr.div(1.0, x), lambda x: torch.div(1.0, x)),
    ("pow(x,3)", lambda x: cr.pow(x, 3), lambda x: torch.pow(x, 3)),
    ("pow(2.0,x)", lambda x: cr.pow(2.0, x), lambda x: torch.pow(2.0, x)),
    ("maximum(x,0.3)", lambda x: cr.maximum(x, 0.3),
     lambda x: torch.maximum(x, _T(0.3, dtype=x.dtype))),
    ("maximum(0.3,x)", lambda x: cr.maximum(0.3, x),
     lambda x: torch.maximum(_T(0.3, dtype=x.dtype), x)),
    ("minimum(x,0.3)", lambda x: cr.minimum(x, 0.3),
     lambda x: torch.minimum(x, _T(0.3, dtype=x.dtype))),
    ("minimum(0.3,x)", lambda x: cr.minimum(0.3, x),
     lambda x: torch.minimum(_T(0.3, dtype=x.dtype), x)),
]:
    case(_name, _c, _t, nonzero(3, 4), f32=True)

# ties: PyTorch gives each side half of the gradient
for _sa, _sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (5,))]:
    case(f"maximum_ties{list(_sa)}{list(_sb)}", cr.maximum, torch.maximum,
         ints(-2, 3, *_sa), ints(-2, 3, *_sb))
    case(f"minimum_ties{list(_sa)}{list(_sb)}", cr.minimum, torch.minimum,
         ints(-2, 3, *_sa), ints(-2, 3, *_sb))
case("maximum_ties_scalar", lambda x: cr.maximum(x, 1.0),
     lambda x: torch.maximum(x, _T(1.0, dtype=x.dtype)), ints(-2, 3, 3, 4))
case("minimum_ties_scalar", lambda x: cr.minimum(1.0, x),
     lambda x: torch.minimum(_T(1.0, dtype=x.dtype), x), ints(-2, 3, 3, 4))
same("method.maximum_ties", lambda a, b: a.maximum(b), ints(-2, 3, 3, 4), ints(-2, 3, 4))
same("method.minimum_ties", lambda a, b: a.minimum(b), ints(-2, 3, 3, 4), ints(-2, 3, 4))
case("max(x,y)_ties", cr.max, torch.max, ints(-2, 3, 3, 4), ints(-2, 3, 3, 4))
case("min(x,y)_ties", cr.min, torch.min, ints(-2, 3, 3, 4), ints(-2, 3, 4))

# pow at a zero base: d/da masked where b == 0, d/db masked where a == 0 and b >= 0
case("pow_zero_base", cr.pow, torch.pow, fixed([0.0, 0.0, 1.5, 2.0, 0.0]),
     fixed([2.0, 3.0, 0.0, 1.5, 1.0]))
case("pow_zero_base_zero_exp", cr.pow, torch.pow, fixed([0.0, 1.5]), fixed([0.0, 0.0]),
     regression="pow: d/da of a**b at a == 0, b == 0 is nan (b * a**(b-1) = 0 * inf); "
           "PyTorch masks it to 0 where b == 0")
same("x**0@0", lambda x: x ** 0, fixed([0.0, 1.0, -2.0]),
     regression="pow: d/dx of x**0 at x == 0 is nan (0 * 0**-1); PyTorch gives 0")
same("x**2@0", lambda x: x ** 2, fixed([0.0, 1.0, -2.0]))
same("x**1@0", lambda x: x ** 1, fixed([0.0, 1.0, -2.0]))
case("pow_negative_base_int_exp", cr.pow, torch.pow, fixed([-2.0, -0.5, 3.0]),
     fixed([3.0, 2.0, -1.0]), grad=(0,))

# ------------------------------------------------------------------------- where

for _sc, _sa, _sb in [((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), (3, 1)), ((4,), (3, 4), (3, 4)),
                      ((2, 3, 1), (3, 4), ()), ((), (3,), (3,))]:
    case(f"where{list(_sc)}{list(_sa)}{list(_sb)}", cr.where, torch.where,
         mask(*_sc), normal(*_sa), normal(*_sb), f32=_sa == (4,))
case("where(c,x,0.0)", lambda c, x: cr.where(c, x, 0.0), lambda c, x: torch.where(c, x, 0.0),
     mask(3, 4), normal(3, 4), f32=True)
case("where(c,1.5,x)", lambda c, x: cr.where(c, 1.5, x), lambda c, x: torch.where(c, 1.5, x),
     mask(3, 4), normal(4))
same("method.where", lambda x, c, y: x.where(c, y), normal(3, 4), mask(3, 4), normal(3, 4),
     regression="Tensor.where(condition, other) is bound to where(self, condition, other): "
           "x.where(c, y) treats x as the condition; PyTorch computes where(c, x, y)")

# ------------------------------------------------------------------------- clamp

_EDGES = fixed([-1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 1.0])  # values on the bounds
for _name, _c, _t in [
    ("clamp(-0.5,0.5)", lambda x: cr.clamp(x, -0.5, 0.5), lambda x: torch.clamp(x, -0.5, 0.5)),
    ("clamp(min=0)", lambda x: cr.clamp(x, min=0.0), lambda x: torch.clamp(x, min=0.0)),
    ("clamp(max=0.2)", lambda x: cr.clamp(x, max=0.2), lambda x: torch.clamp(x, max=0.2)),
    ("clip(-0.5,0.5)", lambda x: cr.clip(x, -0.5, 0.5), lambda x: torch.clip(x, -0.5, 0.5)),
    ("method.clamp", lambda x: x.clamp(-0.2, 0.5), lambda x: x.clamp(-0.2, 0.5)),
    ("method.clip", lambda x: x.clip(min=-0.2), lambda x: x.clip(min=-0.2)),
]:
    case(_name, _c, _t, normal(3, 4), f32=True)
    case(_name + "@edges", _c, _t, _EDGES)
case("clamp(tensor_min,tensor_max)", lambda x, lo, hi: cr.clamp(x, lo, hi),
     lambda x, lo, hi: torch.clamp(x, lo, hi), normal(3, 4), uniform(-1.0, -0.1, 4),
     uniform(0.1, 1.0, 3, 1))

# ------------------------------------------------------------------- comparisons

for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    case(f"{_name}[3,4][4]", getattr(cr, _name), getattr(torch, _name), ints(-1, 2, 3, 4),
         ints(-1, 2, 4))
    case(f"{_name}(x,0.0)", lambda x, n=_name: getattr(cr, n)(x, 0.0),
         lambda x, n=_name: getattr(torch, n)(x, 0.0), ints(-1, 2, 3, 4))
for _name, _fn in [("==", lambda a, b: a == b), ("!=", lambda a, b: a != b),
                   ("<", lambda a, b: a < b), ("<=", lambda a, b: a <= b),
                   (">", lambda a, b: a > b), (">=", lambda a, b: a >= b)]:
    same(f"dunder{_name}", _fn, ints(-1, 2, 3, 4), ints(-1, 2, 3, 1))
    same(f"dunder{_name}scalar", lambda x, f=_fn: f(x, 0.0), ints(-1, 2, 3, 4))
    same(f"dunder{_name}rscalar", lambda x, f=_fn: f(0.0, x), ints(-1, 2, 3, 4))
case("logical_and", cr.logical_and, torch.logical_and, mask(3, 4), mask(4))
case("logical_or", cr.logical_or, torch.logical_or, mask(3, 4), mask(4))
case("logical_not", cr.logical_not, torch.logical_not, mask(3, 4))
same("dunder~&|", lambda a, b: (~a) | (a & b), mask(3, 4), mask(4))
_SPECIALS = fixed([0.0, -1.0, INF, -INF, float("nan"), 2.0])
for _name in ("isnan", "isinf", "isfinite"):
    case(_name, getattr(cr, _name), getattr(torch, _name), _SPECIALS)
    same(f"method.{_name}", lambda x, n=_name: getattr(x, n)(), _SPECIALS, grad=())

# -------------------------------------------------------------------- reductions

X3 = (3, 4, 5)


def _tdim(dim, ndim):
    return tuple(range(ndim)) if dim is None else dim


def reduction(name, crf, thf, dom, dims, keep=(False, True), **kw):
    """One case per (dim, keepdim): ``crf(x, dim, keepdim)`` vs ``thf(x, dim, keepdim)``."""
    for dim in dims:
        for kd in keep:
            case(f"{name}(dim={dim},keepdim={kd})", lambda x, d=dim, k=kd: crf(x, d, k),
                 lambda x, d=dim, k=kd: thf(x, d, k), dom, **kw)


_DIMS = [None, 0, -1, (0, 2), (-1, -3), (0, 1, 2)]
reduction("sum", cr.sum, lambda x, d, k: torch.sum(x, _tdim(d, x.ndim), k), normal(*X3), _DIMS)
reduction("mean", cr.mean, lambda x, d, k: torch.mean(x, _tdim(d, x.ndim), k), normal(*X3),
          _DIMS)
reduction("amax", cr.amax, lambda x, d, k: torch.amax(x, _tdim(d, x.ndim), k),
          ints(-3, 3, *X3), _DIMS)  # ties: shared evenly in both
reduction("amin", cr.amin, lambda x, d, k: torch.amin(x, _tdim(d, x.ndim), k),
          ints(-3, 3, *X3), _DIMS)
reduction("logsumexp", cr.logsumexp, lambda x, d, k: torch.logsumexp(x, _tdim(d, x.ndim), k),
          normal(*X3), _DIMS)
reduction("logsumexp_large", cr.logsumexp,
          lambda x, d, k: torch.logsumexp(x, _tdim(d, x.ndim), k),
          normal(*X3, scale=500.0), [None, 1], rtol=1e-12, atol=1e-9)
reduction("prod", cr.prod, lambda x, d, k: torch.prod(x, d, k) if d is not None else
          (torch.prod(x).reshape((1,) * x.ndim) if k else torch.prod(x)),
          uniform(0.5, 1.5, *X3), [None, 0, -1])
reduction("var", cr.var, lambda x, d, k: torch.var(x, _tdim(d, x.ndim), keepdim=k),
          normal(*X3), [None, 1, (0, 2)], rtol=1e-9)
reduction("std", cr.std, lambda x, d, k: torch.std(x, _tdim(d, x.ndim), keepdim=k),
          normal(*X3), [None, 1, (0, 2)], rtol=1e-9)
reduction("var_correction0", lambda x, d, k: cr.var(x, d, k, correction=0),
          lambda x, d, k: torch.var(x, _tdim(d, x.ndim), correction=0, keepdim=k),
          normal(*X3), [None, -1], rtol=1e-9)
reduction("std_unbiased_false", lambda x, d, k: cr.std(x, d, k, unbiased=False),
          lambda x, d, k: torch.std(x, _tdim(d, x.ndim), correction=0, keepdim=k),
          normal(*X3), [None, -1], rtol=1e-9)
reduction("argmax", cr.argmax, lambda x, d, k: torch.argmax(x, d, k), normal(*X3),
          [None, 0, -1])
reduction("argmin", cr.argmin, lambda x, d, k: torch.argmin(x, d, k), normal(*X3),
          [None, 1])
for _p in (1, 2, INF, 3):
    reduction(f"norm_p{_p}", lambda x, d, k, p=_p: cr.norm(x, p, d, k),
              lambda x, d, k, p=_p: torch.linalg.vector_norm(x, p, d, k), normal(*X3),
              [None, 1, (0, 2)], rtol=1e-9)
case("norm_inf_ties", lambda x: cr.norm(x, INF), lambda x: torch.linalg.vector_norm(x, INF),
     fixed([-2.0, 2.0, 1.0, -2.0, 0.5]))
case("norm_p1_zeros", lambda x: cr.norm(x, 1), lambda x: torch.linalg.vector_norm(x, 1),
     fixed([-2.0, 0.0, 1.0, 0.0]))
case("norm_p2_zero_vector", lambda x: cr.norm(x), lambda x: torch.linalg.vector_norm(x),
     fixed([0.0, 0.0, 0.0]),
     regression="norm(p=2): gradient at the zero vector is nan (x / sqrt(0)); PyTorch returns 0 "
           "(the subgradient), as it does for p=1 and p=inf")
same("method.norm", lambda x: x.norm(2, 1), normal(3, 4), rtol=1e-9)
case("norm_p-1", lambda x: cr.norm(x, -1), lambda x: torch.linalg.vector_norm(x, -1),
     normal(5), rtol=1e-9)
case("norm_p-inf", lambda x: cr.norm(x, -INF), lambda x: torch.linalg.vector_norm(x, -INF),
     normal(5), regression="norm(x, p=-inf) is silently wrong (1.0 via the generic "
                      "sum(|x|**p)**(1/p) formula: |x|**-inf = 0, 0**-0.0 = 1); PyTorch returns "
                      "min |x|")
case("norm_p0", lambda x: cr.norm(x, 0), lambda x: torch.linalg.vector_norm(x, 0),
     fixed([0.0, 1.5, -2.0, 0.0]), regression="norm(x, p=0) raises ZeroDivisionError (1.0 / p); "
                                         "PyTorch counts the non-zero elements (gradient 0)")
case("std_constant", cr.std, torch.std, fixed([1.0, 1.0, 1.0]),
     regression="std of a constant input (zero variance) has a nan gradient (0 / sqrt(0)); "
           "PyTorch masks it to 0, as chainrule now does for norm at the zero vector")
case("std_constant_row", lambda x: cr.std(x, 1), lambda x: torch.std(x, 1),
     fixed([[1.0, 1.0, 1.0], [0.0, 1.0, 3.0]]),
     regression="std over a slice with zero variance: nan gradient for that slice (PyTorch: 0)")

# max/min over everything: ties share the gradient (evenly_distribute_backward in torch)
case("max()_ties", cr.max, torch.max, ints(-2, 2, 3, 4))
case("min()_ties", cr.min, torch.min, ints(-2, 2, 3, 4))
same("method.max()", lambda x: x.max(), normal(3, 4))
# max(x, dim) -> (values, indices); the gradient goes to the index
for _d in (0, 1, -1):
    for _k in (False, True):
        case(f"max(x,{_d},{_k})", lambda x, d=_d, k=_k: cr.max(x, d, k),
             lambda x, d=_d, k=_k: torch.max(x, d, k), normal(3, 4, 5))
        case(f"min(x,{_d},{_k})", lambda x, d=_d, k=_k: cr.min(x, d, k),
             lambda x, d=_d, k=_k: torch.min(x, d, k), normal(3, 4, 5))
same("max(x,dim).values", lambda x: x.max(1).values * 2, normal(3, 4))
same("max(x,dim).indices", lambda x: x.max(dim=1).indices, normal(3, 4), grad=())
same("min(x,dim,keepdim=True)[0]", lambda x: x.min(-1, keepdim=True)[0], normal(3, 4))
same("min(x,dim)[1]", lambda x: x.min(0)[1], normal(3, 4), grad=())

# prod with zeros: one zero in a slice gets the product of the others, two zeros give 0
case("prod_one_zero", cr.prod, torch.prod, fixed([1.5, 0.0, -2.0, 0.5]))
case("prod_two_zeros", cr.prod, torch.prod, fixed([1.5, 0.0, -2.0, 0.0]))
case("prod_dim_zeros", lambda x: cr.prod(x, 1), lambda x: torch.prod(x, 1),
     fixed([[1.5, 0.0, -2.0], [0.0, 0.0, 3.0], [1.0, 2.0, 3.0]]))
case("prod_keepdim_zeros", lambda x: cr.prod(x, 0, True), lambda x: torch.prod(x, 0, True),
     fixed([[1.5, 0.0, -2.0], [0.0, 0.0, 3.0], [1.0, 2.0, 3.0]]))
for _d in (0, 1, -1):
    case(f"cumsum(dim={_d})", lambda x, d=_d: cr.cumsum(x, d),
         lambda x, d=_d: torch.cumsum(x, d), normal(3, 4, 5))
same("method.cumsum", lambda x: x.cumsum(0), normal(4, 3))
same("method.sum", lambda x: x.sum(1, keepdim=True), normal(3, 4))
same("method.mean", lambda x: x.mean((0, 1)), normal(3, 4, 2), f32=True, rtol=1e-12)
same("method.var", lambda x: x.var(0), normal(5, 3), rtol=1e-9, f32=True)
same("method.std", lambda x: x.std(), normal(5, 3), rtol=1e-9)
same("method.prod", lambda x: x.prod(1), positive(3, 4))
same("method.amax", lambda x: x.amax(-1), normal(3, 4))
same("method.amin", lambda x: x.amin((0, 1)), normal(3, 4))
same("method.logsumexp", lambda x: x.logsumexp(1), normal(3, 4), f32=True)
same("method.argmax", lambda x: x.argmax(), normal(3, 4), grad=())
same("method.argmin", lambda x: x.argmin(1, keepdim=True), normal(3, 4), grad=())
case("sum_0d", cr.sum, torch.sum, normal())
case("argmax_0d", lambda x: cr.argmax(x, 0), lambda x: torch.argmax(x, 0), normal())
case("logsumexp_0d", lambda x: cr.logsumexp(x, 0), lambda x: torch.logsumexp(x, 0), normal())
case("softmax_0d", lambda x: cr.softmax(x, 0), lambda x: torch.softmax(x, 0), normal())
case("amax_0d", lambda x: cr.amax(x, -1), lambda x: torch.amax(x, -1), normal())
case("max(x,dim)_1d", lambda x: cr.max(x, 0), lambda x: torch.max(x, 0), normal(5))
case("max(x,dim)_0d", lambda x: cr.max(x, 0), lambda x: torch.max(x, 0), normal(),
     regression="max(x, dim)/min(x, dim) on a 0-d tensor raise IndexError ('tuple index out of "
           "range' in gather); PyTorch returns (x, tensor(0))")
case("cumsum_0d", lambda x: cr.cumsum(x, 0), lambda x: torch.cumsum(x, 0), normal(),
     regression="cumsum of a 0-d tensor returns shape (1,) (np.cumsum flattens); PyTorch keeps ()")
case("sum_bool", cr.sum, torch.sum, mask(3, 4))
case("sum_int(dim=1)", lambda x: cr.sum(x, 1), lambda x: torch.sum(x, 1), index(5, 3, 4))
case("cumsum_int", lambda x: cr.cumsum(x, 1), lambda x: torch.cumsum(x, 1), index(5, 3, 4))
case("amax_int", lambda x: cr.amax(x, 0), lambda x: torch.amax(x, 0), index(5, 3, 4))
case("argmax_int", lambda x: cr.argmax(x, 1), lambda x: torch.argmax(x, 1),
     fixed([[1, 5, 2], [7, 0, 3]], np.int64))
case("softmax_neginf", lambda x: cr.softmax(x, -1), lambda x: torch.softmax(x, -1),
     fixed([[-INF, 0.0, 1.0], [2.0, -INF, -INF]]))
case("log_softmax_neginf", lambda x: cr.log_softmax(x, -1),
     lambda x: torch.log_softmax(x, -1), fixed([[-INF, 0.0, 1.0], [2.0, -INF, -1.0]]))
case("logsumexp_neginf", lambda x: cr.logsumexp(x, -1), lambda x: torch.logsumexp(x, -1),
     fixed([[-INF, 0.0, 1.0], [2.0, -INF, -1.0]]))
for _p in (2, 3):
    case(f"norm_p{_p}_zero_row", lambda x, p=_p: cr.norm(x, p, 1),
         lambda x, p=_p: torch.linalg.vector_norm(x, p, 1),
         fixed([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]]),
         regression=f"norm(p={_p}): gradient is nan for a slice that is all zeros; PyTorch "
               "returns 0 there")
case("mean_0d", cr.mean, torch.mean, normal())
