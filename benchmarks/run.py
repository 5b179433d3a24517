"""chainrule vs PyTorch CPU eager, measured in the same process.

Benchmarks
  1. Per-op overhead on tiny tensors. A chain of 100 elementwise ops on (4, 4)
     float32 tensors, the same sequence in every framework, repeated 25 times:
         x = x * w;  x = x + b;  x = tanh(x);  x = sin(x)
     with x, w and b leaves that require grad. Reported in microseconds per op:
       * fwd+bwd      forward (recording the graph) + ``x.sum().backward()``
       * fwd (grad)   forward only, recording the graph
       * fwd no_grad  forward only, inside ``no_grad()``
       * NumPy fwd    the same chain on plain arrays (reference: the floor)
  2. One MLP training step: 784-512-512-10 ReLU MLP, batch 128, float32,
     cross-entropy loss, forward + backward + plain SGD
     (``with no_grad(): p -= lr * p.grad; p.grad = None``), both frameworks
     starting from the same weights. Torch threads are left at the default.

Timing: ``time.perf_counter`` around a loop of N calls (N calibrated after a
warm-up so one repeat lasts ~0.5 s, ~0.04 s with ``--quick``); the MEDIAN of
``--repeats`` repeats is reported with the min-max range, because shared
machines drift 10-25 % between runs. The garbage collector is left on (as in
real training). ``--profile`` additionally prints cProfile tables (by tottime)
of chainrule's chain fwd+bwd and MLP step; ``--json PATH`` writes the results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

try:
    import chainrule as cr
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import chainrule as cr

try:
    import torch
except ImportError:
    torch = None

N_GROUPS = 25  # 4 ops per group -> a chain of 100 ops
N_OPS = 4 * N_GROUPS
TARGETS = {"chain fwd+bwd": 1.5, "MLP step": 1.0}


# ------------------------------------------------------------------ machine
def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "chainrule": cr.__version__,
            "torch": torch.__version__ if torch else None,
            "torch_threads": torch.get_num_threads() if torch else None}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy or an unusual build: not worth failing over
        info["numpy_blas"] = "unknown"
    return info


# ------------------------------------------------------------------- timing
def measure(fn, repeats: int, target_s: float) -> dict:
    """Seconds per call of ``fn``: median and range over ``repeats`` timed loops."""
    fn()
    t0 = time.perf_counter()
    fn()
    n = max(1, int(target_s / max(time.perf_counter() - t0, 1e-7)))
    for _ in range(min(n, 20)):  # warm-up
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return {"median": statistics.median(samples), "min": min(samples),
            "max": max(samples), "iters": n}


def scaled(m: dict | None, factor: float) -> dict | None:
    return None if m is None else {k: (v * factor if k != "iters" else v) for k, v in m.items()}


# ---------------------------------------------------------- 1. per-op chain
def chain_arrays(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 4)).astype(np.float32)
    w = (0.9 + 0.1 * rng.standard_normal((4, 4))).astype(np.float32)
    b = (0.1 * rng.standard_normal((4, 4))).astype(np.float32)
    return x, w, b


def chain(x, w, b, tanh, sin):
    for _ in range(N_GROUPS):
        x = sin(tanh(x * w + b))
    return x


def chain_fns(lib: str):
    """(fwd+bwd, fwd with graph, fwd no_grad) closures for 'cr' or 'torch'."""
    arrs = chain_arrays()
    if lib == "cr":
        x, w, b = (cr.tensor(a.copy(), requires_grad=True) for a in arrs)
        tanh, sin, no_grad = cr.tanh, cr.sin, cr.no_grad
    else:
        x, w, b = (torch.tensor(a, requires_grad=True) for a in arrs)
        tanh, sin, no_grad = torch.tanh, torch.sin, torch.no_grad

    def fwd_bwd():
        chain(x, w, b, tanh, sin).sum().backward()
        x.grad = w.grad = b.grad = None

    def fwd():
        chain(x, w, b, tanh, sin)

    def fwd_nograd():
        with no_grad():
            chain(x, w, b, tanh, sin)

    return fwd_bwd, fwd, fwd_nograd


def bench_chain(repeats, target_s, have_torch) -> dict:
    x, w, b = chain_arrays()
    res = {"NumPy fwd": {"numpy": measure(lambda: chain(x, w, b, np.tanh, np.sin), repeats, target_s)}}
    names = ["chain fwd+bwd", "chain fwd (grad)", "chain fwd no_grad"]
    libs = ["cr", "torch"] if have_torch else ["cr"]
    for lib in libs:
        for name, fn in zip(names, chain_fns(lib)):
            res.setdefault(name, {})[lib] = measure(fn, repeats, target_s)
    return {k: {lib: scaled(m, 1e6 / N_OPS) for lib, m in v.items()} for k, v in res.items()}


# ----------------------------------------------------------- 2. MLP step
SIZES, BATCH, LR = (784, 512, 512, 10), 128, 0.01


def mlp_data(seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1.0 / np.sqrt(fan_in)  # PyTorch nn.Linear's default init range
        params.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, (fan_out,)).astype(np.float32))
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH).astype(np.int64)
    return params, x, y


def mlp_step_fn(lib: str):
    """A closure running one SGD step and returning the loss tensor; and the params."""
    arrays, x_np, y_np = mlp_data()
    if lib == "cr":
        params = [cr.tensor(a.copy(), requires_grad=True) for a in arrays]
        x, y, ce, no_grad = cr.tensor(x_np), cr.tensor(y_np), cr.cross_entropy, cr.no_grad
    else:
        params = [torch.tensor(a, requires_grad=True) for a in arrays]
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
        ce, no_grad = torch.nn.functional.cross_entropy, torch.no_grad

    def step():
        w1, b1, w2, b2, w3, b3 = params
        h = (x @ w1 + b1).relu()
        h = (h @ w2 + b2).relu()
        loss = ce(h @ w3 + b3, y)
        loss.backward()
        with no_grad():
            for p in params:
                p -= LR * p.grad
                p.grad = None
        return loss

    return step, params


def mlp_check(have_torch) -> dict:
    """First-step loss of both frameworks from identical weights, and the weights after."""
    step, params = mlp_step_fn("cr")
    out = {"loss_cr": float(step().item())}
    if have_torch:
        tstep, tparams = mlp_step_fn("torch")
        out["loss_torch"] = float(tstep().item())
        out["max_param_diff_after_step"] = max(
            float(np.abs(p.data - tp.detach().numpy()).max()) for p, tp in zip(params, tparams))
    return out


def bench_mlp(repeats, target_s, have_torch) -> dict:
    libs = ["cr", "torch"] if have_torch else ["cr"]
    return {"MLP step": {lib: scaled(measure(mlp_step_fn(lib)[0], repeats, target_s), 1e3)
                         for lib in libs}}


# ------------------------------------------------------------------ report
def fmt(m: dict | None, unit: str) -> str:
    if m is None:
        return "n/a"
    return f"{m['median']:8.2f} {unit} ({m['min']:.2f}-{m['max']:.2f})"


def print_table(results: dict, have_torch: bool) -> None:
    head = ["benchmark", "chainrule", "PyTorch", "ratio cr/torch", "target", "met"]
    rows = []
    for name, r in results.items():
        unit = "ms/step" if name == "MLP step" else "us/op"
        cr_m, t_m = r.get("cr"), r.get("torch")
        if name == "NumPy fwd":
            rows.append([name + " (ref)", fmt(r["numpy"], unit), "-", "-", "-", "-"])
            continue
        ratio = cr_m["median"] / t_m["median"] if t_m else None
        tgt = TARGETS.get(name)
        r["ratio"] = ratio
        rows.append([name, fmt(cr_m, unit), fmt(t_m, unit),
                     f"{ratio:.2f}x" if ratio else "n/a",
                     f"<= {tgt}x" if tgt else "-",
                     ("yes" if ratio <= tgt else "NO") if tgt and ratio else "-"])
    widths = [max(len(str(row[i])) for row in rows + [head]) for i in range(len(head))]
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line + "\n" + "-" * len(line))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    if not have_torch:
        print("NOTE: torch is not installed; PyTorch columns and ratios are skipped "
              "(install it with `pip install -e '.[torch]'`).")


def profile(repeats_chain=200, repeats_mlp=20, top=25) -> None:
    import cProfile
    import pstats
    for title, fn, n in [("chain fwd+bwd (100 ops)", chain_fns("cr")[0], repeats_chain),
                         ("MLP step", mlp_step_fn("cr")[0], repeats_mlp)]:
        fn()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            fn()
        prof.disable()
        print(f"\n=== cProfile: chainrule {title}, {n} calls, sorted by tottime ===")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fast smoke run (short loops, 2 repeats)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--profile", action="store_true", help="print cProfile tables of chainrule")
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    target_s = 0.04 if args.quick else 0.5
    have_torch = torch is not None

    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"timing: median of {repeats} repeats (min-max in parentheses), "
          f"~{target_s}s per repeat{' [--quick]' if args.quick else ''}\n")
    check = mlp_check(have_torch)
    print(f"MLP first-step loss: chainrule {check['loss_cr']:.6f}", end="")
    if have_torch:
        print(f", PyTorch {check['loss_torch']:.6f} "
              f"(|diff| {abs(check['loss_cr'] - check['loss_torch']):.2e}); max |param diff| "
              f"after the step {check['max_param_diff_after_step']:.2e}")
    print()
    results = bench_chain(repeats, target_s, have_torch)
    results.update(bench_mlp(repeats, target_s, have_torch))
    print_table(results, have_torch)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "repeats": repeats, "quick": args.quick,
                       "mlp_check": check, "results": results}, f, indent=2)
        print(f"\nwrote {args.json}")
    if args.profile:
        profile()
    return 0


if __name__ == "__main__":
    sys.exit(main())
