"""Cases for the convolution rows ``im2col`` and ``col2im`` (src/chainrule/ops/conv.py).

The references index each zero-padded image plane as one flat row-major run: window
(i, j) at output position (oh, ow) reads element
``(oh * sh + i * dh) * Wp + ow * sw + j * dw``.
"""
import numpy as np

import chainrule.ops.conv  # noqa: F401  (registers the rows)

from .cases import CASES, Case, real


def _planes(shape_nchw, padding):
    n, c, h, w = shape_nchw
    pt, pb, pl, pr = padding
    return (n, c, h + pt + pb, w + pl + pr), (pt, pl)


def _offsets(kernel, stride, dilation, grid, wp):
    """Flat offset of every (i, j, oh, ow) read, shape (kh, kw, OH, OW)."""
    i, j, oh, ow = np.meshgrid(*[np.arange(n) for n in tuple(kernel) + tuple(grid)],
                               indexing="ij")
    return (oh * stride[0] + i * dilation[0]) * wp + ow * stride[1] + j * dilation[1]


def im2col_ref(x, *, kernel, stride, padding, dilation, grid, value):
    shape, (pt, pl) = _planes(x.shape, padding)
    planes = np.full(shape, value, x.dtype)
    planes[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]] = x
    flat = planes.reshape(shape[0], shape[1], -1)                    # (N, C, rows * Wp)
    cols = flat[:, :, _offsets(kernel, stride, dilation, grid, shape[3])]  # (N, C, kh, kw, ..)
    return cols.transpose(1, 2, 3, 4, 5, 0)                          # (C, kh, kw, OH, OW, N)


def col2im_ref(g, *, size, kernel, stride, padding, dilation):
    c, kh, kw, n = g.shape[:3] + g.shape[5:]
    shape, (pt, pl) = _planes((n, c) + tuple(size), padding)
    flat = np.zeros((n, c, shape[2] * shape[3]), g.dtype)
    offsets = _offsets(kernel, stride, dilation, g.shape[3:5], shape[3]).ravel()
    gs = g.transpose(5, 0, 1, 2, 3, 4).reshape(n, c, -1)
    for k, o in enumerate(offsets):  # a loop: repeated offsets must add up
        flat[:, :, o] += gs[:, :, k]
    planes = flat.reshape(shape)
    return planes[:, :, pt:pt + size[0], pl:pl + size[1]]


def _geom(kernel, stride, padding, dilation):
    return {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}


# (x shape, geometry, grid): plain; stride, dilation and uneven padding; overlapping
# padded windows; a grid that leaves the last rows and columns unread; 1-pixel kernel
_GEOMS = [
    ((2, 3, 4, 5), _geom((2, 3), (1, 1), (0, 0, 0, 0), (1, 1)), (3, 3)),
    ((1, 2, 5, 6), _geom((2, 2), (2, 1), (1, 0, 2, 1), (1, 2)), (3, 7)),
    ((2, 2, 3, 4), _geom((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)), (3, 4)),
    ((1, 2, 6, 5), _geom((2, 3), (2, 2), (1, 1, 0, 1), (2, 1)), (3, 2)),
    ((1, 1, 3, 3), _geom((1, 1), (1, 1), (0, 0, 0, 0), (1, 1)), (3, 3)),
]

CASES["im2col"] = [Case([real(*shape)], dict(geom, grid=grid, value=0.0), ref=im2col_ref)
                   for shape, geom, grid in _GEOMS]
# padding with a constant (max pooling pads with -inf; finite here, for the finite differences)
CASES["im2col"].append(Case([real(1, 2, 3, 4)], dict(_GEOMS[2][1], grid=(3, 4), value=-3.5),
                            ref=im2col_ref))
CASES["col2im"] = [Case([real(shape[1], *geom["kernel"], *grid, shape[0])],
                        dict(geom, size=shape[2:]), ref=col2im_ref)
                   for shape, geom, grid in _GEOMS]
