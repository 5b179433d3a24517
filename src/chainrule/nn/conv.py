"""Convolution layers: ``Conv1d``, ``Conv2d``, ``ConvTranspose2d``, as in ``torch.nn``.

The math is in ``chainrule.ops.conv``; these modules hold the weights, initialize them as
PyTorch does (``kaiming_uniform_(a=sqrt(5))``, bias uniform in ±1/sqrt(fan_in)) and
check their arguments.
"""
from __future__ import annotations


from .. import backend, ops
from ..core.dispatch import user_site
from ..core.tensor import Tensor
from ..ops import conv as C
from . import init
from .module import Module, Parameter


def _ntuple(v, n: int, name: str, cls: str) -> tuple:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    if len(v) != n or not all(isinstance(e, int) for e in v):
        raise ValueError(f"{cls}: {name} must be an int or a tuple of {n} ints, got {v!r}, "
                         f"at {user_site()}")
    return v


class _ConvNd(Module):
    """Shared by the convolution layers: arguments, parameters, init and repr."""

    _dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding,
                 dilation, groups: int, bias: bool, padding_mode: str, dtype,
                 transposed: bool, output_padding=0) -> None:
        super().__init__()
        cls, n = type(self).__name__, self._dims
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{cls}: groups={groups} must be positive and divide "
                             f"in_channels={in_channels} and out_channels={out_channels}, "
                             f"at {user_site()}")
        if padding_mode != "zeros":
            raise ValueError(f"{cls}: padding_mode {padding_mode!r} is not supported (only "
                             f"'zeros'), at {user_site()}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size", cls)
        self.stride = _ntuple(stride, n, "stride", cls)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{cls}: padding must be an int, a tuple, 'valid' or 'same', "
                                 f"got {padding!r}, at {user_site()}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{cls}: padding='same' needs stride 1, got stride "
                                 f"{self.stride}, at {user_site()}")
            self.padding = padding
        else:
            self.padding = _ntuple(padding, n, "padding", cls)
        self.dilation = _ntuple(dilation, n, "dilation", cls)
        self.output_padding = _ntuple(output_padding, n, "output_padding", cls)
        self.groups = groups
        self.transposed = transposed
        self.padding_mode = padding_mode
        dtype = backend.get_default_dtype() if dtype is None else dtype
        shape = ((in_channels, out_channels // groups) if transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(ops.empty(*shape, dtype=dtype))
        if bias:
            self.bias = Parameter(ops.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh weights from the global generator, as PyTorch initializes them."""
        init.default_layer_init_(self.weight, self.bias)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        n = self._dims
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    """1-D convolution: (N, C_in, L) or (C_in, L) -> (N, C_out, L_out).

    ``weight`` is (out_channels, in_channels / groups, kernel_size).
    """

    _dims = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, transposed=False)

    def forward(self, input: Tensor) -> Tensor:
        return C.conv1d(input, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class Conv2d(_ConvNd):
    """2-D convolution: (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out).

    ``weight`` is (out_channels, in_channels / groups, kh, kw); ``padding`` may be an int,
    a pair, ``'valid'`` or ``'same'``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, transposed=False)

    def forward(self, input: Tensor) -> Tensor:
        return C.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the gradient of Conv2d with respect to its input).

    ``weight`` is (in_channels, out_channels / groups, kh, kw). ``forward(input,
    output_size)`` picks the output_padding that gives ``output_size``, as PyTorch.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", dtype=None) -> None:
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair, got "
                             f"{padding!r}, at {user_site()}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, transposed=True,
                         output_padding=output_padding)

    def _output_padding(self, input: Tensor, output_size) -> tuple:
        if output_size is None:
            return self.output_padding
        size = tuple(output_size)[-2:]
        if len(size) != 2:
            raise ValueError(f"ConvTranspose2d: output_size must hold at least 2 sizes, got "
                             f"{tuple(output_size)}, at {user_site()}")
        pads = []
        for d, n in enumerate(size):
            least = ((input.shape[d - 2] - 1) * self.stride[d] - 2 * self.padding[d]
                     + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            if not least <= n < least + self.stride[d]:
                raise ValueError(f"ConvTranspose2d: requested output size {size} is not "
                                 f"reachable from input {tuple(input.shape)}: dim {d} must "
                                 f"be in [{least}, {least + self.stride[d] - 1}], at "
                                 f"{user_site()}")
            pads.append(n - least)
        return tuple(pads)

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        return C.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups,
                                  self.dilation)
