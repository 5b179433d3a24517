"""One optimizer step over a 784-512-512-10 MLP's parameters (669,706 float32 values):
chainrule against PyTorch and against an in-place NumPy update.

    python benchmarks/optim_step.py [--repeats 5] [--threads 1]

Rows: chainrule's ``opt.step()`` (the pure update rule in chainrule ops, then a copy into
the parameters), PyTorch with ``foreach=False`` (its CPU default), ``foreach=True`` and
``fused=True`` where it exists, and, for SGD with momentum and Adam, the same update
written as in-place NumPy with ``out=`` buffers (the floor for a NumPy implementation).
Gradients are fixed random arrays; each timing is the median over ``--repeats`` loops of
about 0.3 s. BLAS/OpenMP run on ``--threads`` threads (1 by default: stable on a shared
machine; elementwise NumPy is single-threaded anyway).

Both frameworks run in this one process, so the glibc allocator tuning chainrule does at
import (keep freed memory instead of returning each multi-megabyte temporary to the OS and
page-faulting it in again) applies to PyTorch's rows too; ``CHAINRULE_MALLOC_TUNE=0``
compares both untuned. The header says which.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

SIZES = (784, 512, 512, 10)
CONFIGS = {  # name -> (class name, options)
    "SGD momentum": ("SGD", dict(lr=0.01, momentum=0.9)),
    "Adam": ("Adam", dict(lr=1e-3)),
    "AdamW": ("AdamW", dict(lr=1e-3)),
    "Adagrad": ("Adagrad", dict(lr=1e-2)),
    "RMSprop": ("RMSprop", dict(lr=1e-2)),
}
FUSED = {"SGD", "Adam", "AdamW", "Adagrad"}  # torch has CPU fused kernels for these


def shapes():
    out = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        out += [(fan_out, fan_in), (fan_out,)]
    return out


def timeit(fn, repeats: int) -> float:
    """Median seconds per call."""
    fn()
    n, t = 1, 0.0
    while t < 0.05:
        n *= 2
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
    n = max(1, int(n * 0.3 / t))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n)
    return statistics.median(runs)


def numpy_sgd(params, grads, bufs, lr=0.01, momentum=0.9):
    import numpy as np
    for p, g, b in zip(params, grads, bufs):
        np.multiply(b, momentum, out=b)
        np.add(b, g, out=b)
        p -= lr * b


def numpy_adam(params, grads, ms, vs, tmps, state, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    import numpy as np
    state[0] += 1
    step = state[0]
    bc1, bc2_sqrt = 1 - b1 ** step, (1 - b2 ** step) ** 0.5
    for p, g, m, v, t in zip(params, grads, ms, vs, tmps):
        np.subtract(g, m, out=t)
        t *= 1 - b1
        m += t
        np.multiply(g, g, out=t)
        t *= 1 - b2
        v *= b2
        v += t
        np.sqrt(v, out=t)
        t /= bc2_sqrt
        t += eps
        np.divide(m, t, out=t)
        t *= lr / bc1
        p -= t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    import chainrule as cr
    import chainrule.optim  # noqa: F401  (cr.optim)

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in shapes()]
    grads = [rng.standard_normal(s).astype(np.float32) * 0.01 for s in shapes()]
    malloc = ("malloc tuned by chainrule (both frameworks)" if cr.backend.MALLOC_TUNED
              else "default malloc")
    print(f"{sum(a.size for a in init):,} float32 parameters in {len(init)} tensors, "
          f"{args.threads} thread(s), {malloc}, median of {args.repeats}; ms per step")

    def cr_opt(cls, kw):
        ps = [cr.tensor(a.copy(), requires_grad=True) for a in init]
        for p, g in zip(ps, grads):
            p.grad = cr.tensor(g.copy())
        return getattr(cr.optim, cls)(ps, **kw).step

    def torch_opt(cls, kw, **impl):
        ps = [torch.tensor(a.copy(), requires_grad=True) for a in init]
        for p, g in zip(ps, grads):
            p.grad = torch.tensor(g.copy())
        return getattr(torch.optim, cls)(ps, **kw, **impl).step

    header = f"{'optimizer':<14}{'chainrule':>10}{'torch fe=F':>11}{'fe=T':>8}{'fused':>8}" \
             f"{'numpy':>8}{'cr/torch':>10}"
    print(header)
    for name, (cls, kw) in CONFIGS.items():
        t_cr = timeit(cr_opt(cls, kw), args.repeats)
        t_t = timeit(torch_opt(cls, kw, foreach=False), args.repeats)
        t_fe = timeit(torch_opt(cls, kw, foreach=True), args.repeats)
        t_fu = timeit(torch_opt(cls, kw, fused=True), args.repeats) if cls in FUSED else None
        t_np = None
        ps = [a.copy() for a in init]
        if name == "SGD momentum":
            bufs = [g.copy() for g in grads]
            t_np = timeit(lambda: numpy_sgd(ps, grads, bufs), args.repeats)
        elif name == "Adam":
            zeros = [[np.zeros_like(a) for a in init] for _ in range(3)]
            t_np = timeit(lambda: numpy_adam(ps, grads, *zeros, [0]), args.repeats)

        def ms(t):
            return f"{t * 1e3:8.2f}" if t is not None else f"{'-':>8}"
        print(f"{name:<14}{t_cr * 1e3:10.2f}{t_t * 1e3:11.2f}{ms(t_fe)}{ms(t_fu)}{ms(t_np)}"
              f"{t_cr / t_t:10.2f}")


if __name__ == "__main__":
    main()
