"""chainrule vs PyTorch CPU eager, measured in the same run.

Benchmarks
  1. Per-op overhead on tiny tensors: a chain of 100 elementwise ops on (4, 4)
     float32 tensors, the same sequence in every framework (25 x the group
     ``x = x * w; x = x + b; x = tanh(x); x = sin(x)``, x/w/b leaves that
     require grad), in microseconds per op:
       fwd+bwd      forward (recording the graph) + ``x.sum().backward()``
       fwd (grad)   forward only, recording the graph
       fwd no_grad  forward only, inside ``no_grad()``
       NumPy fwd    the same chain on plain arrays (reference: the floor)
  2. One training step of a 784-512-512-10 ReLU MLP, batch 128, float32:
     forward, cross-entropy, backward, plain SGD (``with no_grad(): p -= lr *
     p.grad; p.grad = None``), both frameworks from the same initial weights;
     the first step's loss and updated weights are compared.

Timing: ``time.perf_counter`` around a loop of N calls, N calibrated after a
warm-up so one repeat lasts ~0.5 s (~0.04 s with ``--quick``); the MEDIAN of
``--repeats`` repeats is reported with the min-max range (shared machines drift
10-25 % between runs). The GC stays on, as in real training.

Each framework runs in its own worker process (``--worker cr|torch``), one
after the other: in one process, PyTorch's spinning OpenMP threads and NumPy's
OpenBLAS threads fight over the cores and make MLP steps of both frameworks
spike from ~5 ms to ~100 ms. Torch keeps its default thread count.
``--profile`` prints cProfile tables (by tottime) of chainrule's chain and MLP
step; ``--json PATH`` writes the results.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

N_GROUPS = 25  # 4 ops per group -> a chain of 100 ops
N_OPS = 4 * N_GROUPS
SIZES, BATCH, LR = (784, 512, 512, 10), 128, 0.01
TARGETS = {"chain fwd+bwd": 1.5, "MLP step": 1.0}
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def framework(lib: str):
    """(module, tensor-from-array, no_grad, cross_entropy) for 'cr' or 'torch'."""
    if lib == "torch":
        import torch
        return (torch, lambda a, rg=False: torch.tensor(a, requires_grad=rg), torch.no_grad,
                torch.nn.functional.cross_entropy)
    try:
        import chainrule as cr
    except ImportError:  # a checkout without `pip install -e .`
        sys.path.insert(0, SRC)
        import chainrule as cr
    return cr, lambda a, rg=False: cr.tensor(a.copy(), requires_grad=rg), cr.no_grad, \
        cr.cross_entropy


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy or an unusual build: not worth failing over
        blas = "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "usable_cores": cores,
            "python": platform.python_version(), "numpy": np.__version__, "numpy_blas": blas}


def measure(fn, repeats: int, target_s: float, scale: float) -> dict:
    """Time per call of ``fn`` (times ``scale``): median and range over the repeats."""
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
        samples.append((time.perf_counter() - t0) / n * scale)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "iters": n}


# ---------------------------------------------------------------- benchmarks
def chain(x, w, b, tanh, sin):
    for _ in range(N_GROUPS):
        x = sin(tanh(x * w + b))
    return x


def chain_fns(lib: str) -> dict:
    rng = np.random.default_rng(0)
    arrs = [rng.standard_normal((4, 4)), 0.9 + 0.1 * rng.standard_normal((4, 4)),
            0.1 * rng.standard_normal((4, 4))]
    arrs = [a.astype(np.float32) for a in arrs]
    if lib == "numpy":
        return {"NumPy fwd": lambda: chain(*arrs, np.tanh, np.sin)}
    mod, tensor, no_grad, _ = framework(lib)
    x, w, b = (tensor(a, True) for a in arrs)

    def fwd_bwd():
        chain(x, w, b, mod.tanh, mod.sin).sum().backward()
        x.grad = w.grad = b.grad = None

    def fwd_nograd():
        with no_grad():
            chain(x, w, b, mod.tanh, mod.sin)

    return {"chain fwd+bwd": fwd_bwd, "chain fwd (grad)": lambda: chain(x, w, b, mod.tanh, mod.sin),
            "chain fwd no_grad": fwd_nograd}


def mlp_step_fn(lib: str):
    """A closure running one SGD step (returning the loss), and the parameters."""
    rng = np.random.default_rng(0)
    arrays = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1.0 / np.sqrt(fan_in)  # nn.Linear's default init range
        arrays += [rng.uniform(-bound, bound, (fan_in, fan_out)),
                   rng.uniform(-bound, bound, (fan_out,))]
    x_np = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y_np = rng.integers(0, SIZES[-1], BATCH).astype(np.int64)
    _, tensor, no_grad, ce = framework(lib)
    params = [tensor(a.astype(np.float32), True) for a in arrays]
    x, y = tensor(x_np), tensor(y_np)

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


def worker(lib: str, repeats: int, target_s: float, npz: str) -> dict:
    """All measurements of one framework (run in a fresh process)."""
    out = {}
    if lib == "torch":
        import torch
        out["info"] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    step, params = mlp_step_fn(lib)
    out["first_loss"] = float(step().item())
    np.savez(npz, *[np.array(p.detach().numpy()) for p in params])
    libs = ["cr", "numpy"] if lib == "cr" else [lib]
    res = {k: measure(fn, repeats, target_s, 1e6 / N_OPS)
           for lb in libs for k, fn in chain_fns(lb).items()}
    res["MLP step"] = measure(mlp_step_fn(lib)[0], repeats, target_s, 1e3)
    out["results"] = res
    return out


# ------------------------------------------------------------------ report
def fmt(m: dict | None, unit: str) -> str:
    return "n/a" if m is None else f"{m['median']:8.2f} {unit} ({m['min']:.2f}-{m['max']:.2f})"


def table(res_cr: dict, res_t: dict | None) -> dict:
    head = ["benchmark", "chainrule", "PyTorch", "ratio cr/torch", "target", "met"]
    rows, ratios = [], {}
    for name, m in res_cr.items():
        unit = "ms/step" if name == "MLP step" else "us/op"
        if name == "NumPy fwd":
            rows.append([name + " (ref)", fmt(m, unit), "-", "-", "-", "-"])
            continue
        t_m = res_t.get(name) if res_t else None
        ratio = ratios[name] = m["median"] / t_m["median"] if t_m else None
        tgt = TARGETS.get(name)
        rows.append([name, fmt(m, unit), fmt(t_m, unit), f"{ratio:.2f}x" if ratio else "n/a",
                     f"<= {tgt}x" if tgt else "-",
                     ("yes" if ratio <= tgt else "NO") if tgt and ratio else "-"])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line + "\n" + "-" * len(line))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return ratios


def profile(top=25) -> None:
    import cProfile
    import pstats
    for title, fn, n in [("chain fwd+bwd (100 ops)", chain_fns("cr")["chain fwd+bwd"], 200),
                         ("MLP step", mlp_step_fn("cr")[0], 30)]:
        fn()
        prof = cProfile.Profile()
        prof.runcall(lambda: [fn() for _ in range(n)])
        print(f"\n=== cProfile: chainrule {title}, {n} calls, sorted by tottime ===")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fast smoke run (short loops, 2 repeats)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--profile", action="store_true", help="print cProfile tables of chainrule")
    ap.add_argument("--worker", choices=["cr", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--npz", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    target_s = 0.04 if args.quick else 0.5
    if args.worker:
        print(json.dumps(worker(args.worker, repeats, target_s, args.npz)))
        return 0

    have_torch = importlib.util.find_spec("torch") is not None
    info = machine_info()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="chainrule-bench-") as tmp:
        for lib in ["cr", "torch"] if have_torch else ["cr"]:
            npz = os.path.join(tmp, f"{lib}.npz")
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--npz", npz,
                   "--repeats", str(repeats)] + (["--quick"] if args.quick else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"benchmark worker {lib!r} failed:\n{proc.stderr}")
            runs[lib] = json.loads(proc.stdout.strip().splitlines()[-1])
            with np.load(npz) as z:
                runs[lib]["params"] = [z[k] for k in z.files]
    info.update(runs.get("torch", {}).get("info", {"torch": "not installed"}))
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"timing: median of {repeats} repeats (min-max), ~{target_s}s per repeat, "
          f"one worker process per framework{' [--quick]' if args.quick else ''}\n")
    check = {"loss_cr": runs["cr"]["first_loss"]}
    msg = f"MLP first-step loss: chainrule {check['loss_cr']:.6f}"
    if have_torch:
        check["loss_torch"] = runs["torch"]["first_loss"]
        check["max_param_diff_after_step"] = max(float(np.abs(a - b).max()) for a, b in
                                                 zip(runs["cr"]["params"], runs["torch"]["params"]))
        msg += (f", PyTorch {check['loss_torch']:.6f} (|diff| "
                f"{abs(check['loss_cr'] - check['loss_torch']):.1e}); max |param diff| after "
                f"the step {check['max_param_diff_after_step']:.1e}")
    print(msg + "\n")
    res_t = runs["torch"]["results"] if have_torch else None
    ratios = table(runs["cr"]["results"], res_t)
    if not have_torch:
        print("NOTE: torch is not installed: PyTorch columns and ratios are skipped "
              "(install it with `pip install -e '.[torch]'`).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "repeats": repeats, "quick": args.quick, "mlp_check": check,
                       "chainrule": runs["cr"]["results"], "torch": res_t, "ratios": ratios},
                      f, indent=2)
        print(f"\nwrote {args.json}")
    if args.profile:
        profile()
    return 0


if __name__ == "__main__":
    sys.exit(main())
