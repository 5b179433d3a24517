"""``chainrule.optim``: optimizers and learning-rate schedulers, as ``torch.optim``.

Every update rule is written once, as a pure function in ``chainrule.optim.functional``;
the optimizer classes run it under ``no_grad`` and copy the results into the parameters.
"""
from . import functional, lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW, SparseAdam
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "SparseAdam", "Adagrad", "RMSprop", "functional",
           "lr_scheduler"]
