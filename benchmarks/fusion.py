"""Elementwise fusion: GELU-tanh forward + backward on 4M float32 elements.

    python benchmarks/fusion.py [--n 4194304] [--repeat 20]

The formula is written out (0.5*x*(1 + tanh(0.797885*(x + 0.044715*x**3)))) and the
gradient of its sum taken with ``cr.grad``, so the graph holds the forward and the
backward elementwise ops. Compared, in one run: eager chainrule; the compiled graph
without fusion; fused with the numba target and with the NumPy target (each with the
buffer plan); PyTorch eager; ``jax.jit``. Prints the minimum over repeats, the
equation counts and the kernel compile time.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import chainrule as cr
from chainrule.compile import jit
from chainrule.compile.codegen import ENV, kernel_stats
from chainrule.compile.passes import PIPELINE
from chainrule.compile.passes.fuse import fuse
from chainrule.compile.passes.plan import memory_report, plan

for _name, _fn in (("fuse", fuse), ("plan", plan)):  # until the pipeline lists them
    if _name not in {n for n, _ in PIPELINE}:
        PIPELINE.append((_name, _fn))


def gelu_sum(x):
    return (0.5 * x * (1 + cr.tanh(0.797885 * (x + 0.044715 * x ** 3)))).sum()


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def compiled(x, target: str | None, repeat: int):
    """(seconds per call, result, equation count, kernel compile seconds, final graph)
    of ``jit(cr.grad(gelu_sum))``: fusion off (``target`` None) or on that target."""
    if target is not None:
        os.environ[ENV] = target
    step = jit(cr.grad(gelu_sum), passes={} if target else {"fuse": False, "plan": False})
    step(x)  # the first call of a signature runs eagerly
    before = kernel_stats()["compile_seconds"]
    out = step(x).numpy()  # traces, optimizes, compiles the kernels
    compile_s = kernel_stats()["compile_seconds"] - before
    graph = step.lower(x).graph
    return best(lambda: step(x), repeat), out, len(graph), compile_s, graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    xa = rng.standard_normal(args.n).astype(np.float32)
    x = cr.tensor(xa)
    print(f"GELU-tanh forward+backward, {args.n} float32, min of {args.repeat} "
          f"({os.cpu_count()} cores)")
    eager_fn = cr.grad(gelu_sum)
    ref = eager_fn(x).numpy()
    rows = [("chainrule eager", best(lambda: eager_fn(x), args.repeat), "")]
    t, out, n, _, g = compiled(x, None, args.repeat)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-5)
    rows.append(("jit, no fusion", t, f"{n} equations"))
    for target in ("numba", "numpy"):
        try:
            t, out, n, c, g = compiled(x, target, args.repeat)
        except ImportError as exc:
            rows.append((f"jit, fused ({target})", float("nan"), str(exc)))
            continue
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-5)
        rows.append((f"jit, fused ({target})", t,
                     f"{n} equations, kernel compile {c:.2f} s; {memory_report(g)}"))
    try:
        import torch
        xt = torch.tensor(xa, requires_grad=True)

        def torch_step():
            y = (0.5 * xt * (1 + torch.tanh(0.797885 * (xt + 0.044715 * xt ** 3)))).sum()
            return torch.autograd.grad(y, xt)[0]
        np.testing.assert_allclose(torch_step().numpy(), ref, rtol=1e-5, atol=2e-5)
        rows.append(("PyTorch eager", best(torch_step, args.repeat),
                     f"{torch.get_num_threads()} threads"))
    except ImportError:
        rows.append(("PyTorch eager", float("nan"), "torch not installed"))
    try:
        import jax
        import jax.numpy as jnp

        def jf(v):
            return (0.5 * v * (1 + jnp.tanh(0.797885 * (v + 0.044715 * v ** 3)))).sum()
        gj = jax.jit(jax.grad(jf))
        xj = jnp.asarray(xa)
        np.testing.assert_allclose(np.asarray(gj(xj)), ref, rtol=1e-5, atol=2e-5)
        rows.append(("jax.jit", best(lambda: gj(xj).block_until_ready(), args.repeat), ""))
    except ImportError:
        rows.append(("jax.jit", float("nan"), "jax not installed"))
    torch_t = next((t for name, t, _ in rows if name == "PyTorch eager"), float("nan"))
    for name, t, note in rows:
        print(f"  {name:22s} {t * 1e3:8.2f} ms  {t / torch_t:5.2f}x torch  {note}")


if __name__ == "__main__":
    main()
