"""Function transforms, checkpointing and anomaly mode: chainrule vs PyTorch (and JAX).

1. hvp cost. The loss of a 784-512-512-10 ReLU MLP (batch 128, cross-entropy, float32)
   w.r.t. its six parameters; v is a random direction. Each framework's Hessian-vector
   product, timed against its own gradient: chainrule ``cr.hvp`` (forward over reverse),
   reverse over reverse (``autograd.grad(create_graph=True)``, then the gradient of
   <g, v>) and reverse over forward (``cr.grad`` of the directional derivative that
   ``cr.jvp`` gives); PyTorch double backward (as above) and
   ``torch.func.jvp(torch.func.grad(f))``; ``jax.jit`` of ``jvp(grad(f))`` against
   ``jax.jit(grad(f))``. The first repeat checks every H v against PyTorch's.
2. Checkpointing. A 64-layer width-1024 MLP (``relu(h @ W + b)`` blocks, plain tensors),
   batch 256, loss ``mean(h * h)``, float32: step time (forward + backward, gradients
   accumulated into existing ``.grad`` buffers) and peak activation memory, with
   ``checkpoint_sequential`` at 8 segments and without; PyTorch runs
   ``torch.utils.checkpoint.checkpoint_sequential(use_reentrant=False)``. Activation
   memory = peak during forward + backward minus what was held before the forward
   (weights, input, the ``.grad`` buffers). Two methods, in a fresh process per
   configuration: the allocator's view (chainrule: ``tracemalloc``, which sees every
   NumPy buffer; PyTorch: the allocation and free events of ``torch.profiler`` with
   ``profile_memory=True``, summed in time order), and the peak RSS (``ru_maxrss``)
   minus the RSS before the forward, on the first full step (a warm-up step through the
   first two layers runs before it, so the libraries' one-off buffers are not counted).
   chainrule's ``saved_tensors_report`` adds the bytes the tape keeps after the forward.
3. Anomaly mode. The MLP of (1): forward + backward, with and without
   ``detect_anomaly()``, in chainrule and in PyTorch.

Timing: ``time.perf_counter`` around N calls, N calibrated so a loop lasts ~0.3 s
(0.05 s with ``--quick``); the variants of one benchmark alternate inside one worker
process (``--rounds`` rounds, median taken) so drift hits them alike, and every
(benchmark, framework) runs in a fresh process per repeat. Ratios are taken inside a
repeat; the median over repeats is printed with the min-max range. BLAS/OpenMP/XLA run
one thread unless ``--threads default``: on a shared 2-core machine multi-threaded BLAS
stalls whenever the other core is busy. ``--malloc-keep`` runs every worker with glibc
keeping freed memory (no page faults from memory returned to the OS and taken again).
``--quick`` shrinks the checkpointing model to width 256, batch 64 (still 64 layers, 8
segments). ``--profile`` shows where chainrule's hvp spends its time.
"""
from __future__ import annotations

import argparse
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
import warnings

import numpy as np

SIZES, BATCH = (784, 512, 512, 10), 128
CKPT = {"full": dict(depth=64, width=1024, batch=256, segments=8),
        "quick": dict(depth=64, width=256, batch=64, segments=8)}
TARGETS = {"hvp/grad": 2.0, "ckpt memory": 0.3, "ckpt time": 1.4, "anomaly": 2.0}
# glibc keeps freed memory instead of unmapping it / trimming the heap (as a caching
# allocator would): the same as mallopt(M_MMAP_THRESHOLD, 32 MiB), mallopt(M_TRIM_THRESHOLD,
# 256 MiB). Applied to every framework's workers with --malloc-keep.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
MiB = 2.0 ** 20


