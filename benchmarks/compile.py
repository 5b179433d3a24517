"""The compiler against eager chainrule, PyTorch eager and ``jax.jit``.

a. GELU-tanh forward + backward on 4M float32 elements, written out as a formula
   (``0.5*x*(1+tanh(0.7978845608*(x+0.044715*x**3)))``), the gradient of its sum: eager
   chainrule (``cr.grad``), ``jit(cr.grad(...))``, PyTorch eager (``autograd.grad``) and
   ``jax.jit(jax.grad(...))``. Targets: jit at most 0.5x PyTorch eager, and faster than
   ``jax.jit``. Every framework's gradient is checked against a float64 NumPy reference.
b. An MLP training step (784-512-512-10 ReLU, batch 128, cross-entropy, float32):
   ``cr.value_and_grad`` and the Adam rule of ``optim.functional`` on plain tensors, the
   state (parameters, moments, a float64 step count) passed in and returned. jit vs
   eager, with the equation count after tracing and after each pass.
c. The compile time of that step: the compiling call (trace, passes, kernel builds and
   one run) minus a steady-state call, with the trace + passes part on its own and the
   kernels built (target: under 1 s).

Every (benchmark, framework) runs in a fresh subprocess. Timing: one call per sample,
``--repeats`` samples after warm-up; min and median are printed, and ratios of medians.
``--threads N`` gives every framework N threads (BLAS, OpenMP, numba, PyTorch, XLA;
"default" leaves them alone); ``--clock cpu`` times process CPU time instead of wall
time, steadier on a busy machine when one thread runs. The machine is printed with its
load average: on a shared machine other processes slow every number, unevenly.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

N_GELU = 1 << 22
SIZES, BATCH = (784, 512, 512, 10), 128
C0, C1 = 0.7978845608, 0.044715
FRAMEWORKS = ("cr eager", "cr jit", "torch eager", "jax.jit")


def import_cr():
    try:
        import chainrule as cr
    except ImportError:  # a checkout without `pip install -e .`
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../src"))
        import chainrule as cr
    return cr


def machine() -> str:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    vers = []
    for pkg in ("numpy", "numba", "torch", "jax"):
        try:
            vers.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            vers.append(f"{pkg} not installed")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{cpu}, {os.cpu_count()} cores, load average {load}; Python "
            f"{platform.python_version()}, {', '.join(vers)}")


def thread_env(threads: str) -> dict:
    if threads == "default":
        return {}
    n = str(int(threads))
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n,
            "NUMBA_NUM_THREADS": n,
            "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'false' if n == '1' else 'true'} "
                         f"intra_op_parallelism_threads={n}"}


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


def samples(fn, repeats: int, warmup: int = 2) -> list:
    now = CLOCK[os.environ.get("CR_BENCH_CLOCK", "wall")]
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = now()
        fn()
        out.append(now() - t0)
    return out


# ------------------------------------------------------------------ a. GELU
def gelu_input() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(N_GELU).astype(np.float32)


def gelu_reference(x: np.ndarray) -> np.ndarray:
    """d/dx sum(gelu(x)) in float64."""
    x = x.astype(np.float64)
    u = C0 * (x + C1 * x ** 3)
    t = np.tanh(u)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C0 * (1 + 3 * C1 * x * x)


def gelu_child(fw: str, repeats: int) -> dict:
    x_np = gelu_input()
    info = {}
    if fw in ("cr eager", "cr jit"):
        cr = import_cr()

        def loss(x):
            return (0.5 * x * (1 + cr.tanh(C0 * (x + C1 * x ** 3)))).sum()

        grad = cr.grad(loss)
        x = cr.tensor(x_np)
        if fw == "cr jit":
            from chainrule.compile import jit
            grad = jit(grad)
            grad(x)  # the first call of a signature runs eagerly
            t0 = time.perf_counter()
            grad(x)
            info["compile_call_s"] = time.perf_counter() - t0
            info["counts"] = grad.lower(x).counts()

        def run():
            return grad(x).numpy()
    elif fw == "torch eager":
        import torch
        if os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        x = torch.from_numpy(x_np).requires_grad_()

        def run():
            y = (0.5 * x * (1 + torch.tanh(C0 * (x + C1 * x ** 3)))).sum()
            return torch.autograd.grad(y, x)[0].numpy()
    elif fw == "jax.jit":
        import jax
        import jax.numpy as jnp
        grad = jax.jit(jax.grad(lambda x: (0.5 * x * (1 + jnp.tanh(C0 * (x + C1 * x ** 3))))
                                .sum()))
        x = jnp.asarray(x_np)

        def run():
            return np.asarray(grad(x).block_until_ready())
    else:
        raise ValueError(fw)
    err = float(np.max(np.abs(run() - gelu_reference(x_np))))
    return {"times": samples(run, repeats), "max_err": err, **info}


# ------------------------------------------------------------------ b, c. MLP step
def mlp_state(cr):
    rng = np.random.default_rng(0)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        params += [cr.tensor(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)),
                   cr.tensor(rng.uniform(-bound, bound, (fan_out,)).astype(np.float32))]
    zeros = [cr.zeros_like(p) for p in params]
    x = cr.tensor(rng.standard_normal((BATCH, SIZES[0])).astype(np.float32))
    y = cr.tensor(rng.integers(0, SIZES[-1], BATCH))
    return params, zeros, [cr.zeros_like(p) for p in params], cr.tensor(0.0, dtype=cr.float64), \
        x, y


def mlp_step_fn(cr):
    from chainrule.optim import functional as F

    def loss(params, x, y):
        w1, b1, w2, b2, w3, b3 = params
        h = cr.relu(x @ w1 + b1)  # (B, 512)
        h = cr.relu(h @ w2 + b2)  # (B, 512)
        return cr.cross_entropy(h @ w3 + b3, y)  # logits (B, 10)

    value_and_grad = cr.value_and_grad(loss)

    def step(params, exp_avgs, exp_avg_sqs, count, x, y):
        value, grads = value_and_grad(params, x, y)
        params, exp_avgs, exp_avg_sqs, _, counts = F.adam(
            params, grads, exp_avgs, exp_avg_sqs, None, [count] * len(params), lr=1e-3)
        return value, params, exp_avgs, exp_avg_sqs, counts[0]
    return step


def mlp_child(fw: str, repeats: int) -> dict:
    cr = import_cr()
    step = mlp_step_fn(cr)
    params, ms, vs, count, x, y = mlp_state(cr)
    info = {}
    if fw == "cr jit":
        from chainrule.compile import jit
        try:
            from chainrule.compile.codegen import kernel_stats
        except ImportError:  # no fusion yet
            kernel_stats = None
        step = jit(step)
        state = step(params, ms, vs, count, x, y)[1:]  # eager
        k0 = kernel_stats() if kernel_stats else None
        t0 = time.perf_counter()
        state = step(*state, x, y)[1:]  # trace, optimize, build kernels, run
        info["compile_call_s"] = time.perf_counter() - t0
        if k0 is not None:
            k1 = kernel_stats()
            info["kernels"] = k1["kernels"] - k0["kernels"]
            info["kernel_compile_s"] = k1["compile_seconds"] - k0["compile_seconds"]
        low = step.lower(*state, x, y)
        info["trace_passes_s"] = low.seconds
        info["counts"] = low.counts()
        m = low.graph.meta
        if "peak_bytes_after" in m:
            info["peak_mib"] = [m["peak_bytes_freed"] / 2 ** 20, m["peak_bytes_after"] / 2 ** 20]
    else:
        state = (params, ms, vs, count)
    box = [state]

    def run():
        out = step(*box[0], x, y)
        box[0] = out[1:]
        return out[0]

    info["times"] = samples(run, repeats)
    box[0] = mlp_state(cr)[:4]  # the same steps from the same start in both modes
    info["losses"] = [float(run().item()) for _ in range(4)]
    if fw == "cr jit":  # steady-state call time, to take out of the compiling call
        info["compile_s"] = info["compile_call_s"] - statistics.median(info["times"])
    return info


# ------------------------------------------------------------------ driver
def child_main(args) -> None:
    fn = gelu_child if args.child == "gelu" else mlp_child
    print(json.dumps(fn(args.fw, args.repeats)))


def spawn(bench: str, fw: str, repeats: int, threads: str, clock: str) -> dict:
    env = {**os.environ, **thread_env(threads), "CR_BENCH_CLOCK": clock}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", bench,
                           "--fw", fw, "--repeats", str(repeats)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ms(t: float) -> str:
    return f"{t * 1e3:8.2f}"


def report_times(results: dict, base: str) -> None:
    print(f"  {'':14} {'min ms':>8} {'median ms':>10}  {'vs ' + base:>14}")
    ref = results.get(base, {}).get("times")
    for fw, r in results.items():
        if "error" in r:
            print(f"  {fw:14} unavailable: {r['error']}")
            continue
        med = statistics.median(r["times"])
        ratio = f"{med / statistics.median(ref):.2f}x" if ref else "-"
        extra = f"  max |err| {r['max_err']:.1e}" if "max_err" in r else ""
        print(f"  {fw:14} {ms(min(r['times']))} {ms(med):>10}  {ratio:>14}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--only", choices=("gelu", "mlp"), default=None)
    ap.add_argument("--threads", default="default",
                    help="threads for every framework, or 'default' (default: default)")
    ap.add_argument("--clock", choices=tuple(CLOCK), default="wall")
    ap.add_argument("--child", choices=("gelu", "mlp"), help=argparse.SUPPRESS)
    ap.add_argument("--fw", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_main(args)
    repeats = args.repeats or (5 if args.quick else 15)
    print(f"machine: {machine()}")
    print(f"{repeats} timed calls per framework ({args.clock} clock, threads: {args.threads}), "
          f"each framework in a fresh process\n")
    if args.only in (None, "gelu"):
        print(f"a. GELU-tanh forward + backward, {N_GELU} float32 elements")
        gelu = {fw: spawn("gelu", fw, repeats, args.threads, args.clock) for fw in FRAMEWORKS}
        report_times(gelu, "torch eager")
        jitted, torch_, jax_ = (gelu[k].get("times") for k in ("cr jit", "torch eager",
                                                                "jax.jit"))
        if jitted and torch_:
            r = statistics.median(jitted) / statistics.median(torch_)
            print(f"  target jit <= 0.5x PyTorch eager: {r:.2f}x "
                  f"({'met' if r <= 0.5 else 'missed'})")
        if jitted and jax_:
            r = statistics.median(jitted) / statistics.median(jax_)
            print(f"  target jit faster than jax.jit: {r:.2f}x "
                  f"({'met' if r < 1 else 'missed'})")
        if "counts" in gelu["cr jit"]:
            print("  equations: " + ", ".join(f"{n} {c}" for n, c in gelu["cr jit"]["counts"]))
        print()
    if args.only in (None, "mlp"):
        print(f"b. MLP training step {'-'.join(map(str, SIZES))}, batch {BATCH}, "
              f"value_and_grad + Adam, float32")
        mlp = {fw: spawn("mlp", fw, repeats, args.threads, args.clock)
               for fw in ("cr eager", "cr jit")}
        report_times(mlp, "cr eager")
        j = mlp["cr jit"]
        if "error" not in j:
            if "error" not in mlp["cr eager"]:
                print(f"  losses of 4 steps from the same start: eager "
                      f"{mlp['cr eager']['losses']}, jit {j['losses']}")
            print("  equations after each stage:")
            for name, count in j["counts"]:
                print(f"    {name:10} {count:5d}")
            if "peak_mib" in j:
                print(f"  peak intermediates: {j['peak_mib'][0]:.2f} MiB freeing at last use, "
                      f"{j['peak_mib'][1]:.2f} MiB with the buffer plan")
            print(f"\nc. compile time of the MLP step: {j['compile_s']:.3f} s "
                  f"(compiling call {j['compile_call_s']:.3f} s minus a steady call; trace + "
                  f"passes {j['trace_passes_s']:.3f} s"
                  + (f", {j['kernels']} kernels built in {j['kernel_compile_s']:.3f} s"
                     if "kernels" in j else "")
                  + f"); target < 1 s: {'met' if j['compile_s'] < 1 else 'missed'}")


if __name__ == "__main__":
    main()
