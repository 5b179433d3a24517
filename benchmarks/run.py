"""chainrule vs PyTorch CPU eager, measured in the same run (`make bench`).

1. Per-op overhead on tiny tensors: a chain of 100 elementwise ops on (4, 4)
   float32 tensors, the same in both frameworks (25 x ``x = sin(tanh(x * w +
   b))``; x, w, b leaves that require grad), in us per op: ``fwd+bwd`` (forward
   recording the graph + ``x.sum().backward()``), ``fwd (grad)`` (forward only,
   recording), ``fwd no_grad``, and a pure NumPy forward (the floor).
2. Training steps written as a user writes them, ``nn`` modules and an
   ``optim`` optimizer in each framework (``opt.zero_grad()``, forward,
   cross-entropy, ``loss.backward()``, ``opt.step()``), float32, both from the
   same initial weights (PyTorch's default init, copied by state-dict name):
   - MLP 784-512-512-10 (ReLU), batch 128, SGD lr 0.01;
   - CNN Conv2d(1,16,3,p=1)-ReLU-MaxPool2d(2)-Conv2d(16,32,3,p=1)-ReLU-
     MaxPool2d(2)-Flatten-Linear(1568,10) on (64, 1, 28, 28), SGD lr 0.01;
   - Transformer: TransformerEncoderLayer(d_model=128, nhead=4,
     dim_feedforward=512, dropout=0.0, batch_first=True) + Linear(128, 10)
     token head on (32, 64, 128), cross-entropy over the 2048 tokens, Adam
     lr 1e-3.
   ``MLP step (tensors)`` is the same MLP on raw tensors (``x @ w + b``,
   ``p -= lr * p.grad``): the gap to ``MLP step`` is what modules and the
   optimizer add. The first-step loss and the parameters after it are
   compared between the frameworks. Each step runs once with default thread
   counts and once with BLAS/OpenMP at one thread (the ``, 1 thread`` rows): on
   a shared 2-core VM multi-threaded BLAS stalls whenever the other core is
   taken (~5 ms steps become 100-250 ms for seconds), so the 1-thread rows are
   the stable comparison.

chainrule tunes glibc's allocator at import (``chainrule.backend.MALLOC_TUNED``;
``CHAINRULE_MALLOC_TUNE=0`` turns it off); PyTorch's worker runs as PyTorch
ships (it never imports chainrule): the comparison users get. The machine line
says which. To give PyTorch's process the same tuning, set glibc's own names for
the two settings, ``MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=268435456``, in the environment: every worker inherits
them, and the machine line shows them. Timing: ``time.perf_counter`` around N
calls, N calibrated after a warm-up so a loop lasts ~0.5 s (0.04 s with
``--quick``). Each repeat runs each framework in a fresh worker process (in one
process torch's spinning OpenMP threads and NumPy's OpenBLAS threads fight over
the cores), alternating the order so drift hits both. Reported: the MEDIAN of
``--repeats`` (default 5) and the min-max range; the GC stays on.
``--profile`` adds, for chainrule's chain and each step, the time inside
primitive kernels (per primitive) against the rest (Python: dispatch, tape,
engine, modules, optimizer) and a cProfile table; ``--json PATH`` writes the
results.
"""
from __future__ import annotations

import argparse
import collections
import functools
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
SIZES, BATCH, LR = (784, 512, 512, 10), 128, 0.01  # the raw-tensor MLP
TARGETS = {"chain fwd+bwd": 1.5, "MLP step": 1.0, "CNN step": 1.5, "Transformer step": 1.5}
# row -> (model from an ``nn`` module, input shape, class-target shape, optimizer, options)
MODELS = {
    "MLP step": (lambda nn: nn.Sequential(  # (B, 784)
        nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
        nn.Linear(512, 10)),  # (B, 10)
        (128, 784), (128,), "SGD", {"lr": 0.01}),
    "CNN step": (lambda nn: nn.Sequential(  # (B, 1, 28, 28)
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 14, 14)
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 7, 7)
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10)),  # (B, 10)
        (64, 1, 28, 28), (64,), "SGD", {"lr": 0.01}),
    "Transformer step": (lambda nn: nn.Sequential(  # (B, T, 128)
        nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, batch_first=True),
        nn.Linear(128, 10)),  # (B, T, 10)
        (32, 64, 128), (32, 64), "Adam", {"lr": 1e-3}),
}
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
    """Time per call of ``fn`` (times ``scale``) over a loop lasting ~``target_s``, after
    three warm-up calls (lazily built state; an optimizer's fused update compiles at its
    second step), so the loop length is calibrated on a steady call."""
    for _ in range(3):
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


