"""``chainrule.autograd``: the PyTorch-style reverse-mode API, custom rules, anomaly mode
and the saved-tensors report."""
from .autodiff.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .autodiff.backward import backward, grad
from .autodiff.custom import Function, FunctionCtx
from .autodiff.memory import saved_tensors_report
from .core.dispatch import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "Function", "FunctionCtx", "detect_anomaly", "is_anomaly_enabled", "AnomalyError",
           "saved_tensors_report"]
