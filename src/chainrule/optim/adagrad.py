"""Adagrad."""
from __future__ import annotations

from typing import Any

from ..core.dispatch import user_site
from ..core.tensor import Tensor
from ..ops import full_like
from . import functional as F
from .optimizer import Optimizer, ParamsT, new_step


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as ``torch.optim.Adagrad``: each step is divided by the
    root of the running sum of squared gradients (which starts at
    ``initial_accumulator_value``); the learning rate decays as
    ``lr / (1 + (step - 1) * lr_decay)``."""

    def __init__(self, params: ParamsT, lr: float | Tensor = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False,
                 fused: bool | None = None) -> None:
        for what, value in [("learning rate", lr), ("lr_decay", lr_decay),
                            ("weight_decay", weight_decay),
                            ("initial_accumulator_value", initial_accumulator_value),
                            ("epsilon", eps)]:
            if value < 0:
                raise ValueError(f"Adagrad: invalid {what} {value}, at {user_site()}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize, fused=fused))
        for group in self.param_groups:  # PyTorch creates Adagrad's state up front
            for p in group["params"]:
                self.state[p] = {"step": new_step(), "sum": full_like(
                    p, group["initial_accumulator_value"])}

    def _sparse_error(self, group: dict[str, Any]) -> str | None:
        if group["weight_decay"] != 0:
            return "Adagrad takes row-sparse gradients only without weight decay"
        return None

    def _update(self, group: dict[str, Any], params: list[Tensor]) -> None:
        states = [self.state[p] for p in params]
        new_params, sums, steps = F.adagrad(
            params, [p.grad for p in params], [s["sum"] for s in states],
            [s["step"] for s in states], lr=group["lr"], lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"])
        self._write(params, new_params)
        for state, s, step in zip(states, sums, steps):
            self._store(state, sum=s, step=step)
