"""Movement primitives (reshape, transpose, broadcast_to, indexing, cat, pad) and the
shape ops composed from them (view, squeeze, unsqueeze, flatten, expand, split,
chunk, stack, flip, repeat)."""
from __future__ import annotations

import builtins

import numpy as np

from ..core.dispatch import bind
from ..core.primitive import defprim
from ..core.tensor import Tensor
from . import elementwise as ew
from ._util import const, norm_axis, scalar
from .creation import zeros_like


def _t(x):
    return x if isinstance(x, Tensor) else const(x)


def _reshape_rule(x, *, shape):
    return np.empty(x.shape, dtype=bool).reshape(shape).shape, x.dtype


# (the ndarray methods: np.reshape and np.transpose add a Python wrapper, ~1 us a call)
P_reshape = defprim("reshape", lambda x, *, shape: x.reshape(shape), _reshape_rule,
                    lambda g, out, x, *, shape: (reshape(g, x.shape),),
                    lambda t, out, x, *, shape: reshape(t[0], shape), view=True)

P_transpose = defprim("transpose", lambda x, *, axes: x.transpose(axes),
                      lambda x, *, axes: (tuple(x.shape[a] for a in axes), x.dtype),
                      lambda g, out, x, *, axes: (permute(g, tuple(np.argsort(axes))),),
                      lambda t, out, x, *, axes: permute(t[0], axes), view=True)


def sum_to(g: Tensor, shape: tuple) -> Tensor:
    """Sum ``g`` down to ``shape`` (the transpose of broadcasting ``shape`` to g.shape)."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    ones = tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
    if not ones:  # only leading dims were added (a bias): one reduction, no reshape
        return bind(rd.P_sum, g, axis=tuple(range(lead)), keepdims=False)
    out = bind(rd.P_sum, g, axis=tuple(range(lead)) + ones, keepdims=True)
    return reshape(out, shape)


def _broadcast_impl(x, *, shape):
    """np.broadcast_to, without its Python overhead (~3 us) for contiguous inputs."""
    lead = len(shape) - x.ndim
    if lead < 0 or not x.flags.c_contiguous:
        return np.broadcast_to(x, shape)
    strides = [0] * lead
    for n, m, st in zip(x.shape, shape[lead:], x.strides):
        if n != m and n != 1:
            return np.broadcast_to(x, shape)  # let NumPy raise its error
        strides.append(st if n == m else 0)
    out = np.ndarray(shape, x.dtype, x, 0, tuple(strides))
    out.flags.writeable = False
    return out


def _broadcast_rule(x, *, shape):
    if np.broadcast_shapes(x.shape, shape) != tuple(shape):
        raise ValueError(f"broadcast_to: cannot broadcast {x.shape} to {shape}")
    return tuple(shape), x.dtype


P_broadcast_to = defprim(
    "broadcast_to", _broadcast_impl, _broadcast_rule,
    lambda g, out, x, *, shape: (sum_to(g, x.shape),),
    lambda t, out, x, *, shape: broadcast_to(t[0], shape), view=True)

# ---------------------------------------------------------------- indexing


def _is_basic(index: tuple) -> bool:
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in index)


def norm_index(index) -> tuple:
    """Canonical index param: a tuple of ints, slices, None, Ellipsis and int/bool arrays."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, Tensor):
            i = i.data
        if isinstance(i, (bool, np.bool_)):
            i = np.asarray(i)
        elif isinstance(i, (int, np.integer)):
            i = int(i)
        elif isinstance(i, (list, range)):
            i = np.asarray(i) if len(i) else np.zeros(0, np.int64)
        if isinstance(i, np.ndarray):
            if i.dtype.kind not in "iub":
                raise IndexError(f"index arrays must be integer or boolean, got {i.dtype}")
            if i.dtype.kind == "u":
                i = i.astype(np.int64)
        out.append(i)
    return tuple(out)


def _getitem_rule(x, *, index):
    return np.empty(x.shape, dtype=bool)[index].shape, x.dtype


def _getitem_impl(x, *, index):
    if _is_basic(index) and not any(i is Ellipsis for i in index):
        index = index + (Ellipsis,)  # x[0] of a 1-d array: a 0-d view, not a scalar copy
    return x[index]


P_getitem = defprim("getitem", _getitem_impl, _getitem_rule,
                    lambda g, out, x, *, index: (index_add(g, index, x.shape),),
                    lambda t, out, x, *, index: getitem(t[0], index), view=True)


def _index_add_impl(src, *, index, shape):
    out = np.zeros(shape, src.dtype)
    if _is_basic(index):
        out[index] += src
    else:
        np.add.at(out, index, src)
    return out


