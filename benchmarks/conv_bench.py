"""Convolution and pooling, chainrule against PyTorch: forward + backward per layer of a
small CNN (conv16-pool-conv32-pool-fc on 1x28x28, batch 64) and its whole training step.

    python benchmarks/conv_bench.py            # both frameworks, each in fresh processes
    python benchmarks/conv_bench.py --only chainrule --case conv2

Each case runs in its own process (the frameworks alternate); the time reported is the
minimum over repeats, in milliseconds, which is the least noisy statistic on a shared
machine. chainrule tunes glibc's allocator at import (``CHAINRULE_MALLOC_TUNE=0`` turns
that off); PyTorch's process runs as shipped, unless glibc's own variables for the same
settings are in the environment (``MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=268435456``, inherited by every process). The header says which.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

N = 64
CASES = {
    "conv1": "conv2d 1->16 3x3 pad 1 on (64, 1, 28, 28), no input grad",
    "conv2": "conv2d 16->32 3x3 pad 1 on (64, 16, 14, 14), with input grad",
    "pool1": "max_pool2d 2 on (64, 16, 28, 28)",
    "pool2": "max_pool2d 2 on (64, 32, 14, 14)",
    "step": "CNN step: conv-relu-pool x2, fc, cross-entropy, backward, SGD",
}


def _data():
    rng = np.random.default_rng(0)
    f = np.float32
    return {
        "x": rng.standard_normal((N, 1, 28, 28)).astype(f),
        "h": rng.standard_normal((N, 16, 14, 14)).astype(f),
        "p1": rng.standard_normal((N, 16, 28, 28)).astype(f),
        "p2": rng.standard_normal((N, 32, 14, 14)).astype(f),
        "w1": (rng.standard_normal((16, 1, 3, 3)) / 3).astype(f),
        "b1": np.zeros(16, f),
        "w2": (rng.standard_normal((32, 16, 3, 3)) / 12).astype(f),
        "b2": np.zeros(32, f),
        "wf": (rng.standard_normal((10, 32 * 49)) / 40).astype(f),
        "bf": np.zeros(10, f),
        "y": rng.integers(0, 10, N),
    }


def _torch(case, d):
    import torch
    import torch.nn.functional as F

    t = {k: torch.from_numpy(v) for k, v in d.items()}
    params = [t[k].requires_grad_() for k in ("w1", "b1", "w2", "b2", "wf", "bf")]

    def layer(fn, x):
        out = fn(x)
        g = torch.ones_like(out)
        return lambda: fn(x).backward(g)

    if case == "conv1":
        return layer(lambda x: F.conv2d(x, t["w1"], t["b1"], padding=1), t["x"])
    if case == "conv2":
        return layer(lambda x: F.conv2d(x, t["w2"], t["b2"], padding=1),
                     t["h"].requires_grad_())
    if case in ("pool1", "pool2"):
        return layer(lambda x: F.max_pool2d(x, 2), t["p" + case[-1]].requires_grad_())

    def step():
        h = F.max_pool2d(F.relu(F.conv2d(t["x"], t["w1"], t["b1"], padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, t["w2"], t["b2"], padding=1)), 2)
        loss = F.cross_entropy(h.flatten(1) @ t["wf"].t() + t["bf"], t["y"])
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 0.01 * p.grad
                p.grad = None
    return step


def _chainrule(case, d):
    import chainrule as cr
    from chainrule.ops import conv as F

    t = {k: cr.Tensor(v) for k, v in d.items()}
    params = [t[k] for k in ("w1", "b1", "w2", "b2", "wf", "bf")]
    for p in params:
        p.requires_grad = True

    def layer(fn, x):
        out = fn(x)
        g = cr.Tensor(np.ones_like(out.data))  # in out's memory layout, as in a real network
        return lambda: fn(x).backward(g)

    if case == "conv1":
        return layer(lambda x: F.conv2d(x, t["w1"], t["b1"], padding=1), t["x"])
    if case == "conv2":
        t["h"].requires_grad = True
        return layer(lambda x: F.conv2d(x, t["w2"], t["b2"], padding=1), t["h"])
    if case in ("pool1", "pool2"):
        x = t["p" + case[-1]]
        x.requires_grad = True
        return layer(lambda x: F.max_pool2d(x, 2), x)

    def step():
        h = F.max_pool2d(cr.relu(F.conv2d(t["x"], t["w1"], t["b1"], padding=1)), 2)
        h = F.max_pool2d(cr.relu(F.conv2d(h, t["w2"], t["b2"], padding=1)), 2)
        loss = cr.cross_entropy(cr.flatten(h, 1) @ t["wf"].T + t["bf"], t["y"])
        loss.backward()
        with cr.no_grad():
            for p in params:
                p -= 0.01 * p.grad
                p.grad = None
    return step


def measure(framework: str, case: str, repeats: int, clock: str) -> dict:
    """The best time of ``repeats`` calls in ms, and whether chainrule tuned malloc."""
    fn = (_torch if framework == "torch" else _chainrule)(case, _data())
    now = time.process_time if clock == "cpu" else time.perf_counter
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        t0 = now()
        fn()
        times.append(now() - t0)
    tuned = sys.modules["chainrule"].backend.MALLOC_TUNED if framework == "chainrule" else None
    return {"ms": min(times) * 1e3, "malloc_tuned": tuned}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("chainrule", "torch"))
    ap.add_argument("--case", choices=tuple(CASES), action="append")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2, help="fresh processes per framework")
    ap.add_argument("--threads", type=int, help="BLAS/torch threads (default: theirs)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process CPU time, steadier on a busy machine (use with "
                         "--threads 1: it adds up the time of all threads)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cases = a.case or list(CASES)
    if a.child:
        if a.threads and a.only == "torch":
            import torch
            torch.set_num_threads(a.threads)
        print(json.dumps(measure(a.only, cases[0], a.repeats, a.clock)))
        return
    frameworks = [a.only] if a.only else ["chainrule", "torch"]
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src"))
    if a.threads:
        env.update(OPENBLAS_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    print(f"min of {a.repeats} repeats x {a.rounds} processes, ms per forward + backward, "
          f"threads: {a.threads or 'default'}, clock: {a.clock}")
    tuned = None
    for case in cases:
        best = {}
        for r in range(a.rounds):
            for fw in frameworks[::(1 if r % 2 == 0 else -1)]:
                out = subprocess.run([sys.executable, __file__, "--child", "--only", fw,
                                      "--case", case, "--repeats", str(a.repeats),
                                      "--clock", a.clock]
                                     + (["--threads", str(a.threads)] if a.threads else []),
                                     capture_output=True, text=True, env=env, check=True)
                res = json.loads(out.stdout)
                best[fw] = min(best.get(fw, float("inf")), res["ms"])
                if fw == "chainrule" and tuned is None:
                    tuned = res["malloc_tuned"]
                    alloc = ("tuned by the MALLOC_* environment"
                             if any(k.startswith("MALLOC_") for k in os.environ) else "as shipped")
                    print(f"chainrule's malloc tuning (chainrule.backend.MALLOC_TUNED): {tuned}; "
                          f"PyTorch's allocator {alloc}")
        cols = "  ".join(f"{fw} {ms:7.3f}" for fw, ms in best.items())
        ratio = f"  ratio {best['chainrule'] / best['torch']:.2f}x" if len(best) == 2 else ""
        print(f"{case:6s} {cols}{ratio}   ({CASES[case]})")


if __name__ == "__main__":
    main()
