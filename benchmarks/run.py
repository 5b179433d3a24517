"""chainrule vs PyTorch CPU eager, measured in the same run (`make bench`).

1. Per-op overhead on tiny tensors: a chain of 100 elementwise ops on (4, 4)
   float32 tensors, the same in both frameworks (25 x ``x = sin(tanh(x * w +
   b))``; x, w, b leaves that require grad), in us per op: ``fwd+bwd`` (forward
   recording the graph + ``x.sum().backward()``), ``fwd (grad)`` (forward only,
   recording), ``fwd no_grad``, and a pure NumPy forward (the floor).
2. One step of a 784-512-512-10 ReLU MLP, batch 128, float32: forward,
   cross-entropy, backward, SGD (``with no_grad(): p -= lr * p.grad; p.grad =
   None``), both from the same initial weights (first-step loss and weights are
   compared). Once with default thread counts (the target row), once with
   BLAS/OpenMP at one thread: on a shared 2-core VM multi-threaded BLAS stalls
   whenever the other core is taken (~5 ms steps become 100-250 ms for
   seconds), so the 1-thread row is the stable comparison.

Timing: ``time.perf_counter`` around N calls, N calibrated after a warm-up so a
loop lasts ~0.5 s (0.04 s with ``--quick``). Each repeat runs each framework in
a fresh worker process (in one process torch's spinning OpenMP threads and
NumPy's OpenBLAS threads fight over the cores), alternating the order so drift
hits both. Reported: the MEDIAN of ``--repeats`` (default 5) and the min-max
range; the GC stays on. ``--profile`` adds cProfile tables (by tottime) of
chainrule's chain and MLP step; ``--json PATH`` writes the results.
"""
from __future__ import annotations

import argparse
import importlib.metadata
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

N_GROUPS, N_OPS = 25, 100  # 4 ops per group
SIZES, BATCH, LR = (784, 512, 512, 10), 128, 0.01
TARGETS = {"chain fwd+bwd": 1.5, "MLP step": 1.0}
ONE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def framework(lib: str):
    """(module, tensor-from-array, no_grad, cross_entropy) for 'cr' or 'torch'."""
    if lib == "torch":
        import torch
        return (torch, lambda a, rg=False: torch.tensor(a, requires_grad=rg), torch.no_grad,
                torch.nn.functional.cross_entropy)
    try:
        import chainrule as cr
    except ImportError:  # a checkout without `pip install -e .`
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../src"))
        import chainrule as cr
    return cr, lambda a, rg=False: cr.tensor(a.copy(), requires_grad=rg), cr.no_grad, \
        cr.cross_entropy


def machine_info() -> dict:
    cpu, blas = platform.processor() or "unknown", "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):  # not Linux
        pass
    try:
        b = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{b.get('name')} {b.get('version')}"
    except Exception:  # an older NumPy: not worth failing over
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "usable_cores": cores,
            "python": platform.python_version(), "numpy": np.__version__, "numpy_blas": blas}


def measure(fn, target_s: float, scale: float) -> float:
    """Time per call of ``fn`` (times ``scale``) over a loop lasting ~``target_s``."""
    fn()
    t0 = time.perf_counter()
    fn()
    n = max(1, int(target_s / max(time.perf_counter() - t0, 1e-7)))
    for _ in range(min(n, 20)):  # warm-up
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * scale


# ---------------------------------------------------------------- benchmarks
def chain(x, w, b, tanh, sin):
    for _ in range(N_GROUPS):
        x = sin(tanh(x * w + b))
    return x


def chain_fns(lib: str) -> dict:
    rng = np.random.default_rng(0)
    arrs = [(m + s * rng.standard_normal((4, 4))).astype(np.float32)
            for m, s in [(0, 1), (0.9, 0.1), (0, 0.1)]]
    if lib == "numpy":
        return {"NumPy fwd": lambda: chain(*arrs, np.tanh, np.sin)}
    mod, tensor, no_grad, _ = framework(lib)
    x, w, b = (tensor(a, True) for a in arrs)

    def fwd():
        return chain(x, w, b, mod.tanh, mod.sin)

    def fwd_bwd():
        fwd().sum().backward()
        x.grad = w.grad = b.grad = None

    def fwd_nograd():
        with no_grad():
            fwd()

    return {"chain fwd+bwd": fwd_bwd, "chain fwd (grad)": fwd, "chain fwd no_grad": fwd_nograd}


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


