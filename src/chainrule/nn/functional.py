"""``chainrule.nn.functional`` (import as ``F``): the layers as functions, as in
``torch.nn.functional``.

Everything here is composed from chainrule's public ops, so it is differentiable to any
order and traceable; the numerically delicate pieces (softmax, softplus, the stable
losses) are the ops' own.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import ops
from ..core.dispatch import no_grad, user_site
from ..core.tensor import Tensor
from ..ops import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                   gelu, l1_loss, logsigmoid, mse_loss, nll_loss, one_hot, pad, sigmoid, tanh)
from ..ops.conv import (adaptive_avg_pool2d, avg_pool2d, conv1d, conv2d, conv_transpose2d, fold,
                        max_pool2d, unfold)
from ..ops.creation import rand
from ..ops.linalg import linear as _linear

__all__ = [
    "linear", "bilinear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu",
    "silu", "mish", "tanh", "sigmoid", "hardtanh", "hardsigmoid", "hardswish", "softplus",
    "softsign", "logsigmoid", "softmax", "log_softmax", "dropout", "dropout2d",
    "layer_norm", "group_norm", "batch_norm", "embedding", "one_hot", "pad", "normalize",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss", "kl_div",
    "conv1d", "conv2d", "conv_transpose2d", "unfold", "fold", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool2d", "scaled_dot_product_attention",
]


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else ops.as_tensor(x)


def _maybe_inplace(x: Tensor, fn, inplace: bool, name: str) -> Tensor:
    """``fn(x)``, or written into ``x``'s buffer when ``inplace`` (recorded like x.add_)."""
    if not inplace:
        return fn(x)
    return ops.inplace(x, lambda a, _: fn(a), None, name)


# ---------------------------------------------------------------- linear


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``: input (*, in), weight (out, in), bias (out,)."""
    input = _t(input)
    if input.ndim == 0 or weight.ndim != 2 or input.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input {tuple(input.shape)} {input.dtype} does not match "
                         f"weight {tuple(weight.shape)} {weight.dtype} (expected last dim "
                         f"{weight.shape[-1]}), at {user_site()}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[0]):
        raise ValueError(f"linear: bias {tuple(bias.shape)} does not match weight "
                         f"{tuple(weight.shape)} (expected ({weight.shape[0]},)), at "
                         f"{user_site()}")
    if input.ndim == 2:
        return _linear(input, weight, bias)
    lead = input.shape[:-1]  # (*, in) as one 2-D product
    out = _linear(ops.reshape(input, (-1, input.shape[-1])), weight, bias)
    return ops.reshape(out, lead + (weight.shape[0],))


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor,
             bias: Tensor | None = None) -> Tensor:
    """``x1^T W[k] x2 + b[k]`` for each output k: weight (out, in1, in2)."""
    out = ops.einsum("...i,kij,...j->...k", _t(input1), weight, _t(input2))
    return out if bias is None else ops.add(out, bias)


# ---------------------------------------------------------------- activations


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) (gradient 0 at 0, as PyTorch)."""
    return _maybe_inplace(_t(input), ops.relu, inplace, "relu_")


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """x clamped to [min_val, max_val]; the gradient is 0 at and beyond the bounds."""
    def fn(x):
        return ops.where(ops.le(x, min_val), float(min_val),
                         ops.where(ops.ge(x, max_val), float(max_val), x))
    return _maybe_inplace(_t(input), fn, inplace, "hardtanh_")


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, else negative_slope * x."""
    return _maybe_inplace(_t(input), lambda x: ops.where(ops.gt(x, 0), x,
                                                         ops.mul(x, negative_slope)),
                          inplace, "leaky_relu_")


def _elu(x: Tensor, alpha: float) -> Tensor:
    # expm1 of min(x, 0): the branch not taken stays finite for large x
    neg = ops.mul(ops.expm1(ops.minimum(x, 0.0)), alpha)
    return ops.where(ops.gt(x, 0), x, neg)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, else alpha * (exp(x) - 1)."""
    return _maybe_inplace(_t(input), lambda x: _elu(x, alpha), inplace, "elu_")


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalizing constants."""
    return _maybe_inplace(_t(input), lambda x: ops.mul(_elu(x, _SELU_ALPHA), _SELU_SCALE),
                          inplace, "selu_")


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    def fn(x):
        return ops.where(ops.gt(x, 0), x, ops.mul(_elu(ops.div(x, alpha), 1.0), alpha))
    return _maybe_inplace(_t(input), fn, inplace, "celu_")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return _maybe_inplace(_t(input), ops.silu, inplace, "silu_")


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    return _maybe_inplace(_t(input), lambda x: ops.mul(x, ops.tanh(ops.softplus(x))),
                          inplace, "mish_")


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    return _maybe_inplace(_t(input), lambda x: ops.div(hardtanh(ops.add(x, 3.0), 0.0, 6.0), 6.0),
                          inplace, "hardsigmoid_")


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6."""
    return _maybe_inplace(_t(input), lambda x: ops.mul(x, hardsigmoid(x)), inplace,
                          "hardswish_")


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta; x itself where beta x > threshold."""
    return ops.softplus(_t(input), beta, threshold)


def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    x = _t(input)
    return ops.div(x, ops.add(ops.abs(x), 1.0))


def _softmax_dim(ndim: int, name: str) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the "
                  f"call to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (optionally computed in ``dtype``)."""
    x = _t(input)
    if dtype is not None:
        x = x.to(dtype)
    return ops.softmax(x, _softmax_dim(x.ndim, "softmax") if dim is None else dim)


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """log(softmax(x)) along ``dim``, computed stably."""
    x = _t(input)
    if dtype is not None:
        x = x.to(dtype)
    return ops.log_softmax(x, _softmax_dim(x.ndim, "log_softmax") if dim is None else dim)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``dim``."""
    x = _t(input)
    n = ops.norm(x, p, dim, keepdim=True)
    return ops.div(x, ops.maximum(n, eps))


# ---------------------------------------------------------------- dropout


def _check_p(p: float, name: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability has to be between 0 and 1, but got {p}")


def _dropout_mask(x: Tensor, p: float, shape, generator) -> Tensor:
    keep = rand(*shape, generator=generator, dtype=np.float32).data >= p
    mask = keep.astype(x.dtype)
    mask *= 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return Tensor(mask)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
            generator=None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p), in
    training; the identity otherwise. Draws come from ``generator`` or the global one."""
    _check_p(p, "dropout")
    x = _t(input)
    if not training or p == 0.0:
        return x
    mask = _dropout_mask(x, p, x.shape, generator)
    return _maybe_inplace(x, lambda a: ops.mul(a, mask), inplace, "dropout_")


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator=None) -> Tensor:
    """Zero whole channels: input (N, C, H, W) or (C, H, W), one draw per channel."""
    _check_p(p, "dropout2d")
    x = _t(input)
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                         f"got shape {tuple(x.shape)}, at {user_site()}")
    if not training or p == 0.0:
        return x
    mask = _dropout_mask(x, p, x.shape[:-2] + (1, 1), generator)
    return _maybe_inplace(x, lambda a: ops.mul(a, mask), inplace, "dropout2d_")


