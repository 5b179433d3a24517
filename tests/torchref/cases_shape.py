"""Reference cases: movement, indexing, matmul, einsum, softmax family, losses."""
from __future__ import annotations

import math  # noqa: F401

import numpy as np  # noqa: F401
import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401

import chainrule as cr  # noqa: F401

from .common import (  # noqa: F401
    CASES, INF, G, Case, case, fixed, index, ints, mask, nonzero, normal, positive, probs,
    same, uniform, _seed)

# ---------------------------------------------------------------------- movement

for _name, _fn, _dom in [
    ("reshape(6,4)", lambda x: x.reshape(6, 4), normal(2, 3, 4)),
    ("reshape((4,-1))", lambda x: x.reshape((4, -1)), normal(2, 3, 4)),
    ("reshape(-1)", lambda x: x.reshape(-1), normal(2, 3, 4)),
    ("reshape_0d", lambda x: x.reshape(1, 1), normal()),
    ("view(3,8)", lambda x: x.view(3, 8), normal(2, 3, 4)),
    ("view(-1,2)", lambda x: x.view(-1, 2), normal(2, 3, 4)),
    ("flatten()", lambda x: x.flatten(), normal(2, 3, 4)),
    ("flatten(1)", lambda x: x.flatten(1), normal(2, 3, 4)),
    ("flatten(0,1)", lambda x: x.flatten(0, 1), normal(2, 3, 4)),
    ("flatten_0d", lambda x: x.flatten(), normal()),
    ("squeeze()", lambda x: x.squeeze(), normal(2, 1, 3, 1)),
    ("squeeze(1)", lambda x: x.squeeze(1), normal(2, 1, 3, 1)),
    ("squeeze(-1)", lambda x: x.squeeze(-1), normal(2, 1, 3, 1)),
    ("squeeze(0)_noop", lambda x: x.squeeze(0), normal(2, 1, 3, 1)),
    ("squeeze((1,3))", lambda x: x.squeeze((1, 3)), normal(2, 1, 3, 1)),
    ("unsqueeze(0)", lambda x: x.unsqueeze(0), normal(2, 3)),
    ("unsqueeze(-1)", lambda x: x.unsqueeze(-1), normal(2, 3)),
    ("unsqueeze(1)", lambda x: x.unsqueeze(1), normal(2, 3)),
    ("permute(2,0,1)", lambda x: x.permute(2, 0, 1), normal(2, 3, 4)),
    ("permute((1,2,0))", lambda x: x.permute((1, 2, 0)), normal(2, 3, 4)),
    ("permute(-1,0,1)", lambda x: x.permute(-1, 0, 1), normal(2, 3, 4)),
    ("transpose(0,2)", lambda x: x.transpose(0, 2), normal(2, 3, 4)),
    ("transpose(-1,-2)", lambda x: x.transpose(-1, -2), normal(2, 3, 4)),
    ("T_2d", lambda x: x.T, normal(3, 4)),
    ("T_1d", lambda x: x.T * 1, normal(4)),
    ("mT", lambda x: x.mT, normal(2, 3, 4)),
    ("expand(2,3,4)", lambda x: x.expand(2, 3, 4), normal(3, 1)),
    ("expand(-1,5)", lambda x: x.expand(-1, 5), normal(3, 1)),
    ("expand_0d", lambda x: x.expand(2, 3), normal()),
    ("flip(0)", lambda x: x.flip(0), normal(3, 4, 2)),
    ("flip((0,2))", lambda x: x.flip((0, 2)), normal(3, 4, 2)),
    ("flip(-1)", lambda x: x.flip(-1), normal(3, 4, 2)),
    ("repeat(2,3)", lambda x: x.repeat(2, 3), normal(2, 3)),
    ("repeat(2,1,2)", lambda x: x.repeat(2, 1, 2), normal(2, 3)),
    ("repeat_1d", lambda x: x.repeat(3), normal(4)),
]:
    same(_name, _fn, _dom)
same("expand_as", lambda x, y: x.expand_as(y), normal(3, 1), normal(2, 3, 4), grad=(0,))
same("view_as", lambda x, y: x.view_as(y), normal(2, 6), normal(3, 4), grad=(0,))
same("reshape_as", lambda x, y: x.reshape_as(y), normal(12), normal(3, 4), grad=(0,))
same("masked_fill", lambda x, m: x.masked_fill(m, 0.5), normal(3, 4), mask(3, 4))
same("masked_fill_bcast", lambda x, m: x.masked_fill(m, -1.0), normal(3, 4), mask(4))
same("T_3d_as_permute", lambda x: x.T if isinstance(x, cr.Tensor) else x.permute(2, 1, 0),
     normal(2, 3, 4))
