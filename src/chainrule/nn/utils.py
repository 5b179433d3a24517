"""Gradient clipping and flat parameter vectors, as ``torch.nn.utils``."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..core import dispatch
from ..core.dispatch import no_grad, user_site
from ..core.tensor import Tensor
from ..ops import cast, cat, clamp, div, isfinite, norm, reshape, stack, tensor

TensorOrTensors = Tensor | Iterable[Tensor]

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
           "parameters_to_vector", "vector_to_parameters"]


def _as_list(tensors: TensorOrTensors) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _grads(parameters: TensorOrTensors) -> list[Tensor]:
    """The gradient tensors; a row-sparse gradient is coalesced in place and stands for
    its values (its norm is theirs, and scaling them scales it)."""
    out = []
    for p in _as_list(parameters):
        dispatch.note_grad_read(p)
        if getattr(p.grad, "is_sparse", False):
            p.grad = p.grad.coalesce()
            out.append(p.grad.values)
        elif p.grad is not None:
            out.append(p.grad)
    return out


def get_total_norm(tensors: TensorOrTensors, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> Tensor:
    """The ``norm_type``-norm of all ``tensors`` together, as if they were concatenated
    into one vector (``float('inf')`` or ``'inf'`` for the largest absolute value). An
    empty list gives 0."""
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return tensor(0.0)
    with no_grad():
        norms = [norm(t, norm_type) for t in tensors]
        dtype = np.result_type(*[n.dtype for n in norms])
        total = norm(stack([cast(n, dtype) for n in norms]), norm_type)
    if error_if_nonfinite and not bool(isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           f"gradients is {total.item()}, so it cannot be clipped; pass "
                           f"error_if_nonfinite=False to scale them by it anyway, at "
                           f"{user_site()}")
    return total


def clip_grads_with_norm_(parameters: TensorOrTensors, max_norm: float,
                          total_norm: Tensor) -> None:
    """Scale the gradients of ``parameters`` in place by ``max_norm / (total_norm + 1e-6)``
    when that is below 1."""
    grads = _grads(parameters)
    if not grads:
        return
    with no_grad():
        coef = clamp(div(float(max_norm), total_norm + 1e-6), max=1.0)
        for g in grads:
            g.mul_(cast(coef, g.dtype))


def clip_grad_norm_(parameters: TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Rescale the gradients of ``parameters`` in place so that their total norm (see
    ``get_total_norm``) is at most ``max_norm``. Returns the total norm before clipping."""
    parameters = _as_list(parameters)
    total = get_total_norm(_grads(parameters), norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_value_(parameters: TensorOrTensors, clip_value: float) -> None:
    """Clamp the gradients of ``parameters`` in place to ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    with no_grad():
        for g in _grads(parameters):
            g.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All ``parameters`` flattened and concatenated into one vector (differentiable)."""
    return cat([reshape(p, -1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of ``vec`` into ``parameters`` (the inverse of
    ``parameters_to_vector``). Unlike PyTorch, which rebinds each ``param.data`` to a
    view of ``vec``, the values are written into the parameters' own buffers."""
    if not isinstance(vec, Tensor) or vec.ndim != 1:
        raise TypeError(f"vector_to_parameters: expected a 1-d Tensor, got "
                        f"{type(vec).__name__}{getattr(vec, 'shape', '')}, at {user_site()}")
    parameters = list(parameters)
    total = sum(p.numel() for p in parameters)
    if total != vec.shape[0]:
        raise ValueError(f"vector_to_parameters: the vector has {vec.shape[0]} elements but "
                         f"the parameters hold {total}, at {user_site()}")
    start = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p[...] = reshape(vec[start:start + n], p.shape)
            start += n
