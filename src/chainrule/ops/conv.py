"""Convolution and pooling, built on two linear primitive rows: ``im2col`` and ``col2im``.

``im2col`` copies every window of a padded (N, C, H, W) image into a contiguous array
of shape (C, kh, kw, OH, OW, N); ``col2im`` is its transpose, a scatter-add of such an
array back onto the image, done as kh * kw strided slice adds. Each is the other's vjp,
and each its own jvp (both are linear; im2col's padding ``value``, -inf for max
pooling, is a constant that its derivatives pad with 0). Everything else is composed:

* ``conv2d`` = im2col, one GEMM ``(OC, C*kh*kw) @ (C*kh*kw, OH*OW*N)`` and a bias add;
  its gradients are the matmul rule's two GEMMs and a col2im.
* ``conv_transpose2d`` = one GEMM and a col2im; ``conv1d`` is a conv2d of height 1.
* ``max_pool2d`` / ``avg_pool2d`` reduce the im2col array over its kernel axes (NumPy
  reduces over leading axes fast, and over small strided trailing axes 50x slower);
  ``adaptive_avg_pool2d`` is a product with two averaging matrices (an avg_pool2d when
  the sizes divide).

Layout. Inside, images are kept channels first and batch last in memory (CHWN; the
tensors are NCHW views of it, as in PyTorch's API). The GEMM rows are channels and its
columns the OH*OW*N output pixels, so its output already is the result in CHWN memory,
and the bias gradient is a contiguous row sum. With the batch innermost, the windows of
one image row for all N images are one contiguous run of memory, so the im2col copy and
the col2im adds run inner loops of OW*N elements (for stride 1) rather than OW: 2-4x
faster than channels-first-batch-second (CNHW) here, which was itself faster than
channels-last (NHWC); see benchmarks/conv_bench.py.
"""
from __future__ import annotations

import builtins

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..core import dispatch
from ..core.dispatch import bind
from ..core.primitive import defprim
from ..core.tensor import Tensor
from . import elementwise as ew
from . import movement as mv
from . import reduce as rd
from ._util import const
from .linalg import matmul

# ---------------------------------------------------------------- the primitive rows


def _check_grid(hw, padding, grid, kernel, stride, dilation):
    """Refuse a window grid that leaves the padded image (as_strided does not check)."""
    for n, pads, o, k, s, d in zip(hw, (padding[:2], padding[2:]), grid, kernel, stride,
                                  dilation):
        if (o - 1) * s + (k - 1) * d >= n + pads[0] + pads[1]:
            raise ValueError(f"windows {tuple(grid)} of kernel {tuple(kernel)} (stride "
                             f"{tuple(stride)}, dilation {tuple(dilation)}) leave the padded "
                             f"image {tuple(hw)} + padding {tuple(padding)}")


def _buffer(shape_nchw, dtype, padding, value=0):
    """A padded (C, Hp, Wp, N) buffer filled with ``value`` and the (N, C, H, W) view of
    its interior."""
    n, c, h, w = shape_nchw
    pt, pb, pl, pr = padding
    shape = (c, h + pt + pb, w + pl + pr, n)
    buf = np.zeros(shape, dtype) if value == 0 else np.full(shape, value, dtype)
    return buf, buf[:, pt:pt + h, pl:pl + w].transpose(3, 0, 1, 2)


def _window_strides(x, stride, dilation):
    """Byte strides of (kernel row, kernel col, output row, output col) in an NCHW ``x``."""
    row, col = x.strides[2], x.strides[3]
    return dilation[0] * row, dilation[1] * col, stride[0] * row, stride[1] * col


def _im2col_impl(x, *, kernel, stride, padding, dilation, grid, value):
    n, c, h, w = x.shape
    _check_grid((h, w), padding, grid, kernel, stride, dilation)
    if any(padding):
        buf, inner = _buffer(x.shape, x.dtype, padding, value)
        inner[...] = x
        x = buf.transpose(3, 0, 1, 2)
    ki, kj, oi, oj = _window_strides(x, stride, dilation)
    windows = as_strided(x, (c,) + tuple(kernel) + tuple(grid) + (n,),
                         (x.strides[1], ki, kj, oi, oj, x.strides[0]), writeable=False)
    return np.ascontiguousarray(windows)  # (C, kh, kw, OH, OW, N): the im2col copy


