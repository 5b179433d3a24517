"""Convolution and pooling against PyTorch: values and gradients (input, weight, bias) in
float64 and float32 over a grid of strides, paddings, dilations, groups and kernel shapes;
finite-difference checks at first and second order; the layers' init and repr; error
messages."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed: reference tests skipped")
TF = torch.nn.functional

import chainrule as cr  # noqa: E402
from chainrule.nn import conv as nconv  # noqa: E402
from chainrule.nn import pooling as npool  # noqa: E402
from chainrule.ops import conv as F  # noqa: E402
from chainrule.testing import gradcheck, gradgradcheck  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's, even kernels
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-4)}
R = np.random.default_rng(0)


def _arrays(shapes, dtype):
    return [None if s is None else R.standard_normal(s).astype(dtype) for s in shapes]


def check(ours, theirs, shapes, dtype=np.float64, **kwargs):
    """Same outputs and the same gradients for every array input (None: absent)."""
    arrays = _arrays(shapes, dtype)
    xs = [None if a is None else cr.Tensor(a.copy(), requires_grad=True) for a in arrays]
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours(*xs, **kwargs), theirs(*ts, **kwargs)
    assert out.shape == tuple(ref.shape) and out.dtype == dtype
    tol = TOL[dtype]
    np.testing.assert_allclose(out.data, ref.detach().numpy(), **tol)
    g = R.standard_normal(out.shape).astype(dtype)
    out.backward(cr.Tensor(g))
    ref.backward(torch.tensor(g))
    for x, t in zip(xs, ts):
        if x is not None:
            np.testing.assert_allclose(x.grad.data, t.grad.numpy(), **tol)


DTYPES = [np.float64, np.float32]

# (input shape, weight shape, bias?, kwargs)
CONV2D = [
    ((2, 3, 7, 6), (4, 3, 3, 3), True, {}),
    ((2, 3, 7, 6), (4, 3, 3, 3), True, dict(padding=1)),
    ((2, 3, 9, 8), (4, 3, 3, 3), True, dict(stride=2)),
    ((1, 2, 9, 10), (3, 2, 2, 4), True, dict(stride=(2, 3), padding=(1, 2))),
    ((2, 2, 9, 9), (3, 2, 3, 3), False, dict(dilation=2, padding=1)),
    ((1, 3, 8, 9), (2, 3, 3, 2), True, dict(dilation=(2, 1), padding=(2, 0), stride=(1, 2))),
    ((2, 4, 6, 7), (6, 2, 3, 3), True, dict(groups=2, padding=1)),
    ((2, 3, 6, 6), (6, 1, 3, 3), True, dict(groups=3, padding=1)),      # depthwise
    ((2, 3, 6, 7), (4, 3, 3, 3), True, dict(padding="same")),
    ((1, 2, 6, 7), (3, 2, 2, 4), True, dict(padding="same", dilation=(1, 2))),  # even: uneven pad
    ((2, 3, 6, 7), (4, 3, 3, 2), True, dict(padding="valid")),
    ((2, 3, 5, 4), (4, 3, 5, 4), True, {}),                              # kernel == input
    ((2, 3, 5, 4), (4, 3, 1, 1), True, dict(stride=2)),
    ((1, 2, 10, 10), (2, 2, 2, 2), True, dict(stride=3)),               # stride > kernel
    ((3, 5, 5), (4, 3, 3, 3), True, dict(padding=1)),                    # unbatched
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,bias,kw", CONV2D, ids=[str(c) for c in range(len(CONV2D))])
def test_conv2d(xs, ws, bias, kw, dtype):
    check(F.conv2d, TF.conv2d, [xs, ws, (ws[0],) if bias else None], dtype, **kw)


CONV1D = [
    ((2, 3, 11), (4, 3, 3), True, {}),
    ((2, 4, 12), (6, 2, 4), True, dict(stride=2, padding=3, groups=2)),
    ((1, 2, 10), (3, 2, 3), False, dict(dilation=3, padding="same")),
    ((3, 9), (2, 3, 2), True, dict(stride=3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,bias,kw", CONV1D, ids=[str(c) for c in range(len(CONV1D))])
def test_conv1d(xs, ws, bias, kw, dtype):
    check(F.conv1d, TF.conv1d, [xs, ws, (ws[0],) if bias else None], dtype, **kw)


CONVT = [
    ((2, 3, 4, 5), (3, 2, 3, 3), True, {}),
    ((2, 3, 4, 5), (3, 2, 3, 3), True, dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 3, 4), (4, 3, 2, 3), True, dict(stride=(2, 3), padding=(0, 1), groups=2,
                                            output_padding=(1, 2))),
    ((2, 2, 4, 4), (2, 3, 3, 2), False, dict(dilation=(2, 3), output_padding=(1, 2),
                                             stride=(1, 2))),
    ((3, 4, 4), (3, 2, 3, 3), True, dict(stride=2)),                     # unbatched
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,bias,kw", CONVT, ids=[str(c) for c in range(len(CONVT))])
def test_conv_transpose2d(xs, ws, bias, kw, dtype):
    nb = ws[1] * kw.get("groups", 1)
    check(F.conv_transpose2d, TF.conv_transpose2d, [xs, ws, (nb,) if bias else None], dtype,
          **kw)


MAXPOOL = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 7, 9), dict(kernel_size=2)),                                 # cropped edge
    ((2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 9, 8), dict(kernel_size=(3, 2), stride=(2, 1), dilation=(1, 2))),
    ((1, 2, 7, 8), dict(kernel_size=2, ceil_mode=True)),
    ((1, 2, 8, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((3, 6, 6), dict(kernel_size=2, stride=1)),                          # unbatched
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,kw", MAXPOOL, ids=[str(c) for c in range(len(MAXPOOL))])
def test_max_pool2d(xs, kw, dtype):
    check(F.max_pool2d, TF.max_pool2d, [xs], dtype, **kw)  # random input: no ties


AVGPOOL = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ((1, 2, 8, 7), dict(kernel_size=(3, 2), stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 8, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                        count_include_pad=False)),
    ((1, 2, 6, 6), dict(kernel_size=2, divisor_override=3)),
    ((3, 5, 6), dict(kernel_size=(2, 3), stride=1)),                     # unbatched
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,kw", AVGPOOL, ids=[str(c) for c in range(len(AVGPOOL))])
def test_avg_pool2d(xs, kw, dtype):
    check(F.avg_pool2d, TF.avg_pool2d, [xs], dtype, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,size", [((2, 3, 8, 6), 1), ((2, 3, 8, 6), (4, 3)),
                                     ((2, 3, 7, 5), (3, 4)), ((1, 2, 7, 5), (None, 2)),
                                     ((3, 5, 5), 3)])
def test_adaptive_avg_pool2d(xs, size, dtype):
    check(F.adaptive_avg_pool2d, TF.adaptive_avg_pool2d, [xs], dtype, output_size=size)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unfold_and_fold(dtype):
    kw = dict(kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=(2, 1))
    check(F.unfold, TF.unfold, [(2, 3, 6, 7)], dtype, **kw)
    check(F.fold, TF.fold, [(2, 3 * 6, 4 * 5)], dtype, output_size=(6, 7), **kw)


@pytest.mark.parametrize("layout", ["nhwc", "flipped", "broadcast"])
def test_any_memory_layout_and_broadcast_cotangents(layout):
    """Inputs in any memory layout (im2col reads unpadded inputs in place through their
    strides) and the stride-0 cotangent of ``.sum()`` give torch's values."""
    base = R.standard_normal((2, 3, 6, 5))
    x = {"nhwc": np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
         "flipped": base[:, :, ::-1, ::-1],
         "broadcast": np.broadcast_to(base[:1], base.shape)}[layout]
    w, b = R.standard_normal((4, 3, 3, 3)), R.standard_normal(4)
    ours = [cr.Tensor(x, requires_grad=True)] + [cr.Tensor(a, requires_grad=True) for a in (w, b)]
    theirs = [torch.tensor(np.array(a), requires_grad=True) for a in (x, w, b)]
    for F_, args in ((F, ours), (TF, theirs)):
        h = F_.max_pool2d(args[0], 2) + F_.avg_pool2d(args[0], 2)   # unpadded: read in place
        (F_.conv2d(h, *args[1:], padding=1).sum() + F_.conv2d(*args).sum()).backward()
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_empty_batch():
    x = cr.Tensor(np.zeros((0, 3, 5, 5)), requires_grad=True)
    w = cr.Tensor(R.standard_normal((4, 3, 3, 3)), requires_grad=True)
    out = F.max_pool2d(F.conv2d(x, w, padding=1), 2)
    assert out.shape == (0, 4, 2, 2)
    out.sum().backward()
    assert x.grad.shape == x.shape and np.all(w.grad.data == 0)