def worker(lib: str, target_s: float, npz: str | None, one_thread: bool) -> dict:
    """One sample of every measurement of one framework (run in a fresh process)."""
    out = {}
    if lib == "torch":
        import torch
        out["info"] = {"torch_threads": torch.get_num_threads()}
    if one_thread:  # BLAS/OpenMP pools were limited to 1 thread by the parent's environment
        out["results"] = {"MLP step, 1 thread": measure(mlp_step_fn(lib)[0], target_s, 1e3)}
        return out
    if npz:
        step, params = mlp_step_fn(lib)
        out["first_loss"] = float(step().item())
        np.savez(npz, *[np.array(p.detach().numpy()) for p in params])
    libs = ["cr", "numpy"] if lib == "cr" else [lib]
    res = {k: measure(fn, target_s, 1e6 / N_OPS) for lb in libs for k, fn in chain_fns(lb).items()}
    res["MLP step"] = measure(mlp_step_fn(lib)[0], target_s, 1e3)  # fresh weights
    return {**out, "results": res}


# ------------------------------------------------------------------ report
def fmt(m: dict | None, unit: str) -> str:
    return "n/a" if m is None else f"{m['median']:8.2f} {unit} ({m['min']:.2f}-{m['max']:.2f})"


def table(res_cr: dict, res_t: dict | None) -> dict:
    head = ["benchmark", "chainrule", "PyTorch", "ratio cr/torch", "target", "met"]
    rows, ratios = [], {}
    for name, m in res_cr.items():
        unit = "ms/step" if name.startswith("MLP") else "us/op"
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


def run_workers(libs, repeats: int, quick: bool, tmp: str) -> dict:
    """Per framework: a summary of every benchmark, and the worker's extra output."""
    runs = {lib: {"results": {}} for lib in libs}
    jobs = [(lib, one) for one in (False, True) for lib in libs]
    one_env = {**os.environ, **{v: "1" for v in ONE_THREAD_ENV}}
    for r in range(repeats):  # alternate the order, so drift hits both frameworks
        for lib, one in jobs if r % 2 == 0 else jobs[::-1]:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib] + \
                (["--npz", os.path.join(tmp, lib + ".npz")] if r == 0 and not one else []) + \
                (["--quick"] if quick else []) + (["--one-thread"] if one else [])
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env=one_env if one else None)
            if proc.returncode:
                sys.exit(f"benchmark worker {lib!r} failed:\n{proc.stderr}")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            for k, v in out.pop("results").items():
                runs[lib]["results"].setdefault(k, []).append(v)
            if not one:
                runs[lib].update(out)
    for run in runs.values():
        run["results"] = {k: {"median": statistics.median(v), "min": min(v), "max": max(v),
                              "samples": v} for k, v in run["results"].items()}
    return runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fast smoke run (short loops, 2 repeats)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--profile", action="store_true", help="print cProfile tables of chainrule")
    ap.add_argument("--worker", choices=["cr", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--npz", help=argparse.SUPPRESS)
    ap.add_argument("--one-thread", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    repeats, target_s = args.repeats or (2 if args.quick else 5), 0.04 if args.quick else 0.5
    if args.worker:
        print(json.dumps(worker(args.worker, target_s, args.npz, args.one_thread)))
        return 0

    have_torch = importlib.util.find_spec("torch") is not None
    libs = ["cr", "torch"] if have_torch else ["cr"]
    info = machine_info()
    info["torch"] = importlib.metadata.version("torch") if have_torch else "not installed"
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    with tempfile.TemporaryDirectory(prefix="chainrule-bench-") as tmp:
        runs = run_workers(libs, repeats, args.quick, tmp)
        params = {lib: list(np.load(os.path.join(tmp, lib + ".npz")).values()) for lib in libs}
    check = {f"loss_{lib}": runs[lib]["first_loss"] for lib in libs}
    msg = f"MLP first-step loss: chainrule {check['loss_cr']:.6f}"
    if have_torch:
        info.update(runs["torch"]["info"])
        check["max_param_diff_after_step"] = d = max(
            float(np.abs(a - b).max()) for a, b in zip(params["cr"], params["torch"]))
        msg += (f", PyTorch {check['loss_torch']:.6f} (|diff| "
                f"{abs(check['loss_cr'] - check['loss_torch']):.1e}); max |param diff| after "
                f"the step {d:.1e}")
        print(f"torch threads: {info['torch_threads']} (default)")
    print(f"timing: median of {repeats} repeats (min-max), ~{target_s}s loop per repeat, a fresh "
          f"process per framework and repeat{' [--quick]' if args.quick else ''}\n{msg}\n")
    res_t = runs["torch"]["results"] if have_torch else None
    ratios = table(runs["cr"]["results"], res_t)
    noisy = sorted({k for res in (runs["cr"]["results"], res_t or {})
                    for k, m in res.items() if m["max"] > 2 * m["min"]})
    if noisy:
        print(f"NOTE: max > 2x min across repeats for {', '.join(noisy)}: the machine was "
              "busy (multi-threaded BLAS stalls when the other core is taken); rerun, and "
              "trust the 1-thread MLP row")
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