def mlp_step_fn(lib: str, init_dir: str | None = None):
    """A closure running one SGD step of the raw-tensor MLP (returning the loss), and the
    parameters by name. (``init_dir`` is unused: the weights come from a seeded NumPy
    generator.)"""
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

    return step, dict(zip(("w1", "b1", "w2", "b2", "w3", "b3"), params))


def init_path(init_dir: str, row: str) -> str:
    return os.path.join(init_dir, row.split()[0].lower() + ".npz")


def save_init(init_dir: str) -> None:
    """Every model's initial weights, by state-dict name: PyTorch's default init (seed 0),
    or chainrule's where torch is not installed."""
    have_torch = importlib.util.find_spec("torch") is not None
    mod = framework("torch" if have_torch else "cr")[0]
    for row, (build, *_) in MODELS.items():
        mod.manual_seed(0)
        state = build(mod.nn).state_dict()
        np.savez(init_path(init_dir, row), **{k: v.detach().numpy() for k, v in state.items()})


def model_step_fn(lib: str, init_dir: str, row: str):
    """A closure running one training step of ``MODELS[row]`` in ``lib`` (zero_grad,
    forward, cross-entropy, backward, optimizer step; returning the loss), and the
    parameters by name, starting from the weights ``save_init`` wrote."""
    build, x_shape, y_shape, opt_name, options = MODELS[row]
    mod, tensor, _, ce = framework(lib)
    model = build(mod.nn)
    model.load_state_dict({k: tensor(v) for k, v in np.load(init_path(init_dir, row)).items()})
    rng = np.random.default_rng(1)
    x = tensor(rng.standard_normal(x_shape).astype(np.float32))
    y = tensor(rng.integers(0, 10, y_shape).reshape(-1))  # (N,) int64 classes
    opt = getattr(mod.optim, opt_name)(model.parameters(), **options)
    tokens = len(y_shape) > 1  # a per-token head: (B, T, 10) logits -> (B * T, 10)

    def step():
        opt.zero_grad()
        out = model(x)
        loss = ce(out.reshape(-1, 10) if tokens else out, y)
        loss.backward()
        opt.step()
        return loss

    return step, dict(model.named_parameters())


STEPS = {"MLP step (tensors)": mlp_step_fn,
         **{row: functools.partial(model_step_fn, row=row) for row in MODELS}}


def worker(lib: str, target_s: float, init_dir: str, check_dir: str | None,
           one_thread: bool) -> dict:
    """One sample of every measurement of one framework (run in a fresh process)."""
    out = {}
    if lib == "torch":
        import torch
        out["info"] = {"torch_threads": torch.get_num_threads()}
    if one_thread:  # BLAS/OpenMP pools were limited to 1 thread by the parent's environment
        out["results"] = {f"{row}, 1 thread": measure(make(lib, init_dir)[0], target_s, 1e3)
                          for row, make in STEPS.items()}
        return out
    if check_dir:  # the first step's loss, and the parameters after it
        out["first_loss"] = {}
        for row, make in STEPS.items():
            step, params = make(lib, init_dir)
            out["first_loss"][row] = float(step().item())
            np.savez(os.path.join(check_dir, f"{lib} {row}.npz"),
                     **{k: p.detach().numpy() for k, p in params.items()})
    libs = ["cr", "numpy"] if lib == "cr" else [lib]
    res = {k: measure(fn, target_s, 1e6 / N_OPS) for lb in libs for k, fn in chain_fns(lb).items()}
    for row, make in STEPS.items():  # fresh weights
        res[row] = measure(make(lib, init_dir)[0], target_s, 1e3)
    return {**out, "results": res}