def _col2im_impl(g, *, size, kernel, stride, padding, dilation):
    c, kh, kw, oh, ow, n = g.shape
    _check_grid(size, padding, (oh, ow), kernel, stride, dilation)
    buf, inner = _buffer((n, c) + tuple(size), g.dtype, padding)
    (sh, sw), (dh, dw) = stride, dilation
    disjoint = (kh - 1) * dh < sh and (kw - 1) * dw < sw  # windows don't overlap (pooling)
    for i in range(kh):
        for j in range(kw):  # each (i, j) hits distinct pixels: a plain strided add
            dst = buf[:, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                      j * dw:j * dw + (ow - 1) * sw + 1:sw]
            if disjoint or i == j == 0:
                np.copyto(dst, g[:, i, j])  # nothing written there yet: half the traffic
            else:
                np.add(dst, g[:, i, j], out=dst)
    return inner  # (N, C, H, W), in CHWN memory


def _im2col_rule(x, *, kernel, stride, padding, dilation, grid, value):
    return (x.shape[1],) + tuple(kernel) + tuple(grid) + (x.shape[0],), x.dtype


def _col2im_rule(g, *, size, kernel, stride, padding, dilation):
    return (g.shape[5], g.shape[0]) + tuple(size), g.dtype


P_im2col = defprim(
    "im2col", _im2col_impl, _im2col_rule,
    lambda g, out, x, **p: (bind(P_col2im, g, size=tuple(x.shape[2:]), **_geom(p)),),
    lambda t, out, x, **p: bind(P_im2col, t[0], **dict(p, value=0.0)))

P_col2im = defprim(
    "col2im", _col2im_impl, _col2im_rule,
    lambda g, out, c, **p: (bind(P_im2col, g, grid=tuple(c.shape[3:5]), value=0.0,
                                 **_geom(p)),),
    lambda t, out, c, **p: bind(P_col2im, t[0], **p))


def _geom(params):
    return {k: params[k] for k in ("kernel", "stride", "padding", "dilation")}

# ---------------------------------------------------------------- argument checks


def _t(x):
    return x if isinstance(x, Tensor) else const(x)


def _fail(op, msg):
    raise ValueError(f"{op}: {msg}, at {dispatch.user_site()}")


def _desc(t) -> str:
    return f"{tuple(t.shape)} {t.dtype}"