# ---------------------------------------------------------------- normalization


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize over the last ``len(normalized_shape)`` dims (biased variance), then
    scale by ``weight`` and shift by ``bias``."""
    x = _t(input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if tuple(x.shape[x.ndim - k:]) != shape or x.ndim < k:
        raise ValueError(f"layer_norm: input {tuple(x.shape)} {x.dtype} does not end in "
                         f"normalized_shape {shape}, at {user_site()}")
    axes = tuple(range(x.ndim - k, x.ndim))
    xc = ops.sub(x, ops.mean(x, axes, keepdim=True))
    var = ops.mean(ops.mul(xc, xc), axes, keepdim=True)
    out = ops.mul(xc, ops.rsqrt(ops.add(var, eps)))
    if weight is not None:
        out = ops.mul(out, weight)
    if bias is not None:
        out = ops.add(out, bias)
    return out


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize (N, C, *) over groups of C // num_groups channels and all positions,
    then scale and shift per channel."""
    x = _t(input)
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(f"group_norm: input {tuple(x.shape)} {x.dtype} needs (N, C, *) with "
                         f"C divisible by num_groups={num_groups}, at {user_site()}")
    n, c = x.shape[:2]
    g = ops.reshape(x, (n, num_groups, -1))  # (N, G, C/G * positions)
    out = ops.reshape(layer_norm(g, g.shape[-1:], eps=eps), x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        out = ops.mul(out, ops.reshape(weight, shape))
    if bias is not None:
        out = ops.add(out, ops.reshape(bias, shape))
    return out


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel (dim 1) of (N, C, *) by batch statistics when ``training``
    (updating the running ones in place: new = (1 - momentum) old + momentum batch, with
    the unbiased batch variance), else by ``running_mean``/``running_var``."""
    x = _t(input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected input (N, C, *), got shape {tuple(x.shape)}, "
                         f"at {user_site()}")
    c = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, c) + (1,) * (x.ndim - 2)
    if training:
        n = x.numel() // c
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when "
                             f"training, got input size {tuple(x.shape)}, at {user_site()}")
        mean = ops.mean(x, axes, keepdim=True)
        xc = ops.sub(x, mean)
        var = ops.mean(ops.mul(xc, xc), axes, keepdim=True)
        if running_mean is not None or running_var is not None:
            with no_grad():
                if running_mean is not None:
                    running_mean.mul_(1 - momentum).add_(
                        ops.reshape(mean.detach(), (c,)).to(running_mean.dtype) * momentum)
                if running_var is not None:
                    unbiased = ops.reshape(var.detach(), (c,)).to(running_var.dtype)
                    running_var.mul_(1 - momentum).add_(unbiased * (momentum * n / (n - 1)))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when "
                             "training=False")
        xc = ops.sub(x, ops.reshape(running_mean, shape))
        var = ops.reshape(running_var, shape)
    out = ops.mul(xc, ops.rsqrt(ops.add(var, eps)))
    if weight is not None:
        out = ops.mul(out, ops.reshape(weight, shape))
    if bias is not None:
        out = ops.add(out, ops.reshape(bias, shape))
    return out


# ---------------------------------------------------------------- embedding


def _renorm_rows(weight: Tensor, idx: np.ndarray, max_norm: float, norm_type: float) -> None:
    rows = np.unique(idx)
    with no_grad():
        norms = ops.norm(weight[rows], norm_type, dim=1).data
        over = norms > max_norm
        if over.any():
            scale = max_norm / (norms[over] + 1e-7)
            weight[rows[over]] = weight[rows[over]] * Tensor(scale[:, None].astype(weight.dtype))


def embedding(input, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              sparse: bool = False) -> Tensor:
    """Rows of ``weight`` (num, dim) picked by the integer ``input``: output input.shape +
    (dim,). The ``padding_idx`` row gets no gradient. With ``max_norm``, the picked rows
    whose norm exceeds it are rescaled in place first. With ``sparse``, the table's
    gradient is a ``RowSparseGrad`` holding only the picked rows (for SGD, Adagrad and
    SparseAdam), so a large table costs nothing per step beyond the rows used."""
    idx = input if isinstance(input, Tensor) else ops.tensor(np.asarray(input))
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be an integer tensor, got {idx.dtype}, at "
                        f"{user_site()}")
    num = weight.shape[0]
    d = idx.data
    known = d.__class__ is np.ndarray  # not while jit traces
    if known and d.size and (d.min() < 0 or d.max() >= num):
        raise IndexError(f"embedding: index out of range: indices span [{d.min()}, "
                         f"{d.max()}] but the table has {num} rows, at {user_site()}")
    if max_norm is not None:
        _renorm_rows(weight, d, max_norm, norm_type)
    rows = ops.take(weight, idx, 0, sparse)  # (*idx.shape, dim)
    if padding_idx is not None:
        pad = ops.eq(idx, padding_idx % num if padding_idx < 0 else padding_idx)
        if not known or d.size and bool(pad.data.any()):  # the padding rows get no gradient
            rows = ops.where(ops.unsqueeze(pad, -1), rows.detach(), rows)
    return rows


# ---------------------------------------------------------------- losses (beyond ops')


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target)."""
    d = ops.abs(ops.sub(_t(input), _t(target)))
    if beta == 0:
        return _reduce(d, reduction, "smooth_l1_loss")
    loss = ops.where(ops.lt(d, beta), ops.mul(ops.mul(d, d), 0.5 / beta),
                     ops.sub(d, 0.5 * beta))
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean",
               delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    d = ops.abs(ops.sub(_t(input), _t(target)))
    loss = ops.where(ops.lt(d, delta), ops.mul(ops.mul(d, d), 0.5),
                     ops.mul(ops.sub(d, 0.5 * delta), delta))
    return _reduce(loss, reduction, "huber_loss")


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL(target || exp(input)) pointwise: target (log target - input); ``input`` holds
    log-probabilities. ``reduction='batchmean'`` divides the sum by the batch size."""
    x, y = _t(input), _t(target)
    if log_target:
        loss = ops.mul(ops.exp(y), ops.sub(y, x))
    else:  # 0 log 0 = 0
        pos = ops.gt(y, 0)
        safe = ops.where(pos, y, ops.ones_like(y))
        loss = ops.where(pos, ops.mul(y, ops.sub(ops.log(safe), x)), ops.zeros_like(x))
    if reduction == "batchmean":
        return ops.div(ops.sum(loss), x.shape[0] if x.ndim else 1)
    return _reduce(loss, reduction, "kl_div")


def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


# Last: transformer.py imports this module (its layers use F.dropout), so this import
# must come after everything above is defined.
from .transformer import scaled_dot_product_attention  # noqa: E402