# ------------------------------------------------------------------ report
def fmt(m: dict | None, unit: str) -> str:
    return "n/a" if m is None else f"{m['median']:8.2f} {unit} ({m['min']:.2f}-{m['max']:.2f})"


def table(res_cr: dict, res_t: dict | None) -> dict:
    head = ["benchmark", "chainrule", "PyTorch", "ratio cr/torch", "target", "met"]
    rows, ratios = [], {}
    for name, m in res_cr.items():
        unit = "ms/step" if "step" in name else "us/op"
        if name == "NumPy fwd":
            rows.append([name + " (ref)", fmt(m, unit), "-", "-", "-", "-"])
            continue
        t_m = res_t.get(name) if res_t else None
        ratio = ratios[name] = m["median"] / t_m["median"] if t_m else None
        tgt = TARGETS.get(name.split(",")[0])  # the 1-thread rows share their step's target
        rows.append([name, fmt(m, unit), fmt(t_m, unit), f"{ratio:.2f}x" if ratio else "n/a",
                     f"<= {tgt}x" if tgt else "-",
                     ("yes" if ratio <= tgt else "NO") if tgt and ratio else "-"])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line + "\n" + "-" * len(line))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return ratios


def kernel_split(fn, n: int) -> None:
    """Time ``n`` calls of ``fn`` with every primitive's kernel timed: what is inside the
    kernels (NumPy/BLAS) against the rest (Python: dispatch, tape, engine, modules). The
    timing wrapper itself adds about 0.5 us per kernel call to the rest (a tenth of the
    chain's per-op time, negligible in the steps)."""
    from chainrule.core.primitive import PRIMITIVES
    total, calls = collections.Counter(), collections.Counter()
    originals = {name: prim.impl for name, prim in PRIMITIVES.items()}

    def timed(*args, _impl, _name, **params):
        t0 = time.perf_counter()
        try:
            return _impl(*args, **params)
        finally:
            total[_name] += time.perf_counter() - t0
            calls[_name] += 1

    for name, prim in PRIMITIVES.items():
        prim.impl = functools.partial(timed, _impl=prim.impl, _name=name)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        wall = (time.perf_counter() - t0) / n * 1e3
    finally:
        for name, impl in originals.items():
            PRIMITIVES[name].impl = impl
    inside = sum(total.values()) / n * 1e3
    print(f"{wall:.2f} ms per call, {inside:.2f} ms inside primitive kernels "
          f"({100 * inside / wall:.0f}%), {wall - inside:.2f} ms outside (Python)")
    for name, t in total.most_common(10):
        print(f"  {name:16s} {t / n * 1e3:7.3f} ms  {calls[name] // n:4d} calls")


def profile(init_dir: str, top=15) -> None:
    import cProfile
    import pstats
    cases = [("chain fwd+bwd (100 ops)", chain_fns("cr")["chain fwd+bwd"], 200)]
    cases += [(row, make("cr", init_dir)[0], 30 if "Transformer" not in row else 10)
              for row, make in STEPS.items()]
    for title, fn, n in cases:
        fn()
        print(f"\n=== chainrule {title}: primitive kernels against the rest ===")
        kernel_split(fn, n)
        prof = cProfile.Profile()
        prof.runcall(lambda: [fn() for _ in range(n)])
        print(f"=== cProfile: chainrule {title}, {n} calls, sorted by tottime ===")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def run_workers(libs, repeats: int, quick: bool, tmp: str) -> dict:
    """Per framework: a summary of every benchmark, and the worker's extra output."""
    runs = {lib: {"results": {}} for lib in libs}
    jobs = [(lib, one) for one in (False, True) for lib in libs]
    one_env = {**os.environ, **{v: "1" for v in ONE_THREAD_ENV}}
    for r in range(repeats):  # alternate the order, so drift hits both frameworks
        for lib, one in jobs if r % 2 == 0 else jobs[::-1]:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--init", tmp] + \
                (["--check", tmp] if r == 0 and not one else []) + \
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