def import_cr():
    try:
        import chainrule as cr
    except ImportError:  # a checkout without `pip install -e .`
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../src"))
        import chainrule as cr
    return cr


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):  # not Linux
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__}
    for pkg in ("torch", "jax", "jaxlib"):
        try:
            info[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info[pkg] = "not installed"
    return info


# ------------------------------------------------------------------ timing
def calibrate(fn, target_s: float) -> int:
    """Calls per loop lasting ~``target_s``, after a warm-up call (a second call times it
    unless the warm-up alone took longer than the loop should)."""
    t0 = time.perf_counter()
    fn()
    if time.perf_counter() - t0 < target_s:
        t0 = time.perf_counter()
        fn()
    return max(1, round(target_s / max(time.perf_counter() - t0, 1e-7)))


def interleaved(fns: dict, target_s: float, rounds: int) -> dict:
    """Seconds per call of each fn: the median over ``rounds`` loops, the fns alternating."""
    ns = {k: calibrate(fn, target_s) for k, fn in fns.items()}
    times = {k: [] for k in fns}
    for r in range(rounds):
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            fn, n = fns[k], ns[k]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[k].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in times.items()}


# ------------------------------------------------------- 1. hvp of an MLP loss
def mlp_arrays():
    """Weights (nn.Linear's init range), input, labels and a direction v, float32."""
    rng = np.random.default_rng(0)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        params += [rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32),
                   rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)]
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH).astype(np.int64)
    v = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    return params, x, y, v


def mlp_loss(relu, ce, x, y):
    def loss(ps):
        w1, b1, w2, b2, w3, b3 = ps
        h = relu(x @ w1 + b1)  # (B, 512)
        h = relu(h @ w2 + b2)  # (B, 512)
        return ce(h @ w3 + b3, y)
    return loss


def hvp_fns(lib: str):
    """{name: fn} timed in one process, the grad baseline of each hvp and {name: hv()}."""
    p_np, x_np, y_np, v_np = mlp_arrays()
    if lib == "cr":
        cr = import_cr()
        params = [cr.from_numpy(a) for a in p_np]
        leaves = [cr.tensor(a, requires_grad=True) for a in p_np]
        vs = [cr.from_numpy(a) for a in v_np]
        loss = mlp_loss(cr.relu, cr.cross_entropy, cr.from_numpy(x_np), cr.from_numpy(y_np))
        grad_fn = cr.grad(loss)

        def rev_rev():
            gs = cr.autograd.grad(loss(leaves), leaves, create_graph=True)
            return cr.autograd.grad(sum((g * v).sum() for g, v in zip(gs, vs)), leaves)

        def directional(ps):  # <grad f(ps), v> by forward mode; f(ps) as aux
            value, tangent = cr.jvp(loss, (ps,), (vs,))
            return tangent, value

        rev_fwd = cr.grad(directional, has_aux=True)
        fns = {"grad (cr.grad)": lambda: grad_fn(params),
               "grad (autograd.grad)": lambda: cr.autograd.grad(loss(leaves), leaves),
               "hvp cr.hvp (rev-over-fwd)": lambda: cr.hvp(loss, (params,), (vs,))[1][0],
               "hvp rev-over-rev": rev_rev,
               "hvp cr.grad of cr.jvp, by hand": lambda: rev_fwd(params)[0]}
        base = {"hvp cr.hvp (rev-over-fwd)": "grad (cr.grad)",
                "hvp rev-over-rev": "grad (autograd.grad)",
                "hvp cr.grad of cr.jvp, by hand": "grad (cr.grad)"}
        return fns, base, lambda: [h.numpy() for h in fns["hvp cr.hvp (rev-over-fwd)"]()], \
            lambda: [h.numpy() for k in ("hvp rev-over-rev", "hvp cr.grad of cr.jvp, by hand")
                     for h in fns[k]()]
    if lib == "torch":
        import torch
        import torch.nn.functional as F
        params = [torch.from_numpy(a) for a in p_np]
        leaves = [torch.tensor(a, requires_grad=True) for a in p_np]
        vs = [torch.from_numpy(a) for a in v_np]
        loss = mlp_loss(torch.relu, F.cross_entropy, torch.from_numpy(x_np),
                        torch.from_numpy(y_np))
        fgrad = torch.func.grad(loss)

        def double_backward():
            gs = torch.autograd.grad(loss(leaves), leaves, create_graph=True)
            return torch.autograd.grad(sum((g * v).sum() for g, v in zip(gs, vs)), leaves)

        def func_hvp():
            return torch.func.jvp(fgrad, (params,), (vs,))[1]

        fns = {"grad (autograd.grad)": lambda: torch.autograd.grad(loss(leaves), leaves),
               "grad (torch.func.grad)": lambda: fgrad(params),
               "hvp double backward": double_backward,
               "hvp torch.func jvp(grad)": func_hvp}
        base = {"hvp double backward": "grad (autograd.grad)",
                "hvp torch.func jvp(grad)": "grad (torch.func.grad)"}
        return fns, base, lambda: [h.detach().numpy() for h in double_backward()], \
            lambda: [h.numpy() for h in func_hvp()]
    import jax
    import jax.numpy as jnp

    def ce(logits, y):
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    params = [jnp.asarray(a) for a in p_np]
    vs = [jnp.asarray(a) for a in v_np]
    loss = mlp_loss(jax.nn.relu, ce, jnp.asarray(x_np), jnp.asarray(y_np))
    jgrad = jax.jit(jax.grad(loss))
    jhvp = jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1])
    fns = {"grad (jax.jit(grad))": lambda: jax.block_until_ready(jgrad(params)),
           "hvp jax.jit(jvp(grad))": lambda: jax.block_until_ready(jhvp(params, vs))}
    return fns, {"hvp jax.jit(jvp(grad))": "grad (jax.jit(grad))"}, \
        lambda: [np.asarray(h) for h in jhvp(params, vs)], None


