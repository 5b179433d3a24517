"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``GroupNorm``.

All are composed from mean/mul/rsqrt ops (see ``functional``), so they are
differentiable to any order.
"""
from __future__ import annotations

from .. import backend, ops
from ..core.dispatch import user_site
from ..core.tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter


def _dt(dtype):
    return backend.get_default_dtype() if dtype is None else backend.to_dtype(dtype)


def _affine_params(m: Module, affine: bool, bias: bool, shape: tuple, dtype) -> None:
    """weight (ones) and bias (zeros) of ``shape``, or None placeholders."""
    m.register_parameter("weight", Parameter(ops.ones(shape, dtype=dtype)) if affine else None)
    m.register_parameter("bias", Parameter(ops.zeros(shape, dtype=dtype))
                         if affine and bias else None)


class _BatchNorm(Module):
    _ndims: tuple = ()
    _layout = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        dt = _dt(dtype)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _affine_params(self, affine, bias, (num_features,), dt)
        if track_running_stats:
            self.register_buffer("running_mean", ops.zeros(num_features, dtype=dt))
            self.register_buffer("running_var", ops.ones(num_features, dtype=dt))
            self.register_buffer("num_batches_tracked", ops.tensor(0, dtype=backend.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Running statistics reset; weight 1, bias 0."""
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim not in self._ndims:
            raise ValueError(f"{type(self).__name__}: expected {self._layout} input, got "
                             f"shape {tuple(input.shape)}, at {user_site()}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): input "
                             f"{tuple(input.shape)} {input.dtype} has {input.shape[1]} "
                             f"channels (dim 1), expected {self.num_features}, at "
                             f"{user_site()}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) inputs, per channel C.

    Training normalizes by the batch's statistics (biased variance) and updates the
    running ones (unbiased variance) with ``momentum``, or a cumulative average when
    ``momentum=None``; eval normalizes by the running statistics.
    """

    _ndims = (2, 3)
    _layout = "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) inputs, per channel C (see BatchNorm1d)."""

    _ndims = (4,)
    _layout = "4-D (N, C, H, W)"


class LayerNorm(Module):
    """Normalize over the last dims (``normalized_shape``), then an elementwise affine map
    (weight 1, bias 0 initially)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=None) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _affine_params(self, elementwise_affine, bias, self.normalized_shape, _dt(dtype))

    def reset_parameters(self) -> None:
        """Weight 1, bias 0."""
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalize (N, C, *) over groups of ``num_channels // num_groups`` channels (and all
    spatial positions), then a per-channel affine map."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _affine_params(self, affine, bias, (num_channels,), _dt(dtype))

    def forward(self, input: Tensor) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")