def step_checks(runs: dict, libs: list, tmp: str) -> dict:
    """Per step: both first-step losses and the largest parameter difference after it;
    printed as a table."""
    checks = {}
    print("first-step loss (chainrule, PyTorch, |diff|) and max |param diff| after the step:")
    for row in STEPS:
        check = checks[row] = {f"loss_{lib}": runs[lib]["first_loss"][row] for lib in libs}
        line = f"  {row:20s} {check['loss_cr']:.6f}"
        if "torch" in libs:
            cr_p, t_p = (np.load(os.path.join(tmp, f"{lib} {row}.npz")) for lib in libs)
            assert sorted(cr_p) == sorted(t_p), (row, sorted(cr_p), sorted(t_p))
            check["max_param_diff_after_step"] = d = max(
                float(np.abs(cr_p[k] - t_p[k]).max()) for k in cr_p)
            diff = abs(check["loss_cr"] - check["loss_torch"])
            line += f"  {check['loss_torch']:.6f}  {diff:.1e}  {d:.1e}"
        print(line)
    return checks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fast smoke run (short loops, 2 repeats)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--profile", action="store_true",
                    help="print where chainrule's time goes (kernels vs Python, cProfile)")
    ap.add_argument("--worker", choices=["cr", "torch", "init"], help=argparse.SUPPRESS)
    ap.add_argument("--init", help=argparse.SUPPRESS)
    ap.add_argument("--check", help=argparse.SUPPRESS)
    ap.add_argument("--one-thread", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    repeats, target_s = args.repeats or (2 if args.quick else 5), 0.04 if args.quick else 0.5
    if args.worker == "init":
        save_init(args.init)
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, target_s, args.init, args.check, args.one_thread)))
        return 0

    have_torch = importlib.util.find_spec("torch") is not None
    libs = ["cr", "torch"] if have_torch else ["cr"]
    info = machine_info()
    info["torch"] = importlib.metadata.version("torch") if have_torch else "not installed"
    info["chainrule_malloc_tuned"] = framework("cr")[0].backend.MALLOC_TUNED  # same env as workers
    malloc_env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    if malloc_env:  # glibc reads these in every process: PyTorch's worker is tuned too
        info["malloc_env"] = malloc_env
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    with tempfile.TemporaryDirectory(prefix="chainrule-bench-") as tmp:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", "init",
                        "--init", tmp], check=True)
        runs = run_workers(libs, repeats, args.quick, tmp)
        if have_torch:
            info.update(runs["torch"]["info"])
            alloc = ("tuned by the MALLOC_* environment" if malloc_env else
                     "as shipped (its worker never imports chainrule)")
            print(f"torch threads: {info['torch_threads']} (default); PyTorch's allocator {alloc}")
        print(f"timing: median of {repeats} repeats (min-max), ~{target_s}s loop per repeat, a "
              f"fresh process per framework and repeat{' [--quick]' if args.quick else ''}")
        checks = step_checks(runs, libs, tmp)
        print()
        res_t = runs["torch"]["results"] if have_torch else None
        ratios = table(runs["cr"]["results"], res_t)
        noisy = sorted({k for res in (runs["cr"]["results"], res_t or {})
                        for k, m in res.items() if m["max"] > 2 * m["min"]})
        if noisy:
            print(f"NOTE: max > 2x min across repeats for {', '.join(noisy)}: the machine was "
                  "busy (multi-threaded BLAS stalls when the other core is taken); rerun, and "
                  "trust the 1-thread rows")
        if not have_torch:
            print("NOTE: torch is not installed: PyTorch columns and ratios are skipped "
                  "(install it with `pip install -e '.[torch]'`).")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": info, "repeats": repeats, "quick": args.quick,
                           "step_checks": checks, "chainrule": runs["cr"]["results"],
                           "torch": res_t, "ratios": ratios}, f, indent=2)
            print(f"\nwrote {args.json}")
        if args.profile:
            profile(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
