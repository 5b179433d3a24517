"""Linear algebra primitives: matmul (batched, NumPy's 1-D rules), linear and einsum."""
from __future__ import annotations

import string

import numpy as np

from ..core import dispatch
from ..core.dispatch import bind
from ..core.primitive import defprim
from ..core.tensor import Tensor, _make
from . import elementwise as ew
from ._util import const, per_batch
from . import reduce as rd
from .creation import eye
from .movement import P_transpose, broadcast_to, reshape, sum_to, transpose


def _matmul_shapes(a_shape, b_shape):
    """Shapes with 1-D operands promoted, and the promoted result shape."""
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    return a2, b2, tuple(batch) + (a2[-2], b2[-1])


def _matmul_rule(a, b):
    _, _, out = _matmul_shapes(a.shape, b.shape)
    if len(a.shape) == 1:
        out = out[:-2] + out[-1:]
    if len(b.shape) == 1:
        out = out[:-1]
    return out, np.result_type(a.dtype, b.dtype)


def _matmul_vjp(g, out, a, b):
    if a.ndim == 2 and b.ndim == 2:  # the common case, without reshapes
        ga = bind(P_matmul, g, bind(P_transpose, b, axes=(1, 0))) if a.requires_grad else None
        gb = None
        if b.requires_grad:
            bd = b.data
            if bd.__class__ is np.ndarray and bd.flags.f_contiguous and not bd.flags.c_contiguous:
                # b is a transposed view (nn.Linear's W.T): its gradient in the same memory
                # order, so W's gradient comes out C-ordered like W (the update then runs
                # on matching layouts: 5x faster for SGD here)
                gb = bind(P_transpose, bind(P_matmul, bind(P_transpose, g, axes=(1, 0)), a),
                          axes=(1, 0))
            else:
                gb = bind(P_matmul, bind(P_transpose, a, axes=(1, 0)), g)
        return ga, gb
    a2, b2, o2 = _matmul_shapes(a.shape, b.shape)
    g2 = reshape(g, o2)
    ga = gb = None
    if a.requires_grad:
        bt = transpose(reshape(b, b2), -1, -2)
        ga = reshape(sum_to(matmul(g2, bt), a2), a.shape)
    if b.requires_grad:
        at = transpose(reshape(a, a2), -1, -2)
        gb = reshape(sum_to(matmul(at, g2), b2), b.shape)
    return ga, gb


def _matmul_jvp(t, out, a, b):
    return ew._plus(matmul(t[0], b) if t[0] is not None else None,
                    matmul(a, t[1]) if t[1] is not None else None)


P_matmul = defprim("matmul", np.matmul, _matmul_rule, _matmul_vjp, _matmul_jvp, saves=(0, 1))


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's rules: batched, broadcast batch dims, 1-D operands."""
    a = a if isinstance(a, Tensor) else const(a)
    b = b if isinstance(b, Tensor) else const(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes "
                         f"{tuple(a.shape)} @ {tuple(b.shape)}, at {dispatch.user_site()}")
    k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise ValueError(f"matmul: {tuple(a.shape)} @ {tuple(b.shape)} — inner dimensions "
                         f"{k_a} and {k_b} differ, at {dispatch.user_site()}")
    if a.dtype != b.dtype:
        dt = np.result_type(a.dtype, b.dtype)
        a, b = ew.cast(a, dt), ew.cast(b, dt)
    return bind(P_matmul, a, b)

# ---------------------------------------------------------------- linear
# x @ w.T (+ b) for x (N, in), w (out, in), b (out,): nn.Linear's product as one row, so
# a layer is one node (not transpose, matmul and add), the bias is added in place into
# the product's fresh buffer, and w's gradient is g.T @ x, in w's own (C) order.
# With at least twice as many outputs as rows, the product is computed as (w @ x.T).T,
# an F-ordered result: OpenBLAS runs that shape 6-13% faster here (784->512 and 512->512
# layers at batch 128), with the same numbers. The activations then stay F-ordered through
# the elementwise ops (NumPy keeps the inputs' order), and the next layer reads x.T as a
# C-ordered matrix. The jit computes the same orders (``compile/passes/order.py``).


def by_columns(n: int, out_features: int) -> bool:
    """Whether ``linear`` computes an (n, out_features) product as ``(w @ x.T).T``."""
    return n >= 16 and out_features >= 2 * n


def _linear_impl(x, w, *b):
    if by_columns(x.shape[0], w.shape[0]):
        out = np.matmul(w, x.T).T
    else:
        out = np.matmul(x, w.T)
    return np.add(out, b[0], out=out) if b else out


def _linear_rule(x, w, *b):
    return (x.shape[0], w.shape[0]), np.result_type(x.dtype, w.dtype)


def _linear_vjp(g, out, x, w, *b):
    gx = None
    if x.requires_grad:  # g @ w, as linear(g, w.T) where that runs by columns
        gx = (bind(P_linear, g, bind(P_transpose, w, axes=(1, 0)))
              if by_columns(g.shape[0], w.shape[1]) else bind(P_matmul, g, w))
    gb_needed = bool(b) and b[0].requires_grad
    gt = bind(P_transpose, g, axes=(1, 0)) if w.requires_grad or gb_needed else None
    gw = bind(P_matmul, gt, x) if w.requires_grad else None
    if not b:
        return gx, gw
    # the bias gradient, g summed over its rows, as g.T @ ones: one BLAS gemv (as Caffe
    # computes it), 1.5-7x faster here than NumPy's reduction, and as fast for either
    # memory order of g (128x512: 9 and 25 us reduced, 5 and 7 us as a product)
    if not gb_needed:
        return gx, gw, None
    return gx, gw, bind(P_matmul, gt, _make(per_batch("ones", g.shape[0], g.dtype)))


