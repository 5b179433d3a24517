"""Numerical checks of derivatives: ``gradcheck`` and ``gradgradcheck`` (public, as in
``torch.autograd``). Use float64 inputs: finite differences need the precision."""
from __future__ import annotations

import numpy as np

from .autodiff.backward import grad as _grad
from .core.tensor import Tensor, _make


def _outputs(fn, inputs):
    out = fn(*inputs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _flat_out(fn, inputs):
    outs = _outputs(fn, inputs)  # grad mode stays on: fn may differentiate inside
    return np.concatenate([np.asarray(o.data, np.float64).ravel() for o in outs]) \
        if outs else np.zeros(0)


def numerical_jacobian(fn, inputs, eps=1e-6):
    """d(flattened outputs)/d(each input that requires grad), by central differences."""
    jac = []
    for x in inputs:
        if not (isinstance(x, Tensor) and x.requires_grad):
            jac.append(None)
            continue
        flat = x.data.reshape(-1)
        cols = []
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = _flat_out(fn, inputs)
            flat[j] = orig - eps
            minus = _flat_out(fn, inputs)
            flat[j] = orig
            cols.append((plus - minus) / (2 * eps))
        n_out = _flat_out(fn, inputs).size
        jac.append(np.stack(cols, 1) if cols else np.zeros((n_out, 0)))
    return jac


def analytical_jacobian(fn, inputs):
    """The same Jacobians from reverse mode: one vjp per output element."""
    diff = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    outs = _outputs(fn, inputs)
    rows = []
    for k, o in enumerate(outs):
        for j in range(o.data.size):
            if not o.requires_grad:
                rows.append([np.zeros(x.data.size) for x in diff])
                continue
            cot = np.zeros(o.shape, o.dtype)
            cot.reshape(-1)[j] = 1
            gs = _grad([o], diff, [_make(cot)], retain_graph=True, allow_unused=True)
            rows.append([np.zeros(x.data.size) if g is None else
                         np.asarray(g.data, np.float64).ravel() for g, x in zip(gs, diff)])
    jac, i = [], 0
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad:
            jac.append(np.array([r[i] for r in rows]).reshape(len(rows), x.data.size))
            i += 1
        else:
            jac.append(None)
    return jac


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True) -> bool:
    """Compare reverse-mode Jacobians of ``fn`` at ``inputs`` with finite differences."""
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs that require grad must be float64, got {x.dtype}")
    num = numerical_jacobian(fn, inputs, eps)
    ana = analytical_jacobian(fn, inputs)
    for i, (n, a) in enumerate(zip(num, ana)):
        if n is None:
            continue
        if n.shape != a.shape or not np.allclose(a, n, atol=atol, rtol=rtol, equal_nan=False):
            if raise_exception:
                err = np.max(np.abs(a - n)) if n.shape == a.shape else "shape mismatch"
                raise AssertionError(
                    f"gradcheck: Jacobian mismatch for input {i} (max abs error {err})\n"
                    f"numerical:\n{n}\nanalytical:\n{a}")
            return False
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, seed=0) -> bool:
    """Check second derivatives: gradcheck of the vjp ``x, u -> J(x)^T u`` itself."""
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    outs = _outputs(fn, inputs)
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        grad_outputs = [Tensor(rng.standard_normal(o.shape), requires_grad=True) for o in outs]
    n_in = len(inputs)
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]

    def vjp_fn(*args):
        xs, us = args[:n_in], args[n_in:]
        os = _outputs(fn, xs)
        gs = _grad(os, [xs[i] for i in diff_idx], list(us), create_graph=True,
                   allow_unused=True, materialize_grads=True)
        return tuple(gs)

    return gradcheck(vjp_fn, tuple(inputs) + tuple(grad_outputs), eps, atol, rtol,
                     raise_exception)
