"""Adam, AMSGrad and AdamW."""
from __future__ import annotations

from typing import Any

from ..core.dispatch import user_site
from ..core.tensor import Tensor
from ..ops import zeros_like
from . import functional as F
from .optimizer import Optimizer, ParamsT, new_step


def _check(name, lr, betas, eps, weight_decay) -> None:
    for what, value, ok in [("learning rate", lr, lr >= 0), ("epsilon", eps, eps >= 0),
                            ("beta1", betas[0], 0 <= betas[0] < 1),
                            ("beta2", betas[1], 0 <= betas[1] < 1),
                            ("weight_decay", weight_decay, weight_decay >= 0)]:
        if not ok:
            raise ValueError(f"{name}: invalid {what} {value}, at {user_site()}")


class Adam(Optimizer):
    """Adam (Kingma and Ba), as ``torch.optim.Adam``: bias-corrected running averages of
    the gradient (``beta1``) and of its square (``beta2``); ``amsgrad`` divides by the
    running maximum of the latter. ``weight_decay`` adds ``weight_decay * p`` to the
    gradient, or, with ``decoupled_weight_decay=True`` (AdamW), shrinks ``p`` directly.
    """

    def __init__(self, params: ParamsT, lr: float | Tensor = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False, fused: bool | None = None) -> None:
        _check(type(self).__name__, lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      fused=fused))

    def _update(self, group: dict[str, Any], params: list[Tensor]) -> None:
        amsgrad = group["amsgrad"]
        states = []
        for p in params:
            state = self.state[p]
            if not state:
                state.update(step=new_step(), exp_avg=zeros_like(p), exp_avg_sq=zeros_like(p))
                if amsgrad:
                    state["max_exp_avg_sq"] = zeros_like(p)
            states.append(state)
        beta1, beta2 = group["betas"]
        new_params, ms, vs, vmaxes, steps = F.adam(
            params, [p.grad for p in params], [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if amsgrad else None,
            [s["step"] for s in states], lr=group["lr"], beta1=beta1, beta2=beta2,
            eps=group["eps"], weight_decay=group["weight_decay"], amsgrad=amsgrad,
            maximize=group["maximize"], decoupled=group["decoupled_weight_decay"])
        self._write(params, new_params)
        for i, state in enumerate(states):
            self._store(state, step=steps[i], exp_avg=ms[i], exp_avg_sq=vs[i])
            if amsgrad:
                self._store(state, max_exp_avg_sq=vmaxes[i])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as ``torch.optim.AdamW``:
    each step first shrinks ``p`` by ``1 - lr * weight_decay``."""

    def __init__(self, params: ParamsT, lr: float | Tensor = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True, fused=fused)


class SparseAdam(Adam):
    """Adam for row-sparse gradients (``Embedding(sparse=True)``), as
    ``torch.optim.SparseAdam``: only the rows a step touches have their moments and
    values updated ("lazy" Adam); bias correction counts the parameter's steps, and
    ``eps`` is added as PyTorch's SparseAdam adds it (``optim.functional.sparse_adam``)."""

    def __init__(self, params: ParamsT, lr: float | Tensor = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, maximize=maximize)

    def _sparse_error(self, group: dict[str, Any]) -> str | None:
        return None

    def _update(self, group: dict[str, Any], params: list[Tensor]) -> None:
        states = []
        for p in params:
            if not self.state[p]:
                self.state[p].update(step=new_step(), exp_avg=zeros_like(p),
                                     exp_avg_sq=zeros_like(p))
            states.append(self.state[p])
        beta1, beta2 = group["betas"]
        new_params, ms, vs, steps = F.sparse_adam(
            params, [p.grad for p in params], [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states], [s["step"] for s in states], lr=group["lr"],
            beta1=beta1, beta2=beta2, eps=group["eps"], maximize=group["maximize"])
        self._write(params, new_params)
        for i, state in enumerate(states):
            self._store(state, step=steps[i], exp_avg=ms[i], exp_avg_sq=vs[i])

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and not getattr(p.grad, "is_sparse", False):
                    raise RuntimeError(
                        f"SparseAdam: a parameter of shape {tuple(p.shape)} has a dense "
                        f"gradient; SparseAdam takes only row-sparse ones "
                        f"(Embedding(sparse=True)); use Adam for the others, at "
                        f"{user_site()}")
        return super().step(closure)
