"""``chainrule.nn``: modules, layers, losses, initializers and ``functional``, as ``torch.nn``."""
from . import functional, init
from .container import ModuleDict, ModuleList, Sequential
from .linear import Bilinear, Flatten, Identity, Linear, Unflatten
from .module import Module, Parameter

__all__ = [
    "functional", "init", "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict",
    "Identity", "Linear", "Bilinear", "Flatten", "Unflatten",
]