case("fn.reshape", lambda x: cr.reshape(x, (4, 6)), lambda x: torch.reshape(x, (4, 6)),
     normal(2, 3, 4))
case("fn.transpose", lambda x: cr.transpose(x, 0, 1), lambda x: torch.transpose(x, 0, 1),
     normal(2, 3, 4))
case("fn.swapaxes", lambda x: cr.swapaxes(x, 0, 2), lambda x: torch.swapaxes(x, 0, 2),
     normal(2, 3, 4))
case("fn.permute", lambda x: cr.permute(x, (1, 0)), lambda x: torch.permute(x, (1, 0)),
     normal(2, 3))
case("fn.broadcast_to", lambda x: cr.broadcast_to(x, (2, 3, 4)),
     lambda x: torch.broadcast_to(x, (2, 3, 4)), normal(3, 1))
case("fn.expand", lambda x: cr.expand(x, 2, -1, 4), lambda x: x.expand(2, -1, 4), normal(3, 1))
case("fn.flip", lambda x: cr.flip(x, (0, 1)), lambda x: torch.flip(x, (0, 1)), normal(3, 4))
case("fn.squeeze", lambda x: cr.squeeze(x), lambda x: torch.squeeze(x), normal(1, 3, 1))
case("fn.unsqueeze", lambda x: cr.unsqueeze(x, -2), lambda x: torch.unsqueeze(x, -2),
     normal(3, 4))
case("fn.flatten", lambda x: cr.flatten(x, 1, 2), lambda x: torch.flatten(x, 1, 2),
     normal(2, 3, 4, 5))
case("fn.view", lambda x: cr.view(x, (6, 4)), lambda x: x.view(6, 4), normal(2, 3, 4))
case("fn.repeat", lambda x: cr.repeat(x, 2, 2), lambda x: x.repeat(2, 2), normal(2, 3))
case("fn.masked_fill", lambda x, m: cr.masked_fill(x, m, 2.0),
     lambda x, m: torch.masked_fill(x, m, 2.0), normal(3, 4), mask(3, 4))

for _d in (0, 1, -1):
    case(f"cat(dim={_d})", lambda a, b, c, d=_d: cr.cat([a, b, c], d),
         lambda a, b, c, d=_d: torch.cat([a, b, c], d),
         *[normal(*[2 + (i if ax == _d % 3 else 0) for ax in range(3)]) for i in range(3)])
    case(f"stack(dim={_d})", lambda a, b, c, d=_d: cr.stack([a, b, c], d),
         lambda a, b, c, d=_d: torch.stack([a, b, c], d), normal(2, 3), normal(2, 3),
         normal(2, 3))
case("concatenate", lambda a, b: cr.concatenate((a, b), 1), lambda a, b: torch.cat((a, b), 1),
     normal(2, 3), normal(2, 1))
case("cat_partial_grad", lambda a, b: cr.cat([a, b]), lambda a, b: torch.cat([a, b]),
     normal(2, 3), normal(1, 3), grad=(1,))
for _name, _fn, _dom in [
    ("split(2)", lambda x: x.split(2), normal(5, 4)),
    ("split([1,4])", lambda x: x.split([1, 4]), normal(5, 4)),
    ("split(3,dim=1)", lambda x: x.split(3, dim=1), normal(5, 4)),
    ("split(2,-1)", lambda x: x.split(2, -1), normal(5, 4)),
    ("chunk(3)", lambda x: x.chunk(3), normal(5, 4)),
    ("chunk(2,dim=1)", lambda x: x.chunk(2, dim=1), normal(5, 4)),
    ("chunk(4)_of_6", lambda x: x.chunk(4), normal(6, 2)),
    ("split_one_used", lambda x: x.split(2)[1] * 3, normal(5, 4)),
]:
    same(_name, _fn, _dom)
case("fn.split", lambda x: cr.split(x, [2, 2, 1]), lambda x: torch.split(x, [2, 2, 1]),
     normal(5, 2))
