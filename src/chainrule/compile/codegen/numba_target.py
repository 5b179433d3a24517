"""The numba target: a fused group becomes generated Python source, compiled once with
``@njit(nogil=True)`` into one loop that writes every group output; large groups run
their rows in several threads (``codegen.parallel_for``).

Each primitive has a scalar template (``TEMPLATES``): statements that assign ``{o}``
from the operands ``{a} {b} {c}``. Constants are spelled in the member's dtype
(``{one}`` is ``np.float32(1.0)`` in a float32 kernel), so float32 work stays float32
(numba types ``np.exp(float32)`` and ``math.erf(float32)`` as float32). Loops are
compiled with ``fastmath=False`` and ``error_model="numpy"`` (x / 0 is inf, not an
exception), and the templates keep NumPy's semantics: maximum/minimum/relu propagate
NaN, sigmoid and softplus use the eager primitives' stable forms.

Transcendentals stay in SIMD: a call to glibc's ``expf`` costs 2.3 ns per element here
(``tanhf`` 22, ``log1pf`` 18; NumPy's SIMD ufuncs 0.4) and a call in the loop body keeps
LLVM from vectorizing it. So exp and log are helpers written in arithmetic and bit
casts (below), and tanh (Cody & Waite's rational form below ln(3)/2,
``1 - 2/(exp(2|x|) + 1)`` above), log1p (Goldberg's ``log(u) * x / (u - 1)``), expm1
(Kahan's ``(u - 1) * x / log(u)``), sigmoid and softplus are built from them, with
both sides of a case computed and one selected (no branch). They agree with NumPy to a
few ulp. sin, cos, erf and general pow call libm (scalar).

The iteration space is the group's merged layout, split into an outer loop over rows
(the kernel gets a row range) and an inner loop, at the axis where the fewest
per-element index divisions are needed: a bias (C,) on (B, C) reads ``b[j]``, a row
statistic (B, 1) is loaded once per row, a scalar once per call.
"""
from __future__ import annotations

import math
import time

import numpy as np

from . import parallel_for, record_compile

# A kernel is split over the thread pool when its work (elements times the cost of its
# members per element) is at least PARALLEL_WORK: handing a piece to a pool thread costs
# about 50 us here (the thread wakes up), and a cheap kernel is bound by memory anyway.
# SGD's update of a 512x784 weight (2 ops) ran in 60 us on one thread and 126 us split
# in two; Adam's (13 ops, cost 16) on 512x784 and 512x512 weights in 0.40 ms on one
# thread and 0.45-0.50 ms split; GELU's forward and backward on 4M elements scales.
PARALLEL_WORK = 1 << 24
_COSTLY = {"exp": 8, "log": 8, "log1p": 8, "expm1": 8, "sin": 8, "cos": 8, "tanh": 8,
           "sigmoid": 8, "softplus": 16, "erf": 8, "pow": 16, "div": 2, "sqrt": 2}
# Kernels do each member's arithmetic exactly as NumPy does (fastmath off: no FMA
# contraction, which would change results where sums cancel). The exp/log helpers,
# approximations anyway, let LLVM contract their polynomials into FMAs.
FASTMATH = False
HELPER_FASTMATH = {"contract"}

_numba = None
HELPERS: dict = {}  # name -> jitted helper, in every kernel's namespace


def available() -> bool:
    global _numba
    if _numba is None:
        try:
            import numba
        except ImportError:
            _numba = False
        else:
            _numba = numba
            _load_helpers()
    return bool(_numba)


# ------------------------------------------------------------------ exp and log
# Vectorizable exp and log: no library call, so LLVM turns the loop into SIMD code
# (a call to glibc's expf costs 2.3 ns per element here, these ~0.3). Both are within
# 1-2 ulp of the correctly rounded result (the tests compare them with NumPy's).
# exp: x = k ln2 + r, |r| <= ln2/2 (Cody & Waite's two-part ln2), Taylor polynomial
# of e^r (degree 7 for float32, 13 for float64), times 2^k as two powers of two whose
# bits are made in float arithmetic (exact) and converted once (so results that are
# subnormal or overflow come out right, with no integer vector ops).
# log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m-1)/(m+1).
_as_float = _as_int = None  # bit casts (numba intrinsics, made by _load_helpers)
_F4, _F8 = np.float32, np.float64