def test_max_pool_ties_share_the_gradient():
    """chainrule splits a tied window's gradient equally (amax's rule); PyTorch gives all
    of it to one element. Both send the window's total gradient into the window."""
    x = cr.Tensor(np.ones((1, 1, 2, 4)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.full((1, 1, 2, 4), 0.25))


# ---------------------------------------------------------------- finite differences

def _t64(*shape):
    return cr.Tensor(R.standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("fn,shapes", [
    (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)),
     [(1, 2, 5, 5), (2, 2, 2, 2), (2,)]),
    (lambda x, w, b: F.conv2d(x, w, b, padding="same", groups=2), [(1, 2, 4, 4), (2, 1, 3, 2),
                                                                  (2,)]),
    (lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
     [(1, 2, 3, 3), (2, 2, 2, 2), (2,)]),
    (lambda x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False), [(1, 2, 5, 5)]),
    (lambda x: F.max_pool2d(x, 3, 2, padding=1), [(1, 2, 5, 5)]),
    (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [(1, 2, 5, 5)]),
], ids=["conv2d", "conv2d-same-groups", "conv_transpose2d", "avg_pool2d", "max_pool2d",
        "adaptive_avg_pool2d"])
def test_gradcheck_and_gradgradcheck(fn, shapes):
    inputs = [_t64(*s) for s in shapes]
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_second_derivatives_match_torch():
    """d/dw <v, d/dx loss> through conv2d, tanh, conv_transpose2d and pooling."""
    x, w, wt, v = (R.standard_normal(s) for s in
                   [(2, 2, 6, 6), (3, 2, 3, 3), (3, 2, 2, 2), (2, 2, 6, 6)])

    def loss(F_, x, w, wt):
        h = F_.conv2d(x, w, padding=1).tanh()
        h = F_.max_pool2d(F_.conv_transpose2d(h, wt, stride=2), 2)
        return (F_.avg_pool2d(h, 3, 1, padding=1) ** 2).sum()

    ours = [cr.Tensor(a, requires_grad=True) for a in (x, w, wt)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, wt)]
    (gx,) = cr.autograd.grad(loss(F, *ours), ours[0], create_graph=True)
    (tgx,) = torch.autograd.grad(loss(TF, *theirs), theirs[0], create_graph=True)
    ggs = cr.autograd.grad((gx * cr.Tensor(v)).sum(), ours[1:])
    tggs = torch.autograd.grad((tgx * torch.tensor(v)).sum(), theirs[1:])
    for a, t in zip(ggs, tggs):
        np.testing.assert_allclose(a.data, t.numpy(), rtol=1e-9, atol=1e-9)

