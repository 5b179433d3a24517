"""chainrule: eager tensors with reverse-mode autograd to any order, over NumPy.

    import chainrule as cr
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    x.grad  # tensor([2., 4.])
"""
from . import ops as _ops
from .backend import get_default_dtype, set_default_dtype
from .core.dispatch import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .core.primitive import PRIMITIVES
from .core.tensor import Tensor, bind_methods as _bind_methods
from .ops import *  # noqa: F401,F403  (the public op namespace)
from . import autograd, func, testing  # noqa: E402
from .func import (grad, hessian, hvp, jacfwd, jacrev, jvp, tree_flatten, tree_map,
                   tree_unflatten, value_and_grad, vjp)
from .autodiff.custom import custom_jvp, custom_vjp
from .autodiff.memory import checkpoint, checkpoint_sequential
from . import compile, data, nn, optim, viz  # noqa: E402,A004
from .compile import jit, make_graph  # noqa: E402
from .io import CheckpointError, load, save  # noqa: E402

_bind_methods(_ops)

float32 = _ops.creation.backend.float32
float64 = _ops.creation.backend.float64
int32 = _ops.creation.backend.int32
int64 = _ops.creation.backend.int64
bool = _ops.creation.backend.bool_  # noqa: A001  (torch.bool)
float = float32  # noqa: A001
double = float64
long = int64

__version__ = "0.1.0"

# Floating-point warnings raised inside chainrule's own kernels (log(0), exp overflow)
# are silenced, as in PyTorch: inf/nan results are values, not warnings. (pytest resets
# filters per test; pyproject.toml repeats this one for the test suite.)
import warnings as _warnings

_warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"chainrule\.")
