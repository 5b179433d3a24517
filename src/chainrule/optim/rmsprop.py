"""RMSprop."""
from __future__ import annotations

from typing import Any

from ..core.dispatch import user_site
from ..core.tensor import Tensor
from ..ops import zeros_like
from . import functional as F
from .optimizer import Optimizer, ParamsT, new_step


class RMSprop(Optimizer):
    """RMSprop (Hinton), as ``torch.optim.RMSprop``: each step is divided by the root of a
    running average (decay ``alpha``) of the squared gradient; ``centered`` subtracts the
    square of the running average of the gradient first, ``momentum`` accumulates the
    scaled steps in a buffer."""

    def __init__(self, params: ParamsT, lr: float | Tensor = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False,
                 fused: bool | None = None) -> None:
        for what, value in [("learning rate", lr), ("epsilon", eps), ("momentum", momentum),
                            ("weight_decay", weight_decay), ("alpha", alpha)]:
            if value < 0:
                raise ValueError(f"RMSprop: invalid {what} {value}, at {user_site()}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered,
                                      maximize=maximize, fused=fused))

    def _update(self, group: dict[str, Any], params: list[Tensor]) -> None:
        centered, use_momentum = group["centered"], group["momentum"] > 0
        states = []
        for p in params:
            state = self.state[p]
            if not state:
                state.update(step=new_step(), square_avg=zeros_like(p))
                if use_momentum:
                    state["momentum_buffer"] = zeros_like(p)
                if centered:
                    state["grad_avg"] = zeros_like(p)
            states.append(state)
        new_params, sqs, gavgs, bufs = F.rmsprop(
            params, [p.grad for p in params], [s["square_avg"] for s in states],
            [s["grad_avg"] for s in states] if centered else None,
            [s["momentum_buffer"] for s in states] if use_momentum else None,
            lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
            weight_decay=group["weight_decay"], momentum=group["momentum"],
            centered=centered, maximize=group["maximize"])
        self._write(params, new_params)
        for i, state in enumerate(states):
            self._store(state, step=state["step"] + 1, square_avg=sqs[i])
            if centered:
                self._store(state, grad_avg=gavgs[i])
            if use_momentum:
                self._store(state, momentum_buffer=bufs[i])