def hvp_worker(lib, target_s, rounds, npz):
    fns, base, hv_main, hv_other = hvp_fns(lib)
    out = {"times": interleaved(fns, target_s, rounds), "base": base}
    if npz:  # repeat 0: keep H v for the cross-framework check
        main = hv_main()
        np.savez(npz, *main)
        if hv_other is not None:  # the framework's two hvp methods against each other
            other = hv_other()
            out["self_check"] = max(rel_err(a, b) for a, b in zip(
                main * (len(other) // len(main)), other))
    return out


def rel_err(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# ----------------------------------------------------------- 2. checkpointing
def ckpt_model(lib: str, depth: int, width: int, batch: int):
    """(layers as a list of callables, params, input, module, segment runner)."""
    rng = np.random.default_rng(1)
    std = np.float32(np.sqrt(2.0 / width))  # He init: the signal keeps its scale over depth
    ws = []
    for _ in range(depth):
        w = rng.standard_normal((width, width), dtype=np.float32)
        w *= std  # in place: no float64 or second temporary (keeps the RSS baseline honest)
        ws += [w, rng.uniform(-0.01, 0.01, width).astype(np.float32)]
    x = rng.standard_normal((batch, width), dtype=np.float32)
    if lib == "cr":
        mod = import_cr()
        params = [mod.from_numpy(a).requires_grad_() for a in ws]
        ckseq = mod.checkpoint_sequential
    else:
        import torch
        import torch.utils.checkpoint as tc
        mod = torch
        params = [torch.from_numpy(a).requires_grad_() for a in ws]
        ckseq = functools.partial(tc.checkpoint_sequential, use_reentrant=False)

    def block(h, w, b):
        return mod.relu(h @ w + b)  # (B, width)

    layers = [functools.partial(block, w=params[2 * i], b=params[2 * i + 1])
              for i in range(depth)]
    return layers, params, mod.from_numpy(x), mod, ckseq


def ckpt_step(layers, x, ckseq, segments: int):
    """Forward + backward; gradients accumulate into the parameters' ``.grad``."""
    if segments:
        h = ckseq(layers, segments, x)
    else:
        h = x
        for f in layers:
            h = f(h)
    loss = (h * h).mean()
    loss.backward()


def zero_grads(params, mod):
    """Existing ``.grad`` buffers set to zero in place (created the first time)."""
    for p in params:
        if p.grad is None:
            p.grad = mod.zeros(tuple(p.shape), dtype=p.dtype)
        else:
            p.grad.numpy()[...] = 0


def ckpt_time_worker(lib, cfg, target_s, rounds, check: bool):
    layers, params, x, mod, ckseq = ckpt_model(lib, cfg["depth"], cfg["width"], cfg["batch"])
    seg, out = cfg["segments"], {}
    if check:  # one step each from zero gradients: checkpointing must not change them
        got = []
        for s in (0, seg):
            zero_grads(params, mod)
            ckpt_step(layers, x, ckseq, s)
            got.append([np.array(p.grad.numpy()) for p in params[:2]])
        out["grad_rel_diff"] = max(rel_err(a, b) for a, b in zip(got[1], got[0]))
    fns = {"no checkpointing": lambda: ckpt_step(layers, x, ckseq, 0),
           f"checkpoint_sequential({seg})": lambda: ckpt_step(layers, x, ckseq, seg)}
    return {**out, "times": interleaved(fns, target_s, rounds)}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ckpt_mem_worker(lib, cfg, segments):
    """Activation memory of one step, by RSS (first full step) then by the allocator."""
    import resource
    layers, params, x, mod, ckseq = ckpt_model(lib, cfg["depth"], cfg["width"], cfg["batch"])
    zero_grads(params, mod)
    # warm-up on the first two layers only: the libraries' one-off buffers (BLAS blocks at
    # full size, lazily built state) are made before the baseline, at little memory
    ckpt_step(layers[:2], x, ckseq, min(segments, 2))
    zero_grads(params, mod)
    before, max_before = rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ckpt_step(layers, x, ckseq, segments)
    max_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {"rss": max_after - before, "rss_baseline_slack": max(0, max_before - before)}
    zero_grads(params, mod)
    if lib == "cr":
        import tracemalloc
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        ckpt_step(layers, x, ckseq, segments)
        out["traced"] = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.stop()
        out["saved_by_tape"] = mod.autograd.saved_tensors_report(
            lambda: ckpt_step_forward(layers, x, ckseq, segments)).total_bytes
    else:
        out["traced"] = torch_profiled_peak(lambda: ckpt_step(layers, x, ckseq, segments))
    return out


def ckpt_step_forward(layers, x, ckseq, segments):
    if segments:
        return ckseq(layers, segments, x)
    for f in layers:
        x = f(x)
    return x


def torch_profiled_peak(fn) -> int:
    """Peak of the running sum of CPU allocations minus frees recorded by torch.profiler."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    cur = peak = 0
    for _, nbytes in events:
        cur += nbytes
        peak = max(peak, cur)
    return peak


# ------------------------------------------------------------- 3. anomaly mode
def anomaly_worker(lib, target_s, rounds):
    p_np, x_np, y_np, _ = mlp_arrays()
    if lib == "cr":
        mod = import_cr()
        ce, detect = mod.cross_entropy, mod.autograd.detect_anomaly
    else:
        import torch
        mod, ce, detect = torch, torch.nn.functional.cross_entropy, torch.autograd.detect_anomaly
        warnings.filterwarnings("ignore", message="Anomaly Detection has been enabled")
    params = [mod.from_numpy(a.copy()).requires_grad_() for a in p_np]
    loss = mlp_loss(mod.relu, ce, mod.from_numpy(x_np), mod.from_numpy(y_np))

    def step():
        loss(params).backward()

    def step_anomaly():
        with detect():
            loss(params).backward()

    return {"times": interleaved({"step": step, "step, detect_anomaly()": step_anomaly},
                                 target_s, rounds)}


# ------------------------------------------------------------------ driver
def spawn(args: list, one_thread: bool) -> dict:
    env = {**os.environ, **THREAD_ENV} if one_thread else None
    cmd = [sys.executable, os.path.abspath(__file__), "--worker"] + args
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"benchmark worker {' '.join(args)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(xs: list) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "samples": xs}


def fmt(m: dict, scale=1.0, unit="", prec=2) -> str:
    return (f"{m['median'] * scale:.{prec}f}{unit} "
            f"({m['min'] * scale:.{prec}f}-{m['max'] * scale:.{prec}f})")


def print_table(head: list, rows: list) -> None:
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line + "\n" + "-" * len(line))
    for r in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def met(value: float, target: float) -> str:
    return "yes" if value <= target else "NO"


def bench_hvp(libs, a, tmp) -> dict:
    runs = {lib: [] for lib in libs}
    for r in range(a.repeats):
        for lib in libs if r % 2 == 0 else libs[::-1]:
            extra = ["--npz", os.path.join(tmp, f"hv_{lib}.npz")] if r == 0 else []
            runs[lib].append(spawn(["hvp", lib, "--target", str(a.target_s), "--rounds",
                                    str(a.rounds)] + extra, a.one_thread))
    ref = list(np.load(os.path.join(tmp, "hv_torch.npz")).values()) if "torch" in libs else None
    res, rows = {}, []
    for lib in libs:
        times = {k: summary([w["times"][k] for w in runs[lib]]) for k in runs[lib][0]["times"]}
        base = runs[lib][0]["base"]
        check = runs[lib][0].get("self_check")
        if ref is not None and lib != "torch":
            hv = list(np.load(os.path.join(tmp, f"hv_{lib}.npz")).values())
            check = max(check or 0.0, max(rel_err(h, t) for h, t in zip(hv, ref)))
        for name, g in base.items():
            ratio = summary([w["times"][name] / w["times"][g] for w in runs[lib]])
            res[name] = {"framework": lib, "hvp_s": times[name], "grad": g,
                         "grad_s": times[g], "ratio": ratio, "hv_rel_err": check}
            rows.append([name, fmt(times[g], 1e3), fmt(times[name], 1e3),
                         fmt(ratio, unit="x"), f"{check:.1e}" if check is not None else "-",
                         met(ratio["median"], TARGETS["hvp/grad"]) if lib == "cr" else "-"])
    print(f"\n[1] hvp of the {'-'.join(map(str, SIZES))} MLP loss (batch {BATCH}, float32): "
          f"time of H v over the time of the framework's gradient; target for chainrule "
          f"<= {TARGETS['hvp/grad']}x")
    print_table(["method", "grad ms", "hvp ms", "hvp/grad", "H v rel err", "target met"], rows)
    print("  (H v rel err: max |diff| / max |H v| against PyTorch double backward, for "
          "chainrule the worst of its three methods; for PyTorch, torch.func against double "
          "backward)")
    cr_hvp = res.get("hvp cr.hvp (rev-over-fwd)")
    if cr_hvp:
        others = ", ".join(
            f"{cr_hvp['hvp_s']['median'] / m['hvp_s']['median']:.2f}x {k.split(' ', 1)[1]}"
            for k, m in res.items() if m["framework"] != "cr")
        print(f"  cr.hvp time against the others: {others}")
    return res


def bench_ckpt(libs, a) -> dict:
    cfg = CKPT["quick" if a.quick else "full"]
    seg, tag = cfg["segments"], json.dumps(cfg)
    time_runs = {lib: [] for lib in libs}
    for r in range(a.repeats):
        for lib in libs if r % 2 == 0 else libs[::-1]:
            time_runs[lib].append(spawn(["ckpt-time", lib, "--cfg", tag, "--target",
                                         str(a.target_s), "--rounds", str(min(a.rounds, 2))]
                                        + (["--check"] if r == 0 else []), a.one_thread))
    mem = {lib: {s: spawn(["ckpt-mem", lib, "--cfg", tag, "--segments", str(s)], a.one_thread)
                 for s in (0, seg)} for lib in libs}
    res, rows = {}, []
    for lib in libs:
        names = list(time_runs[lib][0]["times"])
        t0 = summary([w["times"][names[0]] for w in time_runs[lib]])
        t1 = summary([w["times"][names[1]] for w in time_runs[lib]])
        ratio = summary([w["times"][names[1]] / w["times"][names[0]] for w in time_runs[lib]])
        m0, m1 = mem[lib][0], mem[lib][seg]
        res[lib] = {"time_plain_s": t0, "time_ckpt_s": t1, "time_ratio": ratio,
                    "mem_plain": m0, "mem_ckpt": m1,
                    "mem_ratio_traced": m1["traced"] / m0["traced"],
                    "mem_ratio_rss": m1["rss"] / m0["rss"] if m0["rss"] > 0 else None,
                    "grad_rel_diff": time_runs[lib][0]["grad_rel_diff"]}
        name = {"cr": "chainrule", "torch": "PyTorch"}[lib]
        method = "tracemalloc" if lib == "cr" else "torch.profiler"
        ok = lib == "cr"
        rows.append([name, "step time ms", fmt(t0, 1e3, prec=0), fmt(t1, 1e3, prec=0),
                     fmt(ratio, unit="x"), met(ratio["median"], TARGETS["ckpt time"])
                     if ok else "-"])
        rows.append([name, f"activation MiB ({method})", f"{m0['traced'] / MiB:.1f}",
                     f"{m1['traced'] / MiB:.1f}", f"{res[lib]['mem_ratio_traced']:.3f}x",
                     met(res[lib]["mem_ratio_traced"], TARGETS["ckpt memory"]) if ok else "-"])
        r_rss = res[lib]["mem_ratio_rss"]
        rows.append([name, "activation MiB (peak RSS)", f"{m0['rss'] / MiB:.1f}",
                     f"{m1['rss'] / MiB:.1f}", f"{r_rss:.3f}x" if r_rss else "n/a", "-"])
        if lib == "cr":
            rows.append([name, "saved by the tape MiB (weights incl.)",
                         f"{m0['saved_by_tape'] / MiB:.1f}", f"{m1['saved_by_tape'] / MiB:.1f}",
                         "-", "-"])
    act = cfg["depth"] * cfg["batch"] * cfg["width"] * 4 / MiB
    print(f"\n[2] checkpointing: {cfg['depth']} x relu(h @ W + b), width {cfg['width']}, "
          f"batch {cfg['batch']}, float32 (one layer's output: {act / cfg['depth']:.1f} MiB, "
          f"all layers: {act:.0f} MiB); targets for chainrule: memory <= "
          f"{TARGETS['ckpt memory']}x, time <= {TARGETS['ckpt time']}x")
    print_table(["framework", "measure", "plain", f"checkpoint_sequential({seg})", "ratio",
                 "target met"], rows)
    slack = {lib: max(mem[lib][s]["rss_baseline_slack"] for s in mem[lib]) for lib in libs}
    print("  activation memory = peak during forward+backward minus memory held before the "
          "forward (weights, input, .grad buffers); each configuration in a fresh process. "
          "tracemalloc/torch.profiler count the bytes the allocator hands out; peak RSS "
          "(ru_maxrss) also counts freed memory malloc keeps. RSS peak before the step "
          "exceeded the baseline by " + ", ".join(f"{k}: {v / MiB:.1f} MiB"
                                                    for k, v in slack.items()) +
          " (0 = the RSS delta is exact).")
    print("  checkpointing changed the gradients by (max rel diff): " + ", ".join(
        f"{lib}: {res[lib]['grad_rel_diff']:.1e}" for lib in libs))
    return {"config": cfg, **res}


def bench_anomaly(libs, a) -> dict:
    runs = {lib: [] for lib in libs}
    for r in range(a.repeats):
        for lib in libs if r % 2 == 0 else libs[::-1]:
            runs[lib].append(spawn(["anomaly", lib, "--target", str(a.target_s), "--rounds",
                                    str(a.rounds)], a.one_thread))
    res, rows = {}, []
    for lib in libs:
        t0 = summary([w["times"]["step"] for w in runs[lib]])
        t1 = summary([w["times"]["step, detect_anomaly()"] for w in runs[lib]])
        ratio = summary([w["times"]["step, detect_anomaly()"] / w["times"]["step"]
                         for w in runs[lib]])
        res[lib] = {"step_s": t0, "anomaly_s": t1, "ratio": ratio}
        rows.append([{"cr": "chainrule", "torch": "PyTorch"}[lib], fmt(t0, 1e3), fmt(t1, 1e3),
                     fmt(ratio, unit="x"), met(ratio["median"], TARGETS["anomaly"])
                     if lib == "cr" else "-"])
    print(f"\n[3] anomaly mode: forward + backward of the MLP of [1]; target for chainrule "
          f"< {TARGETS['anomaly']}x")
    print_table(["framework", "step ms", "with detect_anomaly() ms", "ratio", "target met"],
                rows)
    return res


class timed_impls:
    """Context manager: per primitive name, [calls, seconds] spent in chainrule's impls."""

    def __enter__(self):
        from chainrule.core.primitive import PRIMITIVES
        self.stats, self.saved = {}, {p: p.impl for p in PRIMITIVES.values()}
        for p in self.saved:
            p.impl = self._wrap(p.name, p.impl)
        return self.stats

    def _wrap(self, name, impl):
        def run(*arrays, **params):
            t0 = time.perf_counter()
            out = impl(*arrays, **params)
            s = self.stats.setdefault(name, [0, 0.0])
            s[0] += 1
            s[1] += time.perf_counter() - t0
            return out
        return run

    def __exit__(self, *exc):
        for p, impl in self.saved.items():
            p.impl = impl
        return False


def profile_hvp() -> None:
    """Where chainrule's hvp spends its time: per-primitive impl time against grad, and
    the per-op overhead of forward mode on tiny tensors."""
    cr = import_cr()
    fns = hvp_fns("cr")[0]
    import resource
    n, per, faults = 20, {}, {}
    for name in ("grad (cr.grad)", "hvp cr.hvp (rev-over-fwd)", "hvp rev-over-rev",
                 "hvp cr.grad of cr.jvp, by hand"):
        fns[name]()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with timed_impls() as stats:
            t0 = time.perf_counter()
            for _ in range(n):
                fns[name]()
            per[name] = ((time.perf_counter() - t0) / n, stats)
        faults[name] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n
    print("\n=== chainrule: calls / ms per call inside primitive impls (NumPy), 1 thread ===")
    prims = sorted({k for _, s in per.values() for k in s},
                   key=lambda k: -per["hvp cr.hvp (rev-over-fwd)"][1].get(k, (0, 0))[1])
    rows = [[p] + [f"{s.get(p, (0, 0))[0] // n} / {s.get(p, (0, 0))[1] / n * 1e3:.2f}"
                   for _, s in per.values()] for p in prims]
    rows.append(["all impls"] + [f"{sum(c for c, _ in s.values()) // n} / "
                                 f"{sum(t for _, t in s.values()) / n * 1e3:.2f}"
                                 for _, s in per.values()])
    rows.append(["wall (incl. Python)"] + [f"- / {t * 1e3:.2f}" for t, _ in per.values()])
    rows.append(["page faults per call"] + [f"{faults[k]:.0f}" for k in per])
    print_table(["primitive"] + list(per), rows)
    print("(a page fault = a 4 KiB page of memory the allocator gave back to the OS and took "
          "again; compare with --malloc-keep)")

    # the per-op overhead of forward mode: 100 elementwise ops on (4, 4) float32 tensors
    rng = np.random.default_rng(0)
    x, w, b = (cr.from_numpy((m + s * rng.standard_normal((4, 4))).astype(np.float32))
               for m, s in [(0, 1), (0.9, 0.1), (0, 0.1)])
    v = cr.ones(4, 4)

    def chain(x):
        for _ in range(25):
            x = cr.sin(cr.tanh(x * w + b))
        return x

    def us_per_op(fn, reps=300):
        fn()
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            ts.append((time.perf_counter() - t0) / reps / 100 * 1e6)
        return min(ts)

    with cr.no_grad():
        eager = us_per_op(lambda: chain(x))
        fwd = us_per_op(lambda: cr.jvp(chain, (x,), (v,)))
        with timed_impls() as stats:
            cr.jvp(chain, (x,), (v,))
    kernels = sum(c for c, _ in stats.values())
    print(f"\n=== forward-mode overhead: 100 elementwise ops on (4, 4) float32, no_grad ===\n"
          f"eager {eager:.2f} us/op; under jvp {fwd:.2f} us per primal op ({fwd / eager:.1f}x),"
          f" running {kernels / 100:.2f} kernels per primal op (the primal and its tangent "
          f"rule): {fwd * 100 / kernels:.2f} us per kernel against {eager:.2f} eager")


def worker_main(a) -> dict:
    kind, lib = a.worker
    if kind == "hvp":
        return hvp_worker(lib, a.target, a.rounds, a.npz)
    if kind == "ckpt-time":
        return ckpt_time_worker(lib, json.loads(a.cfg), a.target, a.rounds, a.check)
    if kind == "ckpt-mem":
        return ckpt_mem_worker(lib, json.loads(a.cfg), a.segments)
    return anomaly_worker(lib, a.target, a.rounds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run under a minute (short loops, 1 repeat, a narrower "
                         "checkpointing model)")
    ap.add_argument("--repeats", type=int, help="fresh-process repeats (default 3, quick 1)")
    ap.add_argument("--rounds", type=int, help="alternating loops per process (default 3)")
    ap.add_argument("--threads", choices=["1", "default"], default="1",
                    help="BLAS/OpenMP/XLA threads per process (default 1)")
    ap.add_argument("--malloc-keep", action="store_true",
                    help="workers run with glibc keeping freed memory (MALLOC_MMAP_THRESHOLD_ "
                         "32 MiB, MALLOC_TRIM_THRESHOLD_ 256 MiB): no page faults from "
                         "memory given back to the OS and faulted in again")
    ap.add_argument("--only", choices=["hvp", "ckpt", "anomaly"], action="append",
                    help="run only these benchmarks (repeatable)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--profile", action="store_true",
                    help="print where chainrule's hvp spends its time")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--target", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--npz", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    ap.add_argument("--segments", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.rounds = a.rounds or (2 if a.quick else 3)
    if a.worker:
        print(json.dumps(worker_main(a)))
        return 0
    a.repeats = a.repeats or (1 if a.quick else 3)
    a.target_s = 0.05 if a.quick else 0.3
    a.one_thread = a.threads == "1"
    if a.malloc_keep:  # inherited by the workers (and by --profile's re-run below)
        os.environ.update(MALLOC_ENV)
    if a.profile:
        if a.one_thread or a.malloc_keep:  # these take effect at process start: run again
            os.environ.update(THREAD_ENV if a.one_thread else {})
            os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), "--profile",
                                      "--threads", "default"])
        profile_hvp()
        return 0

    t_start = time.perf_counter()
    have = {m: importlib.util.find_spec(m) is not None for m in ("torch", "jax")}
    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    load0 = os.getloadavg()
    print(f"threads per process: {'1 (BLAS/OpenMP/XLA)' if a.one_thread else 'library default'}"
          f"; malloc: {'glibc keeps freed memory (--malloc-keep)' if a.malloc_keep else 'default'}"
          f"; {a.repeats} fresh-process repeat(s) x {a.rounds} alternating rounds, ~"
          f"{a.target_s}s loops; medians (min-max){' [--quick]' if a.quick else ''}; "
          f"load average at start {load0[0]:.2f}", flush=True)
    for m, ok in have.items():
        if not ok:
            print(f"NOTE: {m} is not installed: its rows are skipped "
                  f"(`.venv/bin/pip install {m}`)")
    only = a.only or ["hvp", "ckpt", "anomaly"]
    out = {"machine": info, "quick": a.quick, "repeats": a.repeats, "rounds": a.rounds,
           "threads": a.threads, "malloc_keep": a.malloc_keep, "load_start": load0}
    base_libs = ["cr"] + (["torch"] if have["torch"] else [])
    with tempfile.TemporaryDirectory(prefix="chainrule-transforms-") as tmp:
        if "hvp" in only:
            out["hvp"] = bench_hvp(base_libs + (["jax"] if have["jax"] else []), a, tmp)
    if "ckpt" in only:
        out["checkpoint"] = bench_ckpt(base_libs, a)
    if "anomaly" in only:
        out["anomaly"] = bench_anomaly(base_libs, a)
    out["load_end"] = os.getloadavg()
    out["wall_s"] = time.perf_counter() - t_start
    print(f"\nload average at end {out['load_end'][0]:.2f}; total {out['wall_s']:.0f}s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