case("fn.chunk", lambda x: cr.chunk(x, 2, -1), lambda x: torch.chunk(x, 2, -1), normal(2, 5))
for _p in [(1, 2), (1, 0, 0, 2), (0, 1, 2, 0, 1, 1)]:
    case(f"pad{_p}", lambda x, p=_p: cr.pad(x, p), lambda x, p=_p: F.pad(x, p), normal(2, 3, 4))
case("pad_value", lambda x: cr.pad(x, (2, 1), value=0.5),
     lambda x: F.pad(x, (2, 1), value=0.5), normal(3, 4))
for _d, _ishape in [(1, (3, 6)), (0, (5, 4)), (-1, (2, 3)), (1, (2, 2))]:
    case(f"gather(dim={_d},idx={list(_ishape)})", lambda x, i, d=_d: cr.gather(x, d, i),
         lambda x, i, d=_d: torch.gather(x, d, i), normal(3, 4), index(3, *_ishape))
same("method.gather", lambda x, i: x.gather(1, i), normal(3, 4), index(4, 3, 5))
case("take_along_dim", lambda x, i: cr.take_along_dim(x, 1, i),
     lambda x, i: torch.take_along_dim(x, i, 1), normal(3, 4), index(4, 3, 2))

# ---------------------------------------------------------------------- indexing

_A = np.arange(6)
for _name, _fn, _tfn, _dom in [
    ("[1]", lambda x: x[1], None, normal(4, 5)),
    ("[-1,2]", lambda x: x[-1, 2], None, normal(4, 5)),
    ("[1:3]", lambda x: x[1:3], None, normal(4, 5)),
    ("[:,::2]", lambda x: x[:, ::2], None, normal(4, 5)),
    ("[1:,-3:-1]", lambda x: x[1:, -3:-1], None, normal(4, 5)),
    ("[None]", lambda x: x[None], None, normal(4, 5)),
    ("[...,None]", lambda x: x[..., None], None, normal(4, 5)),
    ("[None,...,1]", lambda x: x[None, ..., 1], None, normal(2, 4, 5)),
    ("[...,1:3,None]", lambda x: x[..., 1:3, None], None, normal(2, 4, 5)),
    ("[0,...]", lambda x: x[0, ...], None, normal(2, 4, 5)),
    ("[:,None,2]", lambda x: x[:, None, 2], None, normal(4, 5)),
    ("[[0,2,0]]", lambda x: x[[0, 2, 0]], None, normal(4, 5)),
    ("[:,[4,4,1]]", lambda x: x[:, [4, 4, 1]], None, normal(4, 5)),
    ("[[0,1],[2,2]]", lambda x: x[[0, 1, 0], [2, 2, 2]], None, normal(4, 5)),
    ("[1:,[0,3,0]]", lambda x: x[1:, [0, 3, 0]], None, normal(4, 5)),
    ("[idx2d]", lambda x: x[np.array([[0, 1], [1, 1]])], None, normal(3, 5)),
    ("[[0,1],:,[2,2]]", lambda x: x[[0, 1], :, [2, 2]], None, normal(2, 3, 4)),
    ("[...,[1,1]]", lambda x: x[..., [1, 1]], None, normal(2, 3, 4)),
    ("[bool_1d]", lambda x: x[np.array([True, False, True, True])], None, normal(4, 5)),
    ("[:,bool_1d]", lambda x: x[:, np.array([True, False, True, False, True])], None,
     normal(4, 5)),
    ("[x>0]", lambda x: x[x > 0], None, normal(4, 5)),
    ("[::-1]", lambda x: x[::-1], lambda x: x.flip(0), normal(4, 5)),
    ("[:,::-2]", lambda x: x[:, ::-2], lambda x: x[:, torch.as_tensor(np.arange(5)[::-2].copy())],
     normal(4, 5)),
    ("[4:1:-2]", lambda x: x[4:1:-2], lambda x: x[torch.as_tensor(_A[4:1:-2].copy())],
     normal(6, 2)),
    ("[::-1,1]", lambda x: x[::-1, 1], lambda x: x.flip(0)[:, 1], normal(6, 2)),
]:
    case(f"getitem{_name}", _fn, _tfn or _fn, _dom)