# ---------------------------------------------------------------- modules


def _load(cm, tm, dtype):
    cm.weight = cr.nn.Parameter(cr.Tensor(tm.weight.detach().numpy().astype(dtype)))
    if tm.bias is not None:
        cm.bias = cr.nn.Parameter(cr.Tensor(tm.bias.detach().numpy().astype(dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls,args,kwargs,xs", [
    ("Conv1d", (4, 6, 3), dict(stride=2, padding=1, groups=2), (2, 4, 9)),
    ("Conv2d", (3, 4, (3, 2)), dict(padding="same", dilation=(2, 1)), (2, 3, 6, 5)),
    ("Conv2d", (4, 4, 3), dict(stride=2, groups=4, bias=False), (4, 7, 7)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2),
     (2, 4, 3, 4)),
], ids=["conv1d", "conv2d-same", "conv2d-depthwise-unbatched", "conv-transpose2d"])
def test_conv_modules_match_torch(cls, args, kwargs, xs, dtype):
    tm = getattr(torch.nn, cls)(*args, **kwargs).to(torch.float64)
    cm = getattr(nconv, cls)(*args, **kwargs, dtype=dtype)
    assert repr(cm) == repr(tm)
    assert [n for n, _ in cm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert cm.weight.shape == tuple(tm.weight.shape) and cm.weight.dtype == dtype
    _load(cm, tm, dtype)
    x = R.standard_normal(xs).astype(dtype)
    xc, xt = cr.Tensor(x, requires_grad=True), torch.tensor(x, dtype=torch.float64,
                                                            requires_grad=True)
    out, ref = cm(xc), tm(xt)
    tol = TOL[dtype]
    np.testing.assert_allclose(out.data, ref.detach().numpy(), **tol)
    g = R.standard_normal(out.shape)
    out.backward(cr.Tensor(g.astype(dtype)))
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(xc.grad.data, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(cm.weight.grad.data, tm.weight.grad.numpy(), **tol)
    if tm.bias is not None:
        np.testing.assert_allclose(cm.bias.grad.data, tm.bias.grad.numpy(), **tol)


@pytest.mark.parametrize("cls,args,kwargs", [
    ("Conv2d", (3, 64, 5), {}), ("Conv1d", (8, 40, 3), dict(groups=4)),
    ("ConvTranspose2d", (16, 24, 3), dict(groups=2))])
def test_conv_init_bounds(cls, args, kwargs):
    """kaiming_uniform_(a=sqrt(5)) and the bias bound are both 1/sqrt(fan_in), fan_in from
    the weight's dims 1.. (as PyTorch, also for the transposed layer's weight layout)."""
    cr.manual_seed(3)
    m = getattr(nconv, cls)(*args, **kwargs)
    fan_in = int(np.prod(m.weight.shape[1:]))
    bound = 1 / math.sqrt(fan_in)
    for p in (m.weight.data, m.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound
    assert abs(m.weight.data.std() - bound / math.sqrt(3)) < 0.1 * bound
    cr.manual_seed(3)
    again = getattr(nconv, cls)(*args, **kwargs)
    np.testing.assert_array_equal(again.weight.data, m.weight.data)


def test_conv_transpose_output_size():
    tm = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    cm = nconv.ConvTranspose2d(2, 3, 3, stride=2, padding=1, dtype=np.float64)
    _load(cm, tm, np.float64)
    x = R.standard_normal((1, 2, 4, 5))
    out = cm(cr.Tensor(x), output_size=(8, 10))
    ref = tm(torch.tensor(x), output_size=(8, 10))
    assert out.shape == (1, 3, 8, 10)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: requested output size \(9, 10\)"):
        cm(cr.Tensor(x), output_size=(9, 10))


@pytest.mark.parametrize("cls,args,kwargs,xs", [
    ("MaxPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 8, 7)),
    ("MaxPool2d", ((2, 3),), dict(dilation=(2, 1)), (3, 9, 9)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 8, 7)),
    ("AdaptiveAvgPool2d", ((3, 2),), {}, (2, 3, 8, 7)),
])
def test_pool_modules_match_torch(cls, args, kwargs, xs):
    tm, cm = getattr(torch.nn, cls)(*args, **kwargs), getattr(npool, cls)(*args, **kwargs)
    assert repr(cm) == repr(tm)
    x = R.standard_normal(xs)
    xc, xt = cr.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = cm(xc), tm(xt)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(xc.grad.data, xt.grad.numpy(), rtol=1e-12, atol=1e-12)

# ---------------------------------------------------------------- errors


def _z(*shape, dtype=np.float32):
    return cr.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize("call,pattern", [
    (lambda: F.conv2d(_z(8, 3, 32, 32), _z(16, 4, 3, 3)),
     r"conv2d: input \(8, 3, 32, 32\) float32 has 3 channels but weight \(16, 4, 3, 3\) "
     r"float32 expects 4 \(groups=1\), at .*test_conv\.py:\d+"),
    (lambda: F.conv2d(_z(2, 6, 5, 5), _z(4, 3, 3, 3), groups=4),
     r"conv2d: groups=4 does not divide the 6 input channels of \(2, 6, 5, 5\) float32"),
    (lambda: F.conv2d(_z(2, 6, 5, 5), _z(3, 3, 3, 3), groups=2),
     r"conv2d: groups=2 does not divide the 3 output channels of weight \(3, 3, 3, 3\)"),
    (lambda: F.conv2d(_z(1, 3, 4, 4), _z(2, 3, 5, 3, dtype=np.float64), padding=(0, 1)),
     r"conv2d: kernel \(5, 3\) .* is larger than the padded input \(4, 6\) "
     r"\(input \(1, 3, 4, 4\) float64\), at .*test_conv\.py"),
    (lambda: F.conv2d(_z(3, 4, 4, 4, 4), _z(2, 4, 3, 3)),
     r"conv2d: expected a 3-D \(unbatched\) or 4-D \(batched\) input, got \(3, 4, 4, 4, 4\)"),
    (lambda: F.conv2d(_z(1, 4, 4, 4), _z(2, 4, 3)), r"conv2d: weight must be 4-D"),
    (lambda: F.conv2d(_z(1, 4, 4, 4), _z(2, 4, 3, 3), _z(3)),
     r"conv2d: bias \(3,\) float32 must have shape \(2,\)"),
    (lambda: F.conv2d(_z(1, 4, 6, 6), _z(2, 4, 3, 3), padding="same", stride=2),
     r"conv2d: padding='same' needs stride 1"),
    (lambda: F.conv1d(_z(1, 4, 6), _z(2, 3, 3)),
     r"conv1d: input \(1, 4, 6\) float32 has 4 channels but weight \(2, 3, 3\)"),
    (lambda: F.conv_transpose2d(_z(1, 4, 3, 3), _z(4, 2, 3, 3), stride=2, output_padding=2),
     r"conv_transpose2d: output_padding \(2, 2\) must be smaller than either stride"),
    (lambda: F.conv_transpose2d(_z(1, 4, 3, 3), _z(3, 2, 3, 3)),
     r"conv_transpose2d: input \(1, 4, 3, 3\) float32 has 4 channels but weight"),
    (lambda: F.max_pool2d(_z(1, 1, 4, 4), 2, padding=2),
     r"max_pool2d: padding \(2, 2\) must be non-negative and at most half of kernel_size"),
    (lambda: F.max_pool2d(_z(1, 1, 2, 2), 3), r"max_pool2d: kernel \(3, 3\) .* is larger than "
                                               r"the padded input \(2, 2\)"),
    (lambda: F.avg_pool2d(_z(4, 4), 2), r"avg_pool2d: expected a 3-D \(unbatched\) or 4-D"),
    (lambda: F.adaptive_avg_pool2d(_z(1, 2, 4, 4), (1, 2, 3)),
     r"adaptive_avg_pool2d: output_size must be an int or a pair"),
])
def test_errors_name_the_op_shapes_and_line(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_module_argument_errors():
    with pytest.raises(ValueError, match=r"Conv2d: groups=2 must be positive and divide "
                                         r"in_channels=3"):
        nconv.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"Conv2d: padding_mode 'reflect' is not supported"):
        nconv.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"Conv2d: padding='same' needs stride 1"):
        nconv.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"MaxPool2d: return_indices=True is not supported"):
        npool.MaxPool2d(2, return_indices=True)