def _tuple(v, n, op, name):
    """An int or a sequence of n ints as a tuple of n ints."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(e) for e in v)
    if len(v) != n:
        _fail(op, f"{name} must be an int or a tuple of {n} ints, got {v}")
    return v


def _positive(op, **values):
    for name, v in values.items():
        if builtins.min(v) < 1:
            _fail(op, f"{name} must be positive, got {v}")


def _batched(op, x, dims):
    """``x`` with a batch dim (added for an unbatched input) and whether it had one."""
    if x.ndim == dims + 2:
        return x, True
    if x.ndim == dims + 1:
        return mv.unsqueeze(x, 0), False
    _fail(op, f"expected a {dims + 1}-D (unbatched) or {dims + 2}-D (batched) input, "
              f"got {_desc(x)}")


def _unbatch(out, batched):
    return out if batched else mv.squeeze(out, 0)


def _same_dtype(*ts):
    """The tensors cast to their common dtype (None entries pass through)."""
    real = [t for t in ts if t is not None]
    dt = np.result_type(*[t.dtype for t in real])
    if dt.kind not in "fc":
        dt = np.result_type(dt, np.float32)
    return tuple(None if t is None else ew.cast(t, dt) for t in ts)


def _out_len(n, k, s, p, d, ceil_mode=False):
    """Output length along one dim (PyTorch's formula, ceil_mode included)."""
    span = n + p[0] + p[1] - d * (k - 1) - 1
    if span < 0:
        return 0
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p[0]:
        out -= 1  # the last window must start inside the input or the left padding
    return out


def _check_size(op, x, kernel, padding, dilation, grid):
    if builtins.min(grid) < 1:
        pads = (padding[0] + padding[1], padding[2] + padding[3])
        eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        _fail(op, f"kernel {tuple(kernel)} (dilation {tuple(dilation)}: {eff}) is larger than "
                  f"the padded input {tuple(x.shape[-2 + i] + pads[i] for i in (0, 1))} "
                  f"(input {_desc(x)})")

# ---------------------------------------------------------------- convolution


def _conv(op, x, w, b, stride, padding, dilation, groups):
    """conv2d on checked (N, C, H, W) / (OC, C // groups, kh, kw) tensors of one dtype."""
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    oh = _out_len(h, kh, stride[0], padding[:2], dilation[0])
    ow = _out_len(wd, kw, stride[1], padding[2:], dilation[1])
    _check_size(op, x, (kh, kw), padding, dilation, (oh, ow))
    cols = bind(P_im2col, x, kernel=(kh, kw), stride=stride, padding=padding,
                dilation=dilation, grid=(oh, ow), value=0.0)            # (C, kh, kw, OH, OW, N)
    m = n * oh * ow
    if groups == 1:
        out = matmul(mv.reshape(w, (oc, cg * kh * kw)), mv.reshape(cols, (c * kh * kw, m)))
    else:
        out = matmul(mv.reshape(w, (groups, oc // groups, cg * kh * kw)),
                     mv.reshape(cols, (groups, cg * kh * kw, m)))       # (G, OC // G, M)
        out = mv.reshape(out, (oc, m))
    if b is not None:
        out = ew.add(out, mv.reshape(b, (oc, 1)))                        # (OC, M)
    return mv.permute(mv.reshape(out, (oc, oh, ow, n)), (3, 0, 1, 2))    # (N, OC, OH, OW)


def _conv_args(op, input, weight, bias, groups, dims):
    x, w = _t(input), _t(weight)
    x, batched = _batched(op, x, dims)
    if w.ndim != dims + 2:
        _fail(op, f"weight must be {dims + 2}-D (out_channels, in_channels / groups, "
                  f"kernel...), got {_desc(w)}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        _fail(op, f"groups must be a positive int, got {groups!r}")
    c, oc, cg = x.shape[1], w.shape[0], w.shape[1]
    if c % groups:
        _fail(op, f"groups={groups} does not divide the {c} input channels of {_desc(x)}")
    if oc % groups:
        _fail(op, f"groups={groups} does not divide the {oc} output channels of weight "
                  f"{_desc(w)}")
    if cg * groups != c:
        _fail(op, f"input {_desc(x)} has {c} channels but weight {_desc(w)} expects "
                  f"{cg * groups} (groups={groups})")
    b = None if bias is None else _t(bias)
    if b is not None and tuple(b.shape) != (oc,):
        _fail(op, f"bias {_desc(b)} must have shape ({oc},) for weight {_desc(w)}")
    x, w, b = _same_dtype(x, w, b)
    return x, w, b, batched


def _conv_padding(op, padding, kernel, stride, dilation):
    """PyTorch padding (int, tuple, 'valid', 'same') as ((before, after), ...) per dim."""
    if isinstance(padding, str):
        if padding == "valid":
            return tuple((0, 0) for _ in kernel)
        if padding != "same":
            _fail(op, f"padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
        if builtins.any(s != 1 for s in stride):
            _fail(op, f"padding='same' needs stride 1, got stride {tuple(stride)}")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)  # extra on the right, as PyTorch
    pads = _tuple(padding, len(kernel), op, "padding")
    if builtins.min(pads) < 0:
        _fail(op, f"padding must be non-negative, got {pads}")
    return tuple((p, p) for p in pads)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch) over (N, C, H, W) or (C, H, W) input.

    ``weight`` is (out_channels, in_channels / groups, kh, kw); ``padding`` is an int, a
    pair, ``'valid'`` or ``'same'`` (stride 1; an odd total pads one more on the right).
    """
    op = "conv2d"
    x, w, b, batched = _conv_args(op, input, weight, bias, groups, 2)
    stride = _tuple(stride, 2, op, "stride")
    dilation = _tuple(dilation, 2, op, "dilation")
    _positive(op, stride=stride, dilation=dilation)
    (pt, pb), (pl, pr) = _conv_padding(op, padding, w.shape[2:], stride, dilation)
    out = _conv(op, x, w, b, stride, (pt, pb, pl, pr), dilation, int(groups))
    return _unbatch(out, batched)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """1-D convolution over (N, C, L) or (C, L) input; ``weight`` is (out, in / groups, k).

    Computed as a conv2d of height 1.
    """
    op = "conv1d"
    x, w, b, batched = _conv_args(op, input, weight, bias, groups, 1)
    (stride,) = _tuple(stride, 1, op, "stride")
    (dilation,) = _tuple(dilation, 1, op, "dilation")
    _positive(op, stride=(stride,), dilation=(dilation,))
    ((pl, pr),) = _conv_padding(op, padding, w.shape[2:], (stride,), (dilation,))
    out = _conv(op, mv.unsqueeze(x, 2), mv.unsqueeze(w, 2), b, (1, stride), (0, 0, pl, pr),
                (1, dilation), int(groups))                              # (N, OC, 1, OL)
    return _unbatch(mv.squeeze(out, 2), batched)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1) -> Tensor:
    """Transposed 2-D convolution (the gradient of conv2d with respect to its input).

    ``weight`` is (in_channels, out_channels / groups, kh, kw); the output size is
    ``(H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.
    """
    op = "conv_transpose2d"
    x, w = _t(input), _t(weight)
    x, batched = _batched(op, x, 2)
    if w.ndim != 4:
        _fail(op, f"weight must be 4-D (in_channels, out_channels / groups, kh, kw), got "
                  f"{_desc(w)}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        _fail(op, f"groups must be a positive int, got {groups!r}")
    n, c, h, wd = x.shape
    cw, ocg, kh, kw = w.shape
    if c != cw:
        _fail(op, f"input {_desc(x)} has {c} channels but weight {_desc(w)} expects {cw}")
    if c % groups:
        _fail(op, f"groups={groups} does not divide the {c} input channels of {_desc(x)}")
    oc = ocg * groups
    b = None if bias is None else _t(bias)
    if b is not None and tuple(b.shape) != (oc,):
        _fail(op, f"bias {_desc(b)} must have shape ({oc},) for weight {_desc(w)} and "
                  f"groups={groups}")
    x, w, b = _same_dtype(x, w, b)
    stride = _tuple(stride, 2, op, "stride")
    dilation = _tuple(dilation, 2, op, "dilation")
    pad = _tuple(padding, 2, op, "padding")
    opad = _tuple(output_padding, 2, op, "output_padding")
    _positive(op, stride=stride, dilation=dilation)
    if builtins.min(pad + opad) < 0:
        _fail(op, f"padding {pad} and output_padding {opad} must be non-negative")
    for o, s, d in zip(opad, stride, dilation):
        if o >= s and o >= d:
            _fail(op, f"output_padding {opad} must be smaller than either stride {stride} "
                      f"or dilation {dilation}")
    size = tuple((i - 1) * s - 2 * p + d * (k - 1) + o + 1
                 for i, s, p, d, k, o in zip((h, wd), stride, pad, dilation, (kh, kw), opad))
    if builtins.min(size) < 1:
        _fail(op, f"the output size {size} for input {_desc(x)} and weight {_desc(w)} is "
                  f"not positive (padding {pad})")
    m, cg = n * h * wd, c // groups
    x2 = mv.reshape(mv.permute(x, (1, 2, 3, 0)), (c, m))                 # (C, H*W*N)
    if groups == 1:
        cols = matmul(mv.transpose(mv.reshape(w, (c, ocg * kh * kw)), 0, 1), x2)
    else:
        wg = mv.transpose(mv.reshape(w, (groups, cg, ocg * kh * kw)), 1, 2)
        cols = matmul(wg, mv.reshape(x2, (groups, cg, m)))              # (G, OCg*kh*kw, M)
    cols = mv.reshape(cols, (oc, kh, kw, h, wd, n))
    out = bind(P_col2im, cols, size=size, kernel=(kh, kw), stride=stride,
               padding=(pad[0], pad[0], pad[1], pad[1]), dilation=dilation)  # (N, OC, Ho, Wo)
    if b is not None:
        out = ew.add(out, mv.reshape(b, (1, oc, 1, 1)))
    return _unbatch(out, batched)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sliding windows as columns, as ``torch.nn.functional.unfold``: (N, C, H, W) ->
    (N, C * kh * kw, L), L the number of windows."""
    op = "unfold"
    x = _t(input)
    if x.ndim != 4:
        _fail(op, f"expected a 4-D (N, C, H, W) input, got {_desc(x)}")
    k, d, p, s = (_tuple(v, 2, op, name) for v, name in
                  ((kernel_size, "kernel_size"), (dilation, "dilation"), (padding, "padding"),
                   (stride, "stride")))
    _positive(op, kernel_size=k, stride=s, dilation=d)
    pad = (p[0], p[0], p[1], p[1])
    grid = tuple(_out_len(x.shape[2 + i], k[i], s[i], pad[2 * i:2 * i + 2], d[i])
                 for i in (0, 1))
    _check_size(op, x, k, pad, d, grid)
    cols = bind(P_im2col, x, kernel=k, stride=s, padding=pad, dilation=d, grid=grid,
                value=0.0)
    n, c = x.shape[:2]
    return mv.reshape(mv.permute(cols, (5, 0, 1, 2, 3, 4)),
                      (n, c * k[0] * k[1], grid[0] * grid[1]))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Sum columns back into an image, as ``torch.nn.functional.fold`` (the transpose of
    ``unfold``): (N, C * kh * kw, L) -> (N, C, H, W)."""
    op = "fold"
    x = _t(input)
    size, k, d, p, s = (_tuple(v, 2, op, name) for v, name in
                        ((output_size, "output_size"), (kernel_size, "kernel_size"),
                         (dilation, "dilation"), (padding, "padding"), (stride, "stride")))
    _positive(op, kernel_size=k, stride=s, dilation=d)
    pad = (p[0], p[0], p[1], p[1])
    grid = tuple(_out_len(size[i], k[i], s[i], pad[2 * i:2 * i + 2], d[i]) for i in (0, 1))
    if x.ndim != 3 or x.shape[1] % (k[0] * k[1]) or x.shape[2] != grid[0] * grid[1]:
        _fail(op, f"expected an input (N, C * {k[0]} * {k[1]}, {grid[0] * grid[1]}) for "
                  f"output_size {size}, got {_desc(x)}")
    n, c = x.shape[0], x.shape[1] // (k[0] * k[1])
    cols = mv.permute(mv.reshape(x, (n, c) + k + grid), (1, 2, 3, 4, 5, 0))
    return bind(P_col2im, cols, size=size, kernel=k, stride=s, padding=pad, dilation=d)

# ---------------------------------------------------------------- pooling


def _pool_args(op, input, kernel_size, stride, padding, dilation):
    x, batched = _batched(op, _t(input), 2)
    k = _tuple(kernel_size, 2, op, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _tuple(stride, 2, op, "stride")
    p = _tuple(padding, 2, op, "padding")
    d = _tuple(dilation, 2, op, "dilation")
    _positive(op, kernel_size=k, stride=s, dilation=d)
    if builtins.any(pi < 0 or 2 * pi > ki for pi, ki in zip(p, k)):
        _fail(op, f"padding {p} must be non-negative and at most half of kernel_size {k}")
    return x, batched, k, s, p, d


def _pool_grid(op, x, k, s, p, d, ceil_mode):
    """Output size and the padding (with the extra right/bottom padding of ceil_mode)."""
    grid, pad = [], []
    for i in (0, 1):
        n = x.shape[2 + i]
        o = _out_len(n, k[i], s[i], (p[i], p[i]), d[i], ceil_mode)
        grid.append(o)
        pad += [p[i], builtins.max(p[i], (o - 1) * s[i] + d[i] * (k[i] - 1) + 1 - n - p[i])]
    _check_size(op, x, k, pad, d, grid)
    return tuple(grid), tuple(pad)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode=False) -> Tensor:
    """Max over windows of (N, C, H, W) or (C, H, W) input; padding counts as -inf.

    The gradient of a window whose maximum is attained more than once is shared equally
    among the tied elements (``amax``'s rule); PyTorch gives it all to one of them.
    """
    op = "max_pool2d"
    x, batched, k, s, p, d = _pool_args(op, input, kernel_size, stride, padding, dilation)
    grid, pad = _pool_grid(op, x, k, s, p, d, ceil_mode)
    low = -np.inf if x.dtype.kind == "f" else int(np.iinfo(x.dtype).min)
    cols = bind(P_im2col, x, kernel=k, stride=s, padding=pad, dilation=d, grid=grid,
                value=low)
    out = rd.amax(cols, (1, 2))                                          # (C, OH, OW, N)
    return _unbatch(mv.permute(out, (3, 0, 1, 2)), batched)


def _avg_divisor(n, k, s, p, o, count_include_pad):
    """PyTorch's divisor per output position along one dim."""
    start = np.arange(o) * s - p
    end = np.minimum(start + k, n + p)
    if count_include_pad:
        return end - start
    return np.minimum(end, n) - np.maximum(start, 0)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None) -> Tensor:
    """Mean over windows of (N, C, H, W) or (C, H, W) input, zero padding; the divisor
    counts padding if ``count_include_pad`` (never the overhang of ``ceil_mode``)."""
    op = "avg_pool2d"
    x, batched, k, s, p, _ = _pool_args(op, input, kernel_size, stride, padding, 1)
    if divisor_override is not None and divisor_override <= 0:
        _fail(op, f"divisor_override must be positive, got {divisor_override}")
    if x.dtype.kind != "f":
        x = ew.cast(x, np.result_type(x.dtype, np.float32))
    grid, pad = _pool_grid(op, x, k, s, p, (1, 1), ceil_mode)
    cols = bind(P_im2col, x, kernel=k, stride=s, padding=pad, dilation=(1, 1), grid=grid,
                value=0.0)
    total = mv.permute(rd.sum(cols, (1, 2)), (3, 0, 1, 2))              # (N, C, OH, OW)
    if divisor_override is not None:
        return _unbatch(ew.mul(total, 1.0 / divisor_override), batched)
    div = np.outer(*[_avg_divisor(x.shape[2 + i], k[i], s[i], p[i], grid[i], count_include_pad)
                     for i in (0, 1)])
    if np.all(div == div.flat[0]):
        return _unbatch(ew.mul(total, 1.0 / float(div.flat[0])), batched)
    return _unbatch(ew.mul(total, const((1.0 / div).astype(x.dtype))), batched)


def _adaptive_matrix(n, o, dtype):
    """(o, n) averaging matrix of PyTorch's adaptive windows [floor(i n / o), ceil((i+1) n / o))."""
    a = np.zeros((o, n), dtype)
    for i in range(o):
        lo, hi = (i * n) // o, -(-((i + 1) * n) // o)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    """Mean over the adaptive windows that give ``output_size`` (an int, or a pair where
    None keeps that input size), as PyTorch."""
    op = "adaptive_avg_pool2d"
    x, batched = _batched(op, _t(input), 2)
    if x.dtype.kind != "f":
        x = ew.cast(x, np.result_type(x.dtype, np.float32))
    sizes = (output_size, output_size) if isinstance(output_size, (int, type(None))) \
        else tuple(output_size)
    if len(sizes) != 2:
        _fail(op, f"output_size must be an int or a pair, got {output_size!r}")
    h, w = x.shape[2:]
    oh, ow = (h if sizes[0] is None else int(sizes[0]), w if sizes[1] is None else int(sizes[1]))
    if oh < 1 or ow < 1:
        _fail(op, f"output_size must be positive, got {(oh, ow)}")
    if h % oh == 0 and w % ow == 0:
        return _unbatch(avg_pool2d(x, (h // oh, w // ow)), batched)
    ah = const(_adaptive_matrix(h, oh, x.dtype))                         # (OH, H)
    awt = const(_adaptive_matrix(w, ow, x.dtype).T.copy())               # (W, OW)
    return _unbatch(matmul(matmul(ah, x), awt), batched)                 # (N, C, OH, OW)