same("getitem[tensor_idx]", lambda x, i: x[i], normal(4, 5), index(4, 6))
same("getitem[tensor_mask]", lambda x, m: x[m], normal(4, 5), mask(4, 5))
same("getitem[:,tensor_idx]", lambda x, i: x[:, i], normal(4, 5), index(5, 2, 3))
same("getitem_chain", lambda x: x[1:][:, [0, 0]][::2], normal(5, 3))
same("getitem[[-1,0,-1]]", lambda x: x[[-1, 0, -1]], normal(4, 5))
same("getitem[[]]", lambda x: x[[]], normal(4, 5),
     regression="indexing with an empty list x[[]] raises IndexError ('index arrays must be "
           "integer or boolean, got float64': np.asarray([]) is float64); NumPy and PyTorch "
           "return an empty (0, 5) selection")
same("getitem[[True,False,True,True]]", lambda x: x[[True, False, True, True]], normal(4, 5))
same("getitem[1,[0,2,2]]", lambda x: x[1, [0, 2, 2]], normal(4, 5))
same("getitem[-1:,None,[3,-1]]", lambda x: x[-1:, None, [3, -1]], normal(4, 5))
same("getitem_0d_from_1d", lambda x: x[2] * x[0], normal(4))


def _assign(idx):
    """y = x * 1; y[idx] = v: the gradient reaches x outside idx and v through idx."""
    def fn(x, v):
        y = x * 1
        y[idx] = v
        return y * 1
    return fn


for _name, _idx, _vshape in [
    ("[1]=row", 1, (4,)),
    ("[1]=bcast", 1, ()),
    ("[:,1:3]=", (slice(None), slice(1, 3)), (3, 2)),
    ("[:,1:3]=bcast_row", (slice(None), slice(1, 3)), (2,)),
    ("[::2]=", slice(None, None, 2), (2, 4)),
    ("[[0,2]]=", [0, 2], (2, 4)),
    ("[[0,2],[1,3]]=", ([0, 2], [1, 3]), (2,)),
    ("[...,0]=", (Ellipsis, 0), (3,)),
    ("[None,1]=", (None, 1), (1, 4)),
]:
    same(f"setitem{_name}", _assign(_idx), normal(3, 4), normal(*_vshape))
same("setitem[mask]=scalar_tensor", lambda x, m, v: _assign(m)(x, v),
     normal(3, 4), mask(3, 4), normal())
same("setitem[::-1]=", lambda x, v: _assign(slice(None, None, -1))(x, v)
     if isinstance(x, cr.Tensor) else _assign(torch.arange(2, -1, -1))(x, v),
     normal(3, 4), normal(3, 4))


def _assign_scalar(x):
    y = x * 1
    y[0, 1] = 5.0
    return y * 2


def _assign_twice(x, v, w):
    y = x * 1
    y[0] = v
    y[:, 1] = w  # overwrites part of v: that part of v's gradient is 0
    return y.exp()


same("setitem_python_scalar", _assign_scalar, normal(3, 4))
_FIXED_MASK = fixed([[True, False, False, True], [False, True, False, False],
                     [False, False, False, True]], bool)
same("setitem[mask]=vector", lambda x, m, v: _assign(m)(x, v), normal(3, 4), _FIXED_MASK,
     normal(4))


def _assign_into_constant(base, v):
    y = base * 1  # requires no grad: only the assigned value does
    y[1:, ::2] = v
    return y.sum(0)


same("setitem_into_constant", _assign_into_constant, normal(3, 4), normal(2, 2), grad=(1,))


def _view_then_assign(view):
    def fn(x, v):
        y = x * 1
        a = view(y)  # a view of y, taken before the in-place write
        y[0] = v
        return a * 3  # PyTorch: a sees v, and its gradient goes to v
    return fn


def _view_then_assign(view):
    def fn(x, v):
        y = x * 1
        a = view(y)  # a view of y, taken before the in-place write
        y[0] = v
        return a * 3  # a sees v, and its gradient goes to v
    return fn


# regression: such views once kept their old graph node (gradients to x instead of v)
same("setitem_after_view[row]", _view_then_assign(lambda y: y[0]), normal(3, 4), normal(4))
same("setitem_after_view[reshape]", _view_then_assign(lambda y: y.reshape(-1)), normal(3, 4),
     normal(4))
same("setitem_after_view[T]", _view_then_assign(lambda y: y.T), normal(3, 4), normal(4))
same("setitem_after_view[0d]", _view_then_assign(lambda y: y[0]), normal(3), normal())


def _inplace_on_views(x, v):
    y = x * 1
    y[:, 1].mul_(v[:3])
    z = y.reshape(12)
    z[2:6] *= v
    y.T[1] += v[:3]
    return y.exp()


