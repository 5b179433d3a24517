"""The update rules of chainrule's optimizers, each written once as a pure function.

Each function takes lists with one entry per parameter (parameters, gradients, state)
and returns new lists; nothing passed in is modified. The rules are written in chainrule
ops, so the same code serves three uses:

* the ``Optimizer`` classes call them under ``no_grad`` and put the new values into
  the parameters in place (``Optimizer._write``: a copy, or taking over the result's
  buffer when nothing else can see either);
* hyperparameters may be tensors that require grad: with gradients taken by
  ``autograd.grad(loss, params, create_graph=True)``, an unrolled run of updates can be
  differentiated with respect to ``lr`` (a hypergradient)::

      lr = cr.tensor(0.1, dtype=cr.float64, requires_grad=True)
      bufs = [None] * len(params)
      for _ in range(k):
          grads = cr.autograd.grad(train_loss(params), params, create_graph=True)
          params, bufs = F.sgd(params, grads, bufs, lr=lr, momentum=0.9)
      hypergrad, = cr.autograd.grad(val_loss(params), [lr])

* the tracing compiler can record and fuse them.

The arithmetic follows PyTorch's single-tensor (``foreach=False``) implementations
operation for operation, so the results agree with PyTorch's to rounding.

Hyperparameters are Python numbers or 0-d tensors; a tensor is cast to each
parameter's dtype (differentiably), so a float32 model keeps float32 parameters.
"""
from __future__ import annotations

from typing import Sequence

from ..core.dispatch import user_site
from ..core.tensor import Tensor
from ..ops import cast, clone, maximum, sqrt

Number = float | int
Hyper = Number | Tensor


def _like(value: Hyper, p: Tensor) -> Hyper:
    """A hyperparameter in ``p``'s dtype: numbers pass (they are weak in promotion)."""
    if isinstance(value, Tensor) and value.dtype != p.dtype:
        return cast(value, p.dtype)
    return value


def _active(value: Hyper) -> bool:
    """Whether a term scaled by ``value`` must be computed (a tensor always is)."""
    return isinstance(value, Tensor) or value != 0


def _lerp(a: Tensor, b: Tensor, w: Hyper) -> Tensor:
    """``a + w * (b - a)``, in the form PyTorch's ``lerp`` picks for ``w``."""
    if isinstance(w, Tensor) or w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1 - w)


def _required(rule: str, states, name: str, why: str):
    if states is None:
        raise ValueError(f"{rule}: {why} needs {name} (start them at zeros), at {user_site()}")
    return states


def _direction(g: Tensor, p: Tensor, weight_decay: Hyper, maximize: bool) -> Tensor:
    """The gradient to descend: negated to maximize, plus L2 weight decay."""
    if maximize:
        g = -g
    if _active(weight_decay):
        g = g + _like(weight_decay, p) * p
    return g


def sgd(params: Sequence[Tensor], grads: Sequence[Tensor],
        momentum_buffers: Sequence[Tensor | None], *, lr: Hyper, momentum: Hyper = 0.0,
        dampening: Hyper = 0.0, nesterov: bool = False, weight_decay: Hyper = 0.0,
        maximize: bool = False) -> tuple[list[Tensor], list[Tensor | None]]:
    """Stochastic gradient descent, with momentum and Nesterov momentum.

    ``momentum_buffers[i]`` is None before the first step (the buffer then starts as the
    gradient, as in PyTorch). Returns ``(new_params, new_momentum_buffers)``; the buffers
    stay None when ``momentum`` is 0.
    """
    new_params, new_bufs = [], []
    for p, g, buf in zip(params, grads, momentum_buffers, strict=True):
        g = _direction(g, p, weight_decay, maximize)
        if _active(momentum):
            mom = _like(momentum, p)
            if buf is None:
                buf = clone(g)
            elif _active(dampening):
                buf = buf * mom + (1 - _like(dampening, p)) * g
            else:
                buf = buf * mom + g
            g = g + mom * buf if nesterov else buf
        new_params.append(p - _like(lr, p) * g)
        new_bufs.append(buf)
    return new_params, new_bufs


def adam(params: Sequence[Tensor], grads: Sequence[Tensor], exp_avgs: Sequence[Tensor],
         exp_avg_sqs: Sequence[Tensor], max_exp_avg_sqs: Sequence[Tensor] | None,
         steps: Sequence[int], *, lr: Hyper, beta1: Hyper = 0.9, beta2: Hyper = 0.999,
         eps: Hyper = 1e-8, weight_decay: Hyper = 0.0, amsgrad: bool = False,
         maximize: bool = False, decoupled: bool = False
         ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor] | None, list[int]]:
    """Adam, AMSGrad, and AdamW (``decoupled=True``: the weight decay shrinks the
    parameters directly instead of being added to the gradient).

    ``steps[i]`` counts the updates parameter i has had so far. ``max_exp_avg_sqs`` is
    read only with ``amsgrad`` (pass None otherwise; None comes back). Returns
    ``(new_params, new_exp_avgs, new_exp_avg_sqs, new_max_exp_avg_sqs, new_steps)``.
    """
    maxes = (_required("adam", max_exp_avg_sqs, "max_exp_avg_sqs", "amsgrad=True") if amsgrad
             else [None] * len(params))
    out_p, out_m, out_v, out_max, out_steps = [], [], [], [], []
    for p, g, m, v, vmax, step in zip(params, grads, exp_avgs, exp_avg_sqs, maxes, steps,
                                       strict=True):
        step = step + 1
        lr_p, b1, b2 = _like(lr, p), _like(beta1, p), _like(beta2, p)
        if decoupled and _active(weight_decay):
            p = p * (1 - lr_p * _like(weight_decay, p))
        g = _direction(g, p, 0.0 if decoupled else weight_decay, maximize)
        m = _lerp(m, g, 1 - b1)
        v = v * b2 + (1 - b2) * (g * g)
        bias_correction1 = 1 - b1 ** step
        bias_correction2_sqrt = (1 - b2 ** step) ** 0.5
        step_size = _like(lr_p / bias_correction1, p)  # (a tensor when steps are)
        bias_correction2_sqrt = _like(bias_correction2_sqrt, p)
        if amsgrad:
            vmax = maximum(vmax, v)
            denom = sqrt(vmax) / bias_correction2_sqrt + _like(eps, p)
        else:
            denom = sqrt(v) / bias_correction2_sqrt + _like(eps, p)
        out_p.append(p - step_size * (m / denom))
        out_m.append(m)
        out_v.append(v)
        out_max.append(vmax)
        out_steps.append(step)
    return out_p, out_m, out_v, (out_max if amsgrad else None), out_steps


