"""``chainrule.autograd``: the PyTorch-style reverse-mode API."""
from .autodiff.backward import backward, grad
from .core.dispatch import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]