same("inplace_on_views", _inplace_on_views, normal(3, 4), normal(4))


def _assign_into_buffer(x, v):
    buf = x * 0  # a buffer with history; its rows are written through views
    buf[1] = v * 3
    buf[1][2] += v[0]
    return buf * x


same("assign_into_buffer_views", _assign_into_buffer, normal(3, 4), normal(4))


def _getitem_iadd(x, v):
    y = x * 1
    y[0] += v
    return y * 2


same("setitem_getitem_iadd", _getitem_iadd, normal(3, 4), normal(4))
same("masked_fill_tensor_value", lambda x, m, v: x.masked_fill(m, v), normal(3, 4), mask(3, 4),
     normal())
same("setitem_twice", _assign_twice, normal(3, 4), normal(4), normal(3))

# ------------------------------------------------------------------------ matmul

for _sa, _sb in [((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((3, 4), (4, 5)),
                 ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)),
                 ((2, 3, 4), (4,)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)),
                 ((0, 4), (4, 2)), ((3, 0), (0, 2))]:
    case(f"matmul{list(_sa)}{list(_sb)}", cr.matmul, torch.matmul, normal(*_sa), normal(*_sb),
         f32=(_sa, _sb) == ((2, 3, 4), (2, 4, 5)), rtol=1e-10)
    same(f"@{list(_sa)}{list(_sb)}", lambda a, b: a @ b, normal(*_sa), normal(*_sb))
same("method.matmul", lambda a, b: a.matmul(b), normal(3, 4), normal(4, 2))
same("matmul_partial_grad", lambda a, b: a @ b, normal(3, 4), normal(4, 2), grad=(1,))

# ------------------------------------------------------------------------ einsum

