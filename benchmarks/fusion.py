"""Elementwise fusion: GELU-tanh forward + backward on 4M float32 elements.

    python benchmarks/fusion.py [--n 4194304] [--repeat 20]

The formula is written out (0.5*x*(1 + tanh(0.797885*(x + 0.044715*x**3)))) and the
gradient of its sum taken with ``cr.grad``, so the graph holds the forward and the
backward elementwise ops. Compared, in one run: eager chainrule; the compiled graph
without fusion; fused with the numba target and with the NumPy target (each with the
buffer plan); PyTorch eager; ``jax.jit``. Prints the minimum over repeated rounds
(each round times every contender once, so all see the same machine load), the
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


def interleaved(fns: dict, repeat: int) -> dict:
    """Minimum seconds per call of each function, timed in alternating rounds (the
    machine's load changes from second to second; every contender sees the same)."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def compiled(x, target: str | None):
    """(the call, its result, equation count, kernel compile seconds, final graph) of
    ``jit(cr.grad(gelu_sum))``: fusion off (``target`` None) or on that target."""
    if target is not None:
        os.environ[ENV] = target
    step = jit(cr.grad(gelu_sum), passes={} if target else {"fuse": False, "plan": False})
    step(x)  # the first call of a signature runs eagerly
    before = kernel_stats()["compile_seconds"]
    out = step(x).numpy()  # traces, optimizes, compiles the kernels
    compile_s = kernel_stats()["compile_seconds"] - before
    graph = step.lower(x).graph
    return (lambda: step(x)), out, len(graph), compile_s, graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    xa = rng.standard_normal(args.n).astype(np.float32)
    x = cr.tensor(xa)
    print(f"GELU-tanh forward+backward, {args.n} float32, min of {args.repeat} interleaved "
          f"rounds ({os.cpu_count()} cores)")
    eager_fn = cr.grad(gelu_sum)
    ref = eager_fn(x).numpy()
    fns = {"chainrule eager": lambda: eager_fn(x)}
    notes = {"chainrule eager": ""}
    fn, out, n, _, g = compiled(x, None)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-5)
    fns["jit, no fusion"], notes["jit, no fusion"] = fn, f"{n} equations"
    for target in ("numba", "numpy"):
        name = f"jit, fused ({target})"
        try:
            fn, out, n, c, g = compiled(x, target)
        except ImportError as exc:
            notes[name] = str(exc)
            continue
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-5)
        fns[name] = fn
        notes[name] = f"{n} equation(s), kernel compile {c:.2f} s; {memory_report(g)}"
    try:
        import torch
        xt = torch.tensor(xa, requires_grad=True)

        def torch_step():
            y = (0.5 * xt * (1 + torch.tanh(0.797885 * (xt + 0.044715 * xt ** 3)))).sum()
            return torch.autograd.grad(y, xt)[0]
        np.testing.assert_allclose(torch_step().numpy(), ref, rtol=1e-5, atol=2e-5)
        fns["PyTorch eager"] = torch_step
        notes["PyTorch eager"] = f"{torch.get_num_threads()} threads"
    except ImportError:
        notes["PyTorch eager"] = "torch not installed"
    try:
        import jax
        import jax.numpy as jnp

        def jf(v):
            return (0.5 * v * (1 + jnp.tanh(0.797885 * (v + 0.044715 * v ** 3)))).sum()
        gj = jax.jit(jax.grad(jf))
        xj = jnp.asarray(xa)
        np.testing.assert_allclose(np.asarray(gj(xj)), ref, rtol=1e-5, atol=2e-5)
        fns["jax.jit"] = lambda: gj(xj).block_until_ready()
        notes["jax.jit"] = ""
    except ImportError:
        notes["jax.jit"] = "jax not installed"
    times = interleaved(fns, args.repeat)
    torch_t = times.get("PyTorch eager", float("nan"))
    for name, note in notes.items():
        t = times.get(name, float("nan"))
        print(f"  {name:22s} {t * 1e3:8.2f} ms  {t / torch_t:5.2f}x torch  {note}")


if __name__ == "__main__":
    main()