P_index_add = defprim("index_add", _index_add_impl,
                      lambda src, *, index, shape: (tuple(shape), src.dtype),
                      lambda g, out, src, *, index, shape: (getitem(g, index),),
                      lambda t, out, src, *, index, shape: index_add(t[0], index, shape))


def _index_put_impl(x, src, *, index):
    out = x.copy()
    out[index] = src
    return out


def _index_put_vjp(g, out, x, src, *, index):
    gx = index_put(g, scalar(0, g.dtype), index) if x.requires_grad else None
    gs = sum_to(getitem(g, index), src.shape) if src.requires_grad else None
    return gx, gs


P_index_put = defprim("index_put", _index_put_impl,
                      lambda x, src, *, index: (x.shape, x.dtype), _index_put_vjp,
                      lambda t, out, x, src, *, index: index_put(
                          t[0] if t[0] is not None else zeros_like(x),
                          t[1] if t[1] is not None else scalar(0, x.dtype), index))


def getitem(x, index) -> Tensor:
    """``x[index]``: basic, advanced and boolean indexing; repeated indices add up in
    the gradient. An integer tensor alone (``x[idx]``) is a ``take`` along dim 0, with
    the index as an operand, so it traces under jit."""
    if isinstance(index, Tensor) and index.dtype.kind in "iu":
        return ix.take(x, index, 0)
    return bind(P_getitem, _t(x), index=norm_index(index))


def index_add(src: Tensor, index, shape) -> Tensor:
    """Zeros of ``shape`` with ``src`` added at ``index`` (scatter-add; the vjp of getitem)."""
    return bind(P_index_add, src, index=norm_index(index), shape=tuple(shape))


def index_put(x: Tensor, src, index) -> Tensor:
    """A copy of ``x`` with ``src`` written at ``index`` (functional ``x[index] = src``)."""
    src = const(src, x)
    if src.dtype != x.dtype:
        src = ew.cast(src, x.dtype)
    return bind(P_index_put, x, src, index=norm_index(index))

# ---------------------------------------------------------------- cat and pad


def _cat_vjp(g, out, *xs, axis):
    grads, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        sl = (slice(None),) * axis + (slice(start, stop),)
        grads.append(getitem(g, sl) if x.requires_grad else None)
        start = stop
    return tuple(grads)


def _cat_jvp(t, out, *xs, axis):
    return cat([ti if ti is not None else zeros_like(x) for ti, x in zip(t, xs)], axis)


def _cat_rule(*xs, axis):
    shape = list(xs[0].shape)
    shape[axis] = builtins.sum(x.shape[axis] for x in xs)
    return tuple(shape), np.result_type(*[x.dtype for x in xs])


P_cat = defprim("cat", lambda *xs, axis: np.concatenate(xs, axis=axis), _cat_rule,
                _cat_vjp, _cat_jvp)


def _pad_rule(x, *, pad_width, value):
    return tuple(s + a + b for s, (a, b) in zip(x.shape, pad_width)), x.dtype


def _unpad(g, pad_width):
    return getitem(g, tuple(slice(a, g.shape[i] - b) for i, (a, b) in enumerate(pad_width)))


P_pad = defprim("pad", lambda x, *, pad_width, value: np.pad(x, pad_width, constant_values=value),
                _pad_rule,
                lambda g, out, x, *, pad_width, value: (_unpad(g, pad_width),),
                lambda t, out, x, *, pad_width, value: pad_nd(t[0], pad_width, 0))


def pad_nd(x, pad_width, value=0) -> Tensor:
    return bind(P_pad, x, pad_width=tuple(tuple(p) for p in pad_width), value=value)


def pad(x, pad, mode="constant", value=0) -> Tensor:
    """Constant padding, PyTorch order: ``pad=(left_last, right_last, left_prev, ...)``."""
    x = _t(x)
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} (only 'constant')")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of pads for at most {x.ndim} dims, "
                         f"got {tuple(pad)}")
    if builtins.any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {tuple(pad)} is not supported")
    width = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        width[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return pad_nd(x, width, value)


def cat(tensors, dim=0, *, axis=None) -> Tensor:
    """Concatenate along an existing dimension."""
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    dt = np.result_type(*[t.dtype for t in tensors])
    tensors = [ew.cast(t, dt) for t in tensors]
    ax = norm_axis(dim if axis is None else axis, tensors[0].ndim, "cat")[0]
    return bind(P_cat, *tensors, axis=ax)


concatenate = cat

# ---------------------------------------------------------------- shape ops


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def reshape(x, *shape) -> Tensor:
    """Same data, new shape (one dim may be -1)."""
    x = _t(x)
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    return bind(P_reshape, x, shape=shape)


view = reshape


def alias(x: Tensor) -> Tensor:
    """A new tensor for the same buffer and value, recorded as an op (a view): the
    transforms give each level its own input this way."""
    return bind(P_reshape, x, shape=x.shape)


def view_as(x, other) -> Tensor:
    """``x`` reshaped to ``other``'s shape."""
    return reshape(x, other.shape)


reshape_as = view_as


def permute(x, *dims) -> Tensor:
    """Reorder the dimensions."""
    x = _t(x)
    dims = tuple(int(d) % max(x.ndim, 1) for d in _shape_arg(dims))
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims of a "
                         f"tensor of shape {tuple(x.shape)}")
    if dims == tuple(range(x.ndim)):
        return x
    return bind(P_transpose, x, axes=dims)