def _exp32(x):
    xc = x if x > _F4(-104.0) else _F4(-104.0)
    xc = xc if xc < _F4(89.0) else _F4(89.0)
    k = (xc * _F4(1.4426950408889634) + _F4(12582912.0)) - _F4(12582912.0)
    r = (xc - k * _F4(0.693359375)) - k * _F4(-2.12194440e-4)
    p = _F4(1 / 5040)
    for c in (1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1.0, 1.0):
        p = p * r + _F4(c)
    half = (k * _F4(0.5) + _F4(12582912.0)) - _F4(12582912.0)  # 2^k = 2^half 2^(k-half)
    y = p * _as_float(np.int32(half * _F4(8388608.0) + _F4(1065353216.0))) \
        * _as_float(np.int32((k - half) * _F4(8388608.0) + _F4(1065353216.0)))
    return y if x == x else x


def _exp64(x):
    xc = x if x > -746.0 else -746.0
    xc = xc if xc < 710.0 else 710.0
    k = (xc * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0
    r = (xc - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    p = 1 / 6227020800
    for c in (1 / 479001600, 1 / 39916800, 1 / 3628800, 1 / 362880, 1 / 40320, 1 / 5040,
              1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1.0, 1.0):
        p = p * r + c
    half = (k * 0.5 + 6755399441055744.0) - 6755399441055744.0
    y = p * _as_float(np.int64(half * 4503599627370496.0 + 4607182418800017408.0)) \
        * _as_float(np.int64((k - half) * 4503599627370496.0 + 4607182418800017408.0))
    return y if x == x else x


def _expn32(x):
    """exp of 0 <= x <= 20, for tanh (which damps its error): no clamps, one-part ln2
    (k <= 29), a degree-6 minimax polynomial, and 2^k added to the exponent bits: the
    integer k is in the low bits of k + 1.5 * 2^23, so no multiply."""
    m = x * _F4(1.4426950408889634) + _F4(12582912.0)
    r = x - (m - _F4(12582912.0)) * _F4(0.6931471805599453)
    q = _F4(0.001384361064992845)
    for c in (0.008374195545911789, 0.04166800528764725, 0.16666430234909058,
              0.4999999403953552, 1.0):
        q = q * r + _F4(c)
    return _as_float(np.int32(_as_int(q * r + _F4(1.0)) + (_as_int(m) << 23)))


def _expn64(x):
    """exp of 0 <= x <= 40, as _expn32 (Cody & Waite's two-part ln2, Taylor to 13)."""
    m = x * 1.4426950408889634 + 6755399441055744.0
    k = m - 6755399441055744.0
    r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    p = 1 / 6227020800
    for c in (1 / 479001600, 1 / 39916800, 1 / 3628800, 1 / 362880, 1 / 40320, 1 / 5040,
              1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1.0, 1.0):
        p = p * r + c
    return _as_float(_as_int(p) + (_as_int(m) << 52))


# tanh: Cody & Waite's x + x g P(g) / Q(g), g = x^2, below ln(3)/2, and
# sign(x) (1 - 2 / (exp(2|x|) + 1)) above. Both sides feed one division,
# a + b n / d with a, b, n, d each selected, so there is no branch and no second division.
# |x| is clamped where tanh rounds to +-1, so the exp never overflows; NaN takes the
# small side (its comparison is false), which returns it; where tanh(x) rounds to x, x
# is returned (so -0.0 stays -0.0). At most 1.6 ulp from the exact result (NumPy's: 1.4).
# Multiplies are what the kernels are bound by (AVX-512 here issues one per cycle), so
# _expn32 takes none that it can avoid.
def _tanh32(x):
    f = abs(x)
    y = f if f < _F4(10.0) else _F4(10.0)
    e = _expn32(y + y)
    g = x * x
    big = f >= _F4(0.5493061443340548)
    neg = x < _F4(0.0)
    t = ((_F4(-1.0) if neg else _F4(1.0)) if big else x) \
        + ((_F4(2.0) if neg else _F4(-2.0)) if big else x) * (
        (_F4(1.0) if big else (_F4(-0.3831010665e-2) * g + _F4(-0.8237728127)) * g)
        / (e + _F4(1.0) if big else g + _F4(2.471319654)))
    return x if f < _F4(2.0 ** -13) else t


def _tanh64(x):
    f = abs(x)
    y = f if f < 20.0 else 20.0
    e = _expn64(y + y)
    g = x * x
    big = f >= 0.5493061443340548
    neg = x < 0.0
    p = ((-0.96437492777225469787 * g - 0.99225929672236083313e2) * g
         - 0.16134119023996228053e4) * g
    q = ((g + 0.11274474380534949335e3) * g + 0.22337720718962312926e4) * g \
        + 0.48402357071988688686e4
    t = ((-1.0 if neg else 1.0) if big else x) + ((2.0 if neg else -2.0) if big else x) * (
        (1.0 if big else p) / (e + 1.0 if big else q))
    return x if f < 2.0 ** -27 else t


def _log32(x):
    tiny = x < _F4(1.1754943508222875e-38)
    bits = np.int64(_as_int(x * _F4(8388608.0) if tiny else x))
    e = ((bits >> 23) & 0xFF) - (150 if tiny else 127)
    m = _as_float(np.int32((bits & 0x7FFFFF) | 0x3F800000))
    big = m > _F4(1.4142135623730951)
    m = m * _F4(0.5) if big else m
    e = e + 1 if big else e
    f = m - _F4(1.0)
    s = f / (_F4(2.0) + f)
    z = s * s
    p = _F4(2 / 9)
    for c in (2 / 7, 2 / 5, 2 / 3):
        p = p * z + _F4(c)
    ef = _F4(e)
    y = ef * _F4(0.693359375) + ((s + s) + (s * z * p + ef * _F4(-2.12194440e-4)))
    if x != x or x == _F4(np.inf):
        return x
    if x == _F4(0.0):
        return _F4(-np.inf)
    return _F4(np.nan) if x < _F4(0.0) else y


def _log64(x):
    tiny = x < 2.2250738585072014e-308
    bits = _as_int(x * 4503599627370496.0 if tiny else x)
    e = ((bits >> 52) & 0x7FF) - (1075 if tiny else 1023)
    m = _as_float((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > 1.4142135623730951
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    p = 2 / 21
    for c in (2 / 19, 2 / 17, 2 / 15, 2 / 13, 2 / 11, 2 / 9, 2 / 7, 2 / 5, 2 / 3):
        p = p * z + c
    ef = np.float64(e)
    y = ef * 6.93147180369123816490e-01 + ((s + s) + (s * z * p + ef * 1.90821492927058770002e-10))
    if x != x or x == np.inf:
        return x
    if x == 0.0:
        return -np.inf
    return np.nan if x < 0.0 else y


def _load_helpers() -> None:
    """Make the bit-cast intrinsics and jit the helpers (numba is importable)."""
    global _as_float, _as_int
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    def cast(src, dst, llvm):
        def impl(typingctx, x):
            if x == src:
                return dst(src), lambda context, builder, sig, args: builder.bitcast(args[0],
                                                                                     llvm)
            return None
        return impl

    @intrinsic
    def as_float(typingctx, x):
        for src, dst, llvm in ((types.int32, types.float32, ir.FloatType()),
                               (types.int64, types.float64, ir.DoubleType())):
            r = cast(src, dst, llvm)(typingctx, x)
            if r:
                return r
        return None

    @intrinsic
    def as_int(typingctx, x):
        for src, dst, llvm in ((types.float32, types.int32, ir.IntType(32)),
                               (types.float64, types.int64, ir.IntType(64))):
            r = cast(src, dst, llvm)(typingctx, x)
            if r:
                return r
        return None

    _as_float, _as_int = as_float, as_int
    module = globals()
    for fn in (_exp32, _exp64, _expn32, _expn64, _tanh32, _tanh64, _log32, _log64):
        # in dependency order: a helper's global names the jitted helpers before it
        HELPERS[fn.__name__] = module[fn.__name__] = _numba.njit(
            error_model="numpy", fastmath=HELPER_FASTMATH)(fn)


# ------------------------------------------------------------------ templates
_SELECT_MAX = "{o} = {a} if ({a} >= {b} or {a} != {a}) else {b}"
_SELECT_MIN = "{o} = {a} if ({a} <= {b} or {a} != {a}) else {b}"

TEMPLATES = {
    "neg": "{o} = -{a}",
    "abs": "{o} = abs({a})",
    "sign": "{o} = {one} if {a} > {zero} else (-{one} if {a} < {zero} else "
            "({zero} if {a} == {zero} else {a}))",
    "relu": "{o} = {a} if ({a} >= {zero} or {a} != {a}) else {zero}",
    "add": "{o} = {a} + {b}",
    "sub": "{o} = {a} - {b}",
    "mul": "{o} = {a} * {b}",
    "div": "{o} = {a} / {b}",
    "pow": "{o} = np.power({a}, {b})",
    "maximum": _SELECT_MAX,
    "minimum": _SELECT_MIN,
    "exp": "{o} = {exp}({a})",
    "log": "{o} = {log}({a})",
    "sqrt": "{o} = np.sqrt({a})",
    "sin": "{o} = np.sin({a})",
    "cos": "{o} = np.cos({a})",
    "log1p": "{o}_u = {one} + {a}\n"
             "{o}_d = {o}_u - {one}\n"
             "{o} = {a} if {o}_d == {zero} else "
             "({o}_u if {o}_u == {inf} else {log}({o}_u) * ({a} / {o}_d))",
    "expm1": "{o}_u = {exp}({a})\n"
             "{o}_m = {o}_u - {one}\n"
             "{o} = {a} if {o}_u == {one} else ({o}_m if ({o}_m == -{one} or {o}_u == {inf}) "
             "else {o}_m * ({a} / {log}({o}_u)))",
    # the eager impl's form: e = exp(-|x|), r = 1 / (1 + e), r or e * r by sign
    "sigmoid": "{o}_e = {exp}(-abs({a}))\n"
               "{o}_r = {one} / ({one} + {o}_e)\n"
               "{o} = {o}_r if {a} >= {zero} else {o}_e * {o}_r",
    # max(x, 0) + log1p(exp(-|x|)), log1p as above (its argument is in [0, 1])
    "softplus": "{o}_e = {exp}(-abs({a}))\n"
                "{o}_u = {one} + {o}_e\n"
                "{o}_d = {o}_u - {one}\n"
                "{o}_l = {o}_e if {o}_d == {zero} else {log}({o}_u) * ({o}_e / {o}_d)\n"
                "{o} = ({a} if ({a} >= {zero} or {a} != {a}) else {zero}) + {o}_l",
    "tanh": "{o} = _tanh{bits}({a})",
    # the eager erf computes float32 in float64 and rounds
    "erf": {"f8": "{o} = math.erf({a})", "f4": "{o} = {T}(math.erf(np.float64({a})))"},
    "eq": "{o} = {a} == {b}",
    "ne": "{o} = {a} != {b}",
    "lt": "{o} = {a} < {b}",
    "le": "{o} = {a} <= {b}",
    "gt": "{o} = {a} > {b}",
    "ge": "{o} = {a} >= {b}",
    "logical_and": "{o} = bool({a}) and bool({b})",
    "logical_or": "{o} = bool({a}) or bool({b})",
    "logical_not": "{o} = not bool({a})",
    "isnan": "{o} = {a} != {a}",
    "isinf": "{o} = np.isinf({a})",
    "isfinite": "{o} = np.isfinite({a})",
    "where": "{o} = {b} if {a} else {c}",
    "cast": "{o} = {T}({a})",
}

# pow with a scalar constant exponent: cheaper exact forms (x*x is powf(x, 2) exactly;
# x*x*x and 1/x are within an ulp of it)
POW_BY_CONST = {1.0: "{o} = {a}", 2.0: "{o} = {a} * {a}", 3.0: "{o} = {a} * {a} * {a}",
                -1.0: "{o} = {one} / {a}"}
CAST_TO_BOOL = "{o} = {a} != 0"
_WRAP = {"i4": "np.int32"}  # numba widens int32 arithmetic to int64: wrap like NumPy


def _ctor(dt: np.dtype) -> str:
    return "np.bool_" if dt.kind == "b" else f"np.{dt.name}"


def _template(op: str, args: tuple, params: dict, dtype: np.dtype, consts: tuple) -> str:
    if op == "pow" and args[1][0] == "in" and consts[args[1][1]] in POW_BY_CONST:
        return POW_BY_CONST[consts[args[1][1]]]
    if op == "cast" and dtype.kind == "b":
        return CAST_TO_BOOL
    t = TEMPLATES[op]
    return t[f"{dtype.kind}{dtype.itemsize}"] if isinstance(t, dict) else t


# ------------------------------------------------------------------ loop structure

def _split(layout) -> int:
    """Where to split the merged axes into outer (rows) and inner loop: the fewest
    per-element index divisions, then enough rows to share among threads."""
    dims = layout.dims
    nd = len(dims)
    blocks = [layout.block(k) for k in range(len(layout.spans))]
    best = None
    for p in range(1, nd + 1):
        rows = int(np.prod(dims[:p], dtype=np.int64))
        cost = 0
        for b in blocks:
            if b is None:
                continue
            lo, hi = b
            if p == nd:
                cost += (hi != nd) + (lo != 0)
            elif lo >= p:
                cost += (hi != nd) + (lo != p)
            elif hi > p:
                cost += (hi != nd) + (lo != 0)
        key = (cost, rows < 16, p)
        if best is None or key < best[0]:
            best = (key, p)
    return best[1] if nd else 0


def _index(var: str, div: int, mod: int, skip_div: bool, skip_mod: bool) -> str:
    # indices are unsigned (the row range arrives as uint64): numba then skips its
    # negative-index wraparound, which would keep LLVM from vectorizing the loop
    e = var if skip_div else f"({var} // np.uint64({div}))"
    return e if skip_mod else f"({e} % np.uint64({mod}))"


def source(spec) -> tuple:
    """(Python source of the kernel, split axis) for a KernelSpec."""
    layout = spec.layout
    dims = layout.dims
    nd = len(dims)
    p = _split(layout)
    prod = lambda a, b: int(np.prod(dims[a:b], dtype=np.int64))  # noqa: E731
    n_in = len(spec.in_dtypes)
    # each value is computed at the outermost level where it can be: once per call
    # (scalars), once per row (values of the outer index), or per element; LLVM's loop
    # vectorizer also takes exponential time over deep DAGs of loop-invariant values
    top, outer, inner = [], [], []
    level = []
    alias = dict(spec.aliases)  # input k is output array alias[k]: read it from there
    for k in range(n_in):
        b = layout.block(k)
        if b is None:
            top.append(f"v{k} = a{k}[0]")
            level.append(0)
            continue
        lo, hi = b
        if k in alias:  # the whole array, in place: element i of the output
            inner.append(f"v{k} = r{alias[k]}[i]")
        elif p >= nd:  # flat loop: i is the only index
            idx = _index("i", prod(hi, nd), prod(lo, hi), hi == nd, lo == 0)
            inner.append(f"v{k} = a{k}[{idx}]")
        elif lo >= p:
            idx = _index("j", prod(hi, nd), prod(lo, hi), hi == nd, lo == p)
            inner.append(f"v{k} = a{k}[{idx}]")
        elif hi <= p:
            idx = _index("o", prod(hi, p), prod(lo, hi), hi == p, lo == 0)
            outer.append(f"v{k} = a{k}[{idx}]")
            level.append(1)
            continue
        else:
            idx = _index("i", prod(hi, nd), prod(lo, hi), hi == nd, lo == 0)
            inner.append(f"v{k} = a{k}[{idx}]")
        level.append(2)
    body = []
    done: list = []
    for j, (op, args, params, dtype) in enumerate(spec.members):
        names = [f"v{r}" if kind == "in" else f"t{r}" for kind, r in args]
        at = max([done[r] if kind == "m" else level[r] for kind, r in args] + [0])
        done.append(at)
        lines = _member(j, op, args, params, dtype, names, spec.consts)
        (top, outer, body)[at].extend(lines)
    params = ", ".join([f"a{k}" for k in range(n_in)]
                       + [f"r{m}" for m in range(len(spec.outputs))])
    lines = [f"def kernel(start, stop, C, {params}):"]
    if not nd:  # a single element: no loop (an empty range, the compiling call, writes
        # nothing: the outputs may be the inputs' own buffers)
        lines += ["    if stop <= start:", "        return"] + ["    " + s for s in top]
        lines += [f"    r{m}[0] = t{j}" for m, j in enumerate(spec.outputs)]
        return "\n".join(lines) + "\n", p
    lines += ["    " + s for s in top]
    stores = [f"r{m}[i] = t{j}" for m, j in enumerate(spec.outputs)]
    if p >= nd:
        lines.append("    for i in range(start, stop):")
        lines += ["        " + s for s in inner + body + stores]
    else:  # rows, then the inner loop over the trailing axes
        lines.append("    for o in range(start, stop):")
        lines += ["        " + s for s in outer]
        lines += ["        base = o * C", "        for j in range(C):", "            i = base + j"]
        lines += ["            " + s for s in inner + body + stores]
    return "\n".join(lines) + "\n", p


def _member(j: int, op: str, args: tuple, params: dict, dtype: np.dtype, names: list,
            consts: tuple) -> list:
    """The statements computing member ``j`` into ``t{j}``."""
    if op == "cast":
        dtype = np.dtype(params["dtype"])
    T = _ctor(dtype)
    bits = 32 if dtype == np.float32 else 64
    fmt = dict(o=f"t{j}", T=T, one=f"{T}(1)", zero=f"{T}(0)",
               inf=f"{T}(np.inf)", exp=f"_exp{bits}", log=f"_log{bits}", bits=bits,
               **dict(zip("abc", names)))
    lines = _template(op, args, params, dtype, consts).format(**fmt).split("\n")
    wrap = _WRAP.get(f"{dtype.kind}{dtype.itemsize}")
    if wrap and op != "cast":
        lines.append(f"t{j} = {wrap}(t{j})")
    return lines


# ------------------------------------------------------------------ compile and run

_cache: dict = {}
_ZERO = np.uint64(0)


class Kernel:
    """A compiled group: flattens its arrays and runs the jitted loop over row ranges."""

    def __init__(self, fn, rows: int, cols: int, name: str, src: str, cost: int = 1):
        self.fn, self.rows, self.cols, self.name, self.source = fn, rows, cols, name, src
        self.parts = rows if rows * cols * cost >= PARALLEL_WORK else 1
        self._whole = (_ZERO, np.uint64(rows), np.uint64(cols))  # (start, stop, cols)
        self._seen: set = set()  # argument kinds (dtype, writeable) compiled for

    def __call__(self, outs: list, ins: list) -> None:
        # each input's elements in C order are its covered axes in order: flat is enough
        args = [a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)
                for a in ins] + [o.reshape(-1) for o in outs]
        fn, cols = self.fn, self.cols
        if self.parts == 1:  # one call on this thread (small kernels are called often):
            known = len(fn.overloads)  # numba compiles new argument kinds in it
            t0 = time.perf_counter()
            fn(*self._whole, *args)
            if len(fn.overloads) > known:
                record_compile(self.name, time.perf_counter() - t0)
            return
        kinds = tuple((a.dtype.num, a.flags.writeable) for a in args)
        if kinds not in self._seen:  # compile here, not in several threads at once
            known = len(fn.overloads)
            t0 = time.perf_counter()
            fn(_ZERO, _ZERO, np.uint64(cols), *args)  # an empty range
            if len(fn.overloads) > known:
                record_compile(self.name, time.perf_counter() - t0)
            self._seen.add(kinds)
        u64 = np.uint64
        parallel_for(lambda start, stop: fn(u64(start), u64(stop), u64(cols), *args), self.rows,
                     self.parts)


def build(spec, name: str = "kernel") -> Kernel:
    """The kernel for ``spec``; equal specs share one compiled function."""
    src, p = source(spec)
    dims = spec.layout.dims
    rows = int(np.prod(dims[:p], dtype=np.int64)) if p < len(dims) else spec.layout.size
    cols = int(np.prod(dims[p:], dtype=np.int64)) if p < len(dims) else 1
    fn = _cache.get(src)
    if fn is None:
        ns = {"np": np, "math": math, **HELPERS}
        exec(compile(src, f"<chainrule kernel {name}>", "exec"), ns)
        fn = _numba.njit(fastmath=FASTMATH, error_model="numpy", cache=False,
                         nogil=True)(ns["kernel"])
        _cache[src] = fn
    cost = sum(_COSTLY.get(op, 1) for op, *_ in spec.members)
    return Kernel(fn, rows, cols, name, src, cost)
