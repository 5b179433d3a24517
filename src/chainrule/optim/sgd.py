"""Stochastic gradient descent (optionally with momentum)."""
from __future__ import annotations

from typing import Any

from ..core.dispatch import user_site
from ..core.tensor import Tensor
from . import functional as F
from .optimizer import Optimizer, ParamsT


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov momentum, weight
    decay and maximization, as ``torch.optim.SGD``.

    With momentum ``mu``: ``b = mu * b + (1 - dampening) * g`` (``b = g`` at the first
    step), then ``p -= lr * b`` (or ``lr * (g + mu * b)`` with ``nesterov``).
    """

    def __init__(self, params: ParamsT, lr: float | Tensor = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False, fused: bool | None = None) -> None:
        if lr < 0:
            raise ValueError(f"SGD: invalid learning rate {lr}, at {user_site()}")
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum}, at {user_site()}")
        if weight_decay < 0:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay}, at {user_site()}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={momentum}, dampening={dampening}), at "
                             f"{user_site()}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, fused=fused))

    def _sparse_error(self, group: dict[str, Any]) -> str | None:
        if group["momentum"] != 0 or group["weight_decay"] != 0:
            return ("SGD takes row-sparse gradients only without momentum and weight decay "
                    "(those would move every row); use SparseAdam or a dense Embedding")
        return None

    def _update(self, group: dict[str, Any], params: list[Tensor]) -> None:
        use_momentum = group["momentum"] != 0
        bufs = [self.state[p].get("momentum_buffer") if use_momentum else None
                for p in params]
        new_params, bufs = F.sgd(params, [p.grad for p in params], bufs, lr=group["lr"],
                                 momentum=group["momentum"], dampening=group["dampening"],
                                 nesterov=group["nesterov"],
                                 weight_decay=group["weight_decay"],
                                 maximize=group["maximize"])
        self._write(params, new_params)
        if use_momentum:
            for p, buf in zip(params, bufs):
                self._store(self.state[p], momentum_buffer=buf)