def _linear_jvp(t, out, x, w, *b):
    return ew._plus(bind(P_linear, t[0], w) if t[0] is not None else None,
                    bind(P_linear, x, t[1]) if t[1] is not None else None,
                    broadcast_to(t[2], out.shape) if b and t[2] is not None else None)


P_linear = defprim("linear", _linear_impl, _linear_rule, _linear_vjp, _linear_jvp,
                   saves=(0, 1))


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``x @ w.T + b`` for a 2-D ``x`` (N, in), ``w`` (out, in) and ``b`` (out,) or None;
    the checks and the other ranks are ``nn.functional.linear``'s."""
    dt = x.dtype
    if w.dtype != dt or (b is not None and b.dtype != dt):  # (the common case skips this)
        dt = np.result_type(x.dtype, w.dtype, *([b.dtype] if b is not None else []))
        x, w = (v if v.dtype == dt else ew.cast(v, dt) for v in (x, w))
        b = b if b is None or b.dtype == dt else ew.cast(b, dt)
    return bind(P_linear, x, w) if b is None else bind(P_linear, x, w, b)


# ---------------------------------------------------------------- einsum


def _parse_einsum(equation: str, shapes) -> str:
    """Explicit form of an einsum equation: ellipses spelled out, output given."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: equation {equation!r} has {len(terms)} operands, "
                         f"got {len(shapes)} tensors")
    used = set(eq) - set(".,->")
    free = [c for c in string.ascii_letters if c not in used]
    ell_nd = max((len(s) - (len(t) - 3) for t, s in zip(terms, shapes) if "..." in t), default=0)
    ell = "".join(free[:ell_nd])
    terms = [t.replace("...", ell[ell_nd - (len(s) - (len(t) - 3)):]) if "..." in t else t
             for t, s in zip(terms, shapes)]
    for t, s in zip(terms, shapes):
        if len(t) != len(s):
            raise ValueError(f"einsum: operand {t!r} has {len(t)} indices but shape {tuple(s)}")
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {c: "".join(terms).count(c) for c in set("".join(terms))}
        out = ell + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell))
    return ",".join(terms) + "->" + out


def _einsum_rule(*xs, equation):
    lhs, out = equation.split("->")
    size = {}
    for term, x in zip(lhs.split(","), xs):
        for c, n in zip(term, x.shape):
            m = size.setdefault(c, n)
            if m != n and 1 not in (m, n):
                raise ValueError(f"einsum: index {c!r} has sizes {m} and {n}")
            size[c] = max(m, n)
    return tuple(size[c] for c in out), np.result_type(*[x.dtype for x in xs])


def _einsum_vjp(g, out, *xs, equation):
    """The cotangent of operand i is an einsum of g with the other operands.

    A letter repeated inside operand i (a diagonal) is renamed and tied back with an
    identity matrix; letters summed inside operand i alone are broadcast back; size-1
    dims that were broadcast are summed back.
    """
    lhs, res = equation.split("->")
    terms = lhs.split(",")
    size = {c: n for t, x in zip(terms, xs) for c, n in zip(t, x.shape) if n != 1}
    unused = [c for c in string.ascii_letters if c not in equation]
    grads = []
    for i, (term, x) in enumerate(zip(terms, xs)):
        if not x.requires_grad:
            grads.append(None)
            continue
        renamed, ties = "", []
        for c in term:
            if c in renamed:
                fresh = unused.pop()
                ties.append(c + fresh)
                renamed += fresh
            else:
                renamed += c
        others = [t for j, t in enumerate(terms) if j != i] + ties
        operands = [xs[j] for j in range(len(xs)) if j != i]
        operands += [eye(size.get(t[0], 1), dtype=g.dtype) for t in ties]
        avail = set(res).union(*others)
        kept = "".join(c for c in renamed if c in avail)
        gi = einsum(",".join([res] + others) + "->" + kept, g, *operands)
        if kept != renamed:  # letters summed inside this operand only: broadcast back
            gi = reshape(gi, tuple(gi.shape[kept.index(c)] if c in avail else 1
                                   for c in renamed))
        if gi.shape != x.shape:
            ones = tuple(k for k, n in enumerate(x.shape) if n == 1 and gi.shape[k] != 1)
            if ones:
                gi = rd.sum(gi, ones, keepdim=True)
            gi = broadcast_to(gi, x.shape)
        grads.append(gi)
    return tuple(grads)


def _einsum_jvp(t, out, *xs, equation):
    terms = []
    for i, ti in enumerate(t):
        if ti is not None:
            args = list(xs)
            args[i] = ti
            terms.append(bind(P_einsum, *args, equation=equation))
    return ew._plus(*terms)


P_einsum = defprim("einsum",
                   lambda *xs, equation: np.asarray(np.einsum(equation, *xs, optimize=len(xs) > 2)),
                   _einsum_rule, _einsum_vjp, _einsum_jvp, saves=(0, 1, 2, 3, 4, 5, 6, 7))


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, e.g. ``einsum("bij,bjk->bik", a, b)``; differentiable."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    ops = [o if isinstance(o, Tensor) else const(o) for o in operands]
    dt = np.result_type(*[o.dtype for o in ops])
    ops = [ew.cast(o, dt) for o in ops]
    eq = _parse_einsum(equation, [o.shape for o in ops])
    return bind(P_einsum, *ops, equation=eq)
