"""A Transformer encoder block's training step, chainrule vs PyTorch CPU eager.

``TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=512, batch_first=True)`` in
training mode (dropout 0.1), input (32, 64, 128) float32 that requires grad; one step is
forward, ``(out * out).mean()``, backward, and resetting the gradients. Both frameworks
start from the same weights (PyTorch's init, saved and loaded by name) and the eval-mode
outputs are compared first.

Each repeat runs each framework in a fresh process (alternating the order), with default
thread counts and again with BLAS/OpenMP at one thread; a process reports the best of its
timed loops. Reported: min and median over repeats, and the ratio of the mins.
``--model lstm`` times ``LSTM(128, 128, batch_first=True)`` on the same input instead.
``--profile`` prints where chainrule's step spends its time, at one thread (per primitive,
then cProfile).

    python benchmarks/transformer_bench.py [--repeats 5] [--profile]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

D_MODEL, NHEAD, FF, BATCH, SEQ = 128, 4, 512, 32, 64
ONE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def make(lib: str, model: str):
    """The model under test, built by ``lib`` (torch or chainrule)."""
    if lib == "torch":
        import torch
        torch.manual_seed(0)
        nn = torch.nn
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../src"))
        from chainrule.nn import rnn, transformer
        nn = rnn if model == "lstm" else transformer
    if model == "lstm":
        return nn.LSTM(D_MODEL, D_MODEL, batch_first=True)
    return nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, batch_first=True)


def build(lib: str, npz: str, model: str = "encoder"):
    """(step, eval_forward) closures for one framework, from the weights in ``npz``."""
    x_np = np.random.default_rng(0).standard_normal((BATCH, SEQ, D_MODEL)).astype(np.float32)
    layer = make(lib, model)
    if lib == "torch":
        import torch
        if not os.path.exists(npz):
            np.savez(npz, **{k: v.numpy() for k, v in layer.state_dict().items()})
        x = torch.tensor(x_np, requires_grad=True)
        no_grad = torch.no_grad
    else:
        import chainrule as cr
        weights = np.load(npz)
        for name, p in layer.named_parameters():
            p.data[...] = weights[name]
        x = cr.tensor(x_np, requires_grad=True)
        no_grad = cr.no_grad
    params = list(layer.parameters())

    def forward():
        out = layer(x)
        return out[0] if model == "lstm" else out

    def step():
        out = forward()
        (out * out).mean().backward()
        x.grad = None
        for p in params:
            p.grad = None

    def eval_forward():
        layer.eval()
        with no_grad():
            out = forward()
        layer.train()
        return np.asarray(out.detach().numpy() if lib == "torch" else out.data)

    return step, eval_forward


def worker(lib: str, npz: str, model: str, loops: int, out_npy: str | None) -> dict:
    step, eval_forward = build(lib, npz, model)
    if out_npy:
        np.save(out_npy, eval_forward())
    step()  # warm-up
    best = float("inf")
    for _ in range(loops):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return {"ms": best * 1e3}


def profile(npz: str, model: str) -> None:
    import cProfile
    import pstats

    step, _ = build("cr", npz, model)
    from chainrule.core.primitive import PRIMITIVES
    step()
    total, calls = collections.Counter(), collections.Counter()
    originals = {n: p.impl for n, p in PRIMITIVES.items()}
    for name, prim in PRIMITIVES.items():
        def timed(*a, _f=prim.impl, _n=name, **k):
            t0 = time.perf_counter()
            r = _f(*a, **k)
            total[_n] += time.perf_counter() - t0
            calls[_n] += 1
            return r
        prim.impl = timed
    n = 5
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    wall = (time.perf_counter() - t0) / n * 1e3
    for name, f in originals.items():
        PRIMITIVES[name].impl = f
    inside = sum(total.values()) / n * 1e3
    print(f"\n=== chainrule step: {wall:.1f} ms, {inside:.1f} ms inside primitive kernels "
          f"({100 * inside / wall:.0f}%), the rest is Python (dispatch, tape, engine) ===")
    for name, t in total.most_common(12):
        print(f"  {name:14s} {t / n * 1e3:7.2f} ms  {calls[name] // n:4d} calls")
    prof = cProfile.Profile()
    prof.runcall(lambda: [step() for _ in range(n)])
    print(f"\n=== cProfile: {n} steps, by tottime ===")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(15)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loops", type=int, default=10, help="timed steps per process")
    ap.add_argument("--model", choices=["encoder", "lstm"], default="encoder",
                    help="the encoder block (default) or LSTM(128, 128) on the same input")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--worker", choices=["cr", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--npz", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker and args.profile:
        profile(args.npz, args.model)
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, args.npz, args.model, args.loops, args.out)))
        return 0

    one_env = {**os.environ, **{v: "1" for v in ONE_THREAD_ENV}}
    times = collections.defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="chainrule-tbench-") as tmp:
        npz = os.path.join(tmp, "weights.npz")
        jobs = [(lib, one) for one in (False, True) for lib in ("torch", "cr")]
        for r in range(args.repeats):
            for lib, one in jobs if r % 2 == 0 else jobs[::-1]:
                out = os.path.join(tmp, lib + ".npy") if r == 0 and not one else None
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--npz", npz,
                       "--model", args.model, "--loops", str(args.loops)] + \
                    (["--out", out] if out else [])
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      env=one_env if one else None)
                if proc.returncode:
                    sys.exit(f"worker {lib} failed:\n{proc.stderr}")
                times[(lib, one)].append(json.loads(proc.stdout.splitlines()[-1])["ms"])
        diff = np.abs(np.load(os.path.join(tmp, "cr.npy")) -
                      np.load(os.path.join(tmp, "torch.npy"))).max()
        what = (f"LSTM({D_MODEL}, {D_MODEL})" if args.model == "lstm" else
                f"TransformerEncoderLayer({D_MODEL}, {NHEAD}, {FF})")
        print(f"{what}, batch {BATCH}, seq {SEQ}, float32, train step (fwd + bwd); eval "
              f"outputs max |cr - torch| = {diff:.1e}")
        print(f"best of {args.loops} steps per process, {args.repeats} processes per row\n")
        print(f"{'threads':10s} {'chainrule ms (min/median)':>27s} "
              f"{'PyTorch ms (min/median)':>25s} {'ratio of mins':>14s}")
        for one in (False, True):
            c, t = times[("cr", one)], times[("torch", one)]
            print(f"{'1' if one else 'default':10s} {min(c):12.1f} / {statistics.median(c):8.1f}"
                  f"   {min(t):10.1f} / {statistics.median(t):8.1f}"
                  f"   {min(c) / min(t):10.2f}x")
        if args.profile:  # one thread: multi-threaded BLAS stalls on a busy shared machine
            subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", "cr",
                            "--npz", npz, "--model", args.model, "--profile"], env=one_env,
                           check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