def transpose(x, dim0=-2, dim1=-1) -> Tensor:
    """Swap two dimensions."""
    x = _t(x)
    axes = list(range(x.ndim))
    d0, d1 = norm_axis(dim0, x.ndim, "transpose")[0], norm_axis(dim1, x.ndim, "transpose")[0]
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return permute(x, axes)


swapaxes = transpose


def broadcast_to(x, shape) -> Tensor:
    """Broadcast to ``shape``; the gradient sums back over the broadcast dims."""
    x = _t(x)
    shape = tuple(int(s) for s in shape)
    if x.shape == shape:
        return x
    return bind(P_broadcast_to, x, shape=shape)


def expand(x, *sizes) -> Tensor:
    """Broadcast to ``sizes`` (-1 keeps a dimension), as ``torch.Tensor.expand``."""
    x = _t(x)
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


def expand_as(x, other) -> Tensor:
    """``x`` broadcast to ``other``'s shape."""
    return broadcast_to(x, other.shape)


def squeeze(x, dim=None) -> Tensor:
    """Remove dimensions of size 1 (only ``dim`` when given)."""
    x = _t(x)
    axes = norm_axis(dim, x.ndim, "squeeze") if dim is not None else None
    shape = tuple(s for i, s in enumerate(x.shape)
                  if not (s == 1 and (axes is None or i in axes)))
    return reshape(x, shape)


def unsqueeze(x, dim) -> Tensor:
    """Insert a dimension of size 1 at ``dim``."""
    x = _t(x)
    d = norm_axis(dim, x.ndim + 1, "unsqueeze")[0]
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def flatten(x, start_dim=0, end_dim=-1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one."""
    x = _t(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s = norm_axis(start_dim, x.ndim, "flatten")[0]
    e = norm_axis(end_dim, x.ndim, "flatten")[0]
    return reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1:])


def stack(tensors, dim=0) -> Tensor:
    """Join along a new dimension."""
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def split(x, split_size_or_sections, dim=0) -> tuple:
    """Pieces of size ``split_size`` (the last may be smaller) or of the given sizes."""
    x = _t(x)
    d = norm_axis(dim, x.ndim, "split")[0]
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} do not add up to {n} (dim {d} of shape "
                             f"{tuple(x.shape)})")
    out, start = [], 0
    for s in sizes:
        out.append(getitem(x, (slice(None),) * d + (slice(start, start + s),)))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0) -> tuple:
    """Split into ``chunks`` pieces of size ceil(n / chunks)."""
    x = _t(x)
    n = x.shape[norm_axis(dim, x.ndim, "chunk")[0]]
    return split(x, builtins.max(-(-n // chunks), 1), dim)


def flip(x, dims) -> Tensor:
    """Reverse the order of elements along ``dims``."""
    x = _t(x)
    axes = norm_axis(dims, x.ndim, "flip")
    return getitem(x, tuple(slice(None, None, -1) if i in axes else slice(None)
                            for i in range(x.ndim)))


def repeat(x, *sizes) -> Tensor:
    """Tile ``x``: ``sizes[i]`` copies along dim i, as ``torch.Tensor.repeat``."""
    x = _t(x)
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} sizes for a tensor with {x.ndim} dims")
    x = reshape(x, (1,) * (len(sizes) - x.ndim) + x.shape)
    inter = []
    for r, s in zip(sizes, x.shape):
        inter += [1, s]
    y = broadcast_to(reshape(x, tuple(inter)),
                     tuple(v for r, s in zip(sizes, x.shape) for v in (r, s)))
    return reshape(y, tuple(r * s for r, s in zip(sizes, x.shape)))


def masked_fill(x, mask, value) -> Tensor:
    """``value`` where ``mask`` holds, else ``x``."""
    x = _t(x)
    return ew.where(mask, scalar(value, x.dtype) if not isinstance(value, Tensor) else value, x)


from . import reduce as rd  # noqa: E402  (reduce's rules use this module's ops)
from . import indexing as ix  # noqa: E402  (indexing builds on this module)