def sparse_adam(params: Sequence[Tensor], grads: Sequence[Tensor],
                exp_avgs: Sequence[Tensor], exp_avg_sqs: Sequence[Tensor],
                steps: Sequence[int], *, lr: Hyper, beta1: Hyper = 0.9, beta2: Hyper = 0.999,
                eps: Hyper = 1e-8, maximize: bool = False
                ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[int]]:
    """SparseAdam's rule, applied to the rows a gradient touches: Adam's moments, with
    ``eps`` added to the root of the uncorrected second moment and the correction moved
    into the step size (PyTorch's SparseAdam). Returns ``(params, exp_avgs,
    exp_avg_sqs, steps)``."""
    out_p, out_m, out_v, out_steps = [], [], [], []
    for p, g, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps, strict=True):
        step = step + 1
        b1, b2 = _like(beta1, p), _like(beta2, p)
        g = -g if maximize else g
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        step_size = _like(_like(lr, p) * (1 - b2 ** step) ** 0.5 / (1 - b1 ** step), p)
        out_p.append(p - step_size * (m / (sqrt(v) + _like(eps, p))))
        out_m.append(m)
        out_v.append(v)
        out_steps.append(step)
    return out_p, out_m, out_v, out_steps


def adagrad(params: Sequence[Tensor], grads: Sequence[Tensor], state_sums: Sequence[Tensor],
            steps: Sequence[int], *, lr: Hyper, lr_decay: Hyper = 0.0,
            weight_decay: Hyper = 0.0, eps: Hyper = 1e-10, maximize: bool = False
            ) -> tuple[list[Tensor], list[Tensor], list[int]]:
    """Adagrad: steps scaled by the root of the running sum of squared gradients.

    Returns ``(new_params, new_state_sums, new_steps)``.
    """
    out_p, out_s, out_steps = [], [], []
    for p, g, s, step in zip(params, grads, state_sums, steps, strict=True):
        step = step + 1
        g = _direction(g, p, weight_decay, maximize)
        clr = _like(_like(lr, p) / (1 + (step - 1) * _like(lr_decay, p)), p)
        s = s + g * g
        std = sqrt(s) + _like(eps, p)
        out_p.append(p - clr * (g / std))
        out_s.append(s)
        out_steps.append(step)
    return out_p, out_s, out_steps


def rmsprop(params: Sequence[Tensor], grads: Sequence[Tensor], square_avgs: Sequence[Tensor],
            grad_avgs: Sequence[Tensor] | None, momentum_buffers: Sequence[Tensor] | None, *,
            lr: Hyper, alpha: Hyper = 0.99, eps: Hyper = 1e-8, weight_decay: Hyper = 0.0,
            momentum: Hyper = 0.0, centered: bool = False, maximize: bool = False
            ) -> tuple[list[Tensor], list[Tensor], list[Tensor] | None, list[Tensor] | None]:
    """RMSprop, optionally centered (divides by an estimate of the gradient's standard
    deviation) and with momentum.

    ``grad_avgs`` is read only when ``centered`` and ``momentum_buffers`` only when
    ``momentum`` is active (start them at zeros; pass None otherwise, None comes back).
    Returns ``(new_params, new_square_avgs, new_grad_avgs, new_momentum_buffers)``.
    """
    n = len(params)
    use_momentum = _active(momentum)
    gavgs = (_required("rmsprop", grad_avgs, "grad_avgs", "centered=True") if centered
             else [None] * n)
    bufs = (_required("rmsprop", momentum_buffers, "momentum_buffers", "momentum")
            if use_momentum else [None] * n)
    out_p, out_sq, out_ga, out_buf = [], [], [], []
    for p, g, sq, ga, buf in zip(params, grads, square_avgs, gavgs, bufs, strict=True):
        g = _direction(g, p, weight_decay, maximize)
        a = _like(alpha, p)
        sq = sq * a + (1 - a) * (g * g)
        if centered:
            ga = _lerp(ga, g, 1 - a)
            avg = sqrt(sq - ga * ga)
        else:
            avg = sqrt(sq)
        avg = avg + _like(eps, p)
        if use_momentum:
            buf = buf * _like(momentum, p) + g / avg
            p = p - _like(lr, p) * buf
        else:
            p = p - _like(lr, p) * (g / avg)
        out_p.append(p)
        out_sq.append(sq)
        out_ga.append(ga)
        out_buf.append(buf)
    return (out_p, out_sq, out_ga if centered else None,
            out_buf if use_momentum else None)