for _eq, _shapes in [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij->j", [(3, 4)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,jk->...ik", [(2, 6, 3, 4), (4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ijk->kij", [(2, 3, 4)]),
    ("i,ij->j", [(3,), (3, 4)]),
    ("ij,k->ijk", [(2, 3), (4,)]),
    ("ij,jk->i", [(2, 3), (3, 4)]),
    ("i,i->i", [(4,), (4,)]),
    ("ab, bc -> ca", [(2, 3), (3, 4)]),
]:
    case(f"einsum({_eq})", lambda *xs, e=_eq: cr.einsum(e, *xs),
         lambda *xs, e=_eq: torch.einsum(e, *xs), *[normal(*s) for s in _shapes],
         f32=_eq == "bij,bjk->bik")
case("einsum(list)", lambda a, b: cr.einsum("ij,jk->ik", [a, b]),
     lambda a, b: torch.einsum("ij,jk->ik", [a, b]), normal(2, 3), normal(3, 2))
case("einsum(ii->i)", lambda x: cr.einsum("ii->i", x), lambda x: torch.einsum("ii->i", x),
     normal(3, 3), regression="einsum: no gradient for a repeated index in one operand "
                         "(NotImplementedError for diagonal 'ii->i'); PyTorch supports it")
case("einsum(ii->)", lambda x: cr.einsum("ii->", x), lambda x: torch.einsum("ii->", x),
     normal(3, 3), regression="einsum: no gradient for a repeated index in one operand "
                         "(NotImplementedError for the trace 'ii->'); PyTorch supports it")
case("einsum(...i,...i->...)_bcast", lambda a, b: cr.einsum("...i,...i->...", a, b),
     lambda a, b: torch.einsum("...i,...i->...", a, b), normal(2, 1, 3), normal(4, 3),
     regression="einsum: backward through broadcast ellipsis dims (shapes (2,1,3),(4,3)) gives a "
           "(2,4,3) gradient for the (2,1,3) input: 'internal error in the vjp rule of "
           "einsum' (the gradient is not summed back over broadcast dims)")

# ---------------------------------------------------------------- softmax family

for _d in (0, 1, -1):
    case(f"softmax(dim={_d})", lambda x, d=_d: cr.softmax(x, d),
         lambda x, d=_d: torch.softmax(x, d), normal(3, 4, 5), f32=_d == -1)
    case(f"log_softmax(dim={_d})", lambda x, d=_d: cr.log_softmax(x, d),
         lambda x, d=_d: torch.log_softmax(x, d), normal(3, 4, 5), f32=_d == -1)
case("softmax_large", lambda x: cr.softmax(x, -1), lambda x: torch.softmax(x, -1),
     normal(3, 6, scale=300.0))
case("log_softmax_large", lambda x: cr.log_softmax(x, -1), lambda x: torch.log_softmax(x, -1),
     normal(3, 6, scale=300.0), rtol=1e-10, atol=1e-9)
same("method.softmax", lambda x: x.softmax(0), normal(3, 4))
same("method.log_softmax", lambda x: x.log_softmax(dim=1), normal(3, 4))
case("softmax_1d", cr.softmax, lambda x: torch.softmax(x, -1), normal(5))
case("log_sigmoid_fn", cr.log_sigmoid, F.logsigmoid, normal(3, 4), f32=True)

# ------------------------------------------------------------------------ losses

_RED = ("mean", "sum", "none")
for _r in _RED:
    # binary_cross_entropy_with_logits: soft targets (gradient to both)
    case(f"bce_logits({_r})", lambda x, y, r=_r: cr.binary_cross_entropy_with_logits(
        x, y, reduction=r), lambda x, y, r=_r: F.binary_cross_entropy_with_logits(
        x, y, reduction=r), normal(4, 3, scale=3.0), uniform(0, 1, 4, 3), f32=_r == "mean")
    case(f"bce_logits_weight({_r})", lambda x, y, w, r=_r: cr.binary_cross_entropy_with_logits(
        x, y, weight=w, reduction=r), lambda x, y, w, r=_r: F.binary_cross_entropy_with_logits(
        x, y, weight=w, reduction=r), normal(4, 3, scale=3.0), uniform(0, 1, 4, 3),
        positive(3), grad=(0, 1))
    case(f"bce_logits_pos_weight({_r})",
         lambda x, y, p, r=_r: cr.binary_cross_entropy_with_logits(x, y, pos_weight=p,
                                                                   reduction=r),
         lambda x, y, p, r=_r: F.binary_cross_entropy_with_logits(x, y, pos_weight=p,
                                                                  reduction=r),
         normal(4, 3, scale=3.0), uniform(0, 1, 4, 3), positive(3), grad=(0, 1))
    case(f"bce_logits_both_weights({_r})",
         lambda x, y, w, p, r=_r: cr.binary_cross_entropy_with_logits(
             x, y, weight=w, pos_weight=p, reduction=r),
         lambda x, y, w, p, r=_r: F.binary_cross_entropy_with_logits(
             x, y, weight=w, pos_weight=p, reduction=r),
         normal(4, 3, scale=3.0), uniform(0, 1, 4, 3), positive(4, 1), positive(3),
         grad=(0, 1))
    case(f"bce({_r})", lambda p, y, r=_r: cr.binary_cross_entropy(p, y, reduction=r),
         lambda p, y, r=_r: F.binary_cross_entropy(p, y, reduction=r),
         uniform(0.05, 0.95, 4, 3), uniform(0, 1, 4, 3), f32=_r == "mean")
    case(f"bce_weight({_r})", lambda p, y, w, r=_r: cr.binary_cross_entropy(
        p, y, weight=w, reduction=r), lambda p, y, w, r=_r: F.binary_cross_entropy(
        p, y, weight=w, reduction=r), uniform(0.05, 0.95, 4, 3), uniform(0, 1, 4, 3),
        positive(4, 3), grad=(0, 1))
    case(f"mse_loss({_r})", lambda a, b, r=_r: cr.mse_loss(a, b, reduction=r),
         lambda a, b, r=_r: F.mse_loss(a, b, reduction=r), normal(4, 3), normal(4, 3),
         f32=_r == "mean")
    case(f"l1_loss({_r})", lambda a, b, r=_r: cr.l1_loss(a, b, reduction=r),
         lambda a, b, r=_r: F.l1_loss(a, b, reduction=r), normal(4, 3), normal(4, 3))
case("bce_logits_hard_labels", cr.binary_cross_entropy_with_logits,
     F.binary_cross_entropy_with_logits, normal(4, 3, scale=3.0), ints(0, 2, 4, 3), grad=(0,))
case("bce_logits_extreme", cr.binary_cross_entropy_with_logits,
     F.binary_cross_entropy_with_logits, fixed([-800.0, -30.0, 0.0, 30.0, 800.0]),
     fixed([0.0, 1.0, 0.5, 0.0, 1.0]), grad=(0,))
case("bce_logits_hard_labels_target_grad",
     lambda x, y: cr.binary_cross_entropy_with_logits(x, y, reduction="sum"),
     lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="sum"),
     normal(4, 3, scale=3.0), ints(0, 2, 4, 3),
     regression="binary_cross_entropy_with_logits: the gradient w.r.t. the target is wrong where "
           "the target is exactly 0 or 1 (the strong-zero where(y == 0, 0, y * ...) in _xmul "
           "cuts d/dy); PyTorch gives -x (the logit) there")
case("bce_hard_labels", cr.binary_cross_entropy, F.binary_cross_entropy,
     uniform(0.05, 0.95, 4, 3), ints(0, 2, 4, 3))
case("l1_loss_ties", cr.l1_loss, F.l1_loss, ints(-1, 2, 5), ints(-1, 2, 5))

_N, _C = 5, 4
for _r in _RED:
    # class indices
    case(f"cross_entropy({_r})", lambda x, t, r=_r: cr.cross_entropy(x, t, reduction=r),
         lambda x, t, r=_r: F.cross_entropy(x, t, reduction=r), normal(_N, _C),
         index(_C, _N), f32=_r == "mean")
    case(f"cross_entropy_weight({_r})", lambda x, t, w, r=_r: cr.cross_entropy(
        x, t, weight=w, reduction=r), lambda x, t, w, r=_r: F.cross_entropy(
        x, t, weight=w, reduction=r), normal(_N, _C), index(_C, _N), positive(_C), grad=(0,))
    case(f"cross_entropy_ignore({_r})", lambda x, t, r=_r: cr.cross_entropy(
        x, t, ignore_index=1, reduction=r), lambda x, t, r=_r: F.cross_entropy(
        x, t, ignore_index=1, reduction=r), normal(_N, _C), fixed([1, 0, 1, 3, 2], np.int64))
    case(f"cross_entropy_ignore_-100({_r})", lambda x, t, r=_r: cr.cross_entropy(
        x, t, reduction=r), lambda x, t, r=_r: F.cross_entropy(x, t, reduction=r),
        normal(_N, _C), fixed([-100, 0, 2, -100, 3], np.int64))
    case(f"cross_entropy_smoothing({_r})", lambda x, t, r=_r: cr.cross_entropy(
        x, t, label_smoothing=0.1, reduction=r), lambda x, t, r=_r: F.cross_entropy(
        x, t, label_smoothing=0.1, reduction=r), normal(_N, _C), index(_C, _N))
    case(f"cross_entropy_smoothing_weight_ignore({_r})",
         lambda x, t, w, r=_r: cr.cross_entropy(x, t, weight=w, ignore_index=2,
                                                label_smoothing=0.2, reduction=r),
         lambda x, t, w, r=_r: F.cross_entropy(x, t, weight=w, ignore_index=2,
                                               label_smoothing=0.2, reduction=r),
         normal(_N, _C), fixed([2, 0, 1, 3, 2], np.int64), positive(_C), grad=(0,))
    # class probabilities (gradient to the target as well)
    case(f"cross_entropy_probs({_r})", lambda x, t, r=_r: cr.cross_entropy(x, t, reduction=r),
         lambda x, t, r=_r: F.cross_entropy(x, t, reduction=r), normal(_N, _C),
         probs(_N, _C))
    case(f"cross_entropy_probs_smoothing_weight({_r})",
         lambda x, t, w, r=_r: cr.cross_entropy(x, t, weight=w, label_smoothing=0.15,
                                                reduction=r),
         lambda x, t, w, r=_r: F.cross_entropy(x, t, weight=w, label_smoothing=0.15,
                                               reduction=r),
         normal(_N, _C), probs(_N, _C), positive(_C), grad=(0, 1))
    # (N, C, d) inputs
    case(f"cross_entropy_NCd({_r})", lambda x, t, r=_r: cr.cross_entropy(x, t, reduction=r),
         lambda x, t, r=_r: F.cross_entropy(x, t, reduction=r), normal(3, _C, 5),
         index(_C, 3, 5))
    case(f"cross_entropy_NCd_all({_r})",
         lambda x, t, w, r=_r: cr.cross_entropy(x, t, weight=w, ignore_index=0,
                                                label_smoothing=0.1, reduction=r),
         lambda x, t, w, r=_r: F.cross_entropy(x, t, weight=w, ignore_index=0,
                                               label_smoothing=0.1, reduction=r),
         normal(3, _C, 2, 3), index(_C, 3, 2, 3), positive(_C), grad=(0,))
    case(f"cross_entropy_NCd_probs({_r})", lambda x, t, r=_r: cr.cross_entropy(
        x, t, reduction=r), lambda x, t, r=_r: F.cross_entropy(x, t, reduction=r),
        normal(3, _C, 5), probs(3, _C, 5))
    # nll_loss
    case(f"nll_loss({_r})", lambda x, t, r=_r: cr.nll_loss(x, t, reduction=r),
         lambda x, t, r=_r: F.nll_loss(x, t, reduction=r), normal(_N, _C), index(_C, _N))
    case(f"nll_loss_weight_ignore({_r})", lambda x, t, w, r=_r: cr.nll_loss(
        x, t, weight=w, ignore_index=3, reduction=r), lambda x, t, w, r=_r: F.nll_loss(
        x, t, weight=w, ignore_index=3, reduction=r), normal(_N, _C),
        fixed([3, 0, 1, 3, 2], np.int64), positive(_C), grad=(0,))
    case(f"nll_loss_NCd({_r})", lambda x, t, w, r=_r: cr.nll_loss(x, t, weight=w, reduction=r),
         lambda x, t, w, r=_r: F.nll_loss(x, t, weight=w, reduction=r), normal(3, _C, 5),
         index(_C, 3, 5), positive(_C), grad=(0,))
for _r in ("mean", "sum"):
    case(f"cross_entropy_1d({_r})", lambda x, t, r=_r: cr.cross_entropy(x, t, reduction=r),
         lambda x, t, r=_r: F.cross_entropy(x, t, reduction=r), normal(_C),
         fixed(2, np.int64))
    case(f"nll_loss_1d({_r})", lambda x, t, r=_r: cr.nll_loss(x, t, reduction=r),
         lambda x, t, r=_r: F.nll_loss(x, t, reduction=r), normal(_C), fixed(2, np.int64))
case("cross_entropy_1d(none)", lambda x, t: cr.cross_entropy(x, t, reduction="none"),
     lambda x, t: F.cross_entropy(x, t, reduction="none"), normal(_C), fixed(2, np.int64),
     regression="cross_entropy/nll_loss with an unbatched (C,) input and a 0-d target, "
           "reduction='none': result has shape (1,), PyTorch returns a 0-d tensor")
case("nll_loss_1d(none)", lambda x, t: cr.nll_loss(x, t, reduction="none"),
     lambda x, t: F.nll_loss(x, t, reduction="none"), normal(_C), fixed(2, np.int64),
     regression="nll_loss with an unbatched (C,) input and a 0-d target, reduction='none': "
           "result has shape (1,), PyTorch returns a 0-d tensor")
case("cross_entropy_1d_smoothing(none)",
     lambda x, t: cr.cross_entropy(x, t, reduction="none", label_smoothing=0.1),
     lambda x, t: F.cross_entropy(x, t, reduction="none", label_smoothing=0.1), normal(_C),
     fixed(1, np.int64),
     regression="cross_entropy with an unbatched (C,) input, a 0-d target, label_smoothing > 0 and "
           "reduction='none' returns shape (1,) (the smoothing term keeps the added batch "
           "dim); PyTorch returns a 0-d tensor")
case("cross_entropy_1d_smoothing(mean)",
     lambda x, t: cr.cross_entropy(x, t, label_smoothing=0.1),
     lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), normal(_C), fixed(1, np.int64))
case("cross_entropy_1d_probs", cr.cross_entropy, F.cross_entropy, normal(_C), probs(_C, axis=0))
case("cross_entropy_large_logits", cr.cross_entropy, F.cross_entropy,
     normal(_N, _C, scale=500.0), index(_C, _N), atol=1e-9)

for _name, _c, _t, _dom in [
    ("one_hot", lambda i: cr.one_hot(i), lambda i: F.one_hot(i), index(5, 7)),
    ("one_hot(num_classes=6)", lambda i: cr.one_hot(i, 6), lambda i: F.one_hot(i, 6),
     index(4, 7)),
    ("one_hot_2d", lambda i: cr.one_hot(i, num_classes=3), lambda i: F.one_hot(i, 3),
     index(3, 2, 4)),
    ("one_hot_0d", lambda i: cr.one_hot(i, 4), lambda i: F.one_hot(i, 4), fixed(2, np.int64)),
]:
    case(_name, _c, _t, _dom)
