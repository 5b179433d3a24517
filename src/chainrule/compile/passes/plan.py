"""Buffer planning: liveness over the final equation list, and buffers reused by size.

The executor already drops each value after its last use. This pass goes further for
the equations that can write into a given array (fused groups, ufunc-based elementwise
primitives, matmul, reductions: ``codegen/into.py``): it assigns each such result a
buffer index, reusing a buffer whose previous value is dead, and the ``Program`` keeps
the buffers from call to call, so a compiled step stops allocating (and page-faulting)
its intermediates. A value takes the smallest dead buffer that holds it, else the
largest dead one, grown (best fit, as greedy arena planners do), else a new buffer. A
ufunc whose operand of the same shape and dtype dies at that equation writes over the
operand in place.

Rules that keep this safe:

* Liveness extends through views. A result that may share memory with an input (the
  view primitives reshape/transpose/broadcast_to/getitem, and any primitive not known
  to return fresh memory, ``into.FRESH``) keeps that input alive as long as itself.
* Graph outputs, and values that a graph output may view, never get a buffer: the
  caller owns them after the call.
* A buffer is reused only after its last reader has run (in-place only as said above).

``graph.meta`` gets ``buffers`` {out Var id: buffer index}, ``buffer_specs``
[(shape, dtype)] (bytes: the executor views a prefix of the buffer at each value's shape
and dtype), and three peak-memory figures in bytes, for the values
the equations create (graph inputs and constants excluded; views count 0):
``peak_bytes_before`` with no reuse at all (every intermediate kept to the end),
``peak_bytes_freed`` for the executor's free-at-last-use baseline, and
``peak_bytes_after`` with this plan (persistent buffers plus the unplanned values alive
at each step). ``memory_report(graph)`` prints them.
"""
from __future__ import annotations

from ..codegen import eqn_outs
from ..codegen.into import IN_PLACE, fresh, impl_into, registered
from ..ir import Graph

__all__ = ["plan", "memory_report", "donations"]


def _liveness(graph: Graph) -> dict:
    """Var id -> index of the last equation that needs it (``len(eqns)`` for the graph's
    outputs), for every value read or made: a value never read dies where it is made,
    and a result that may view an input keeps that input alive as long as itself."""
    eqns = graph.eqns
    end = len(eqns)
    last = {}
    for i, e in enumerate(eqns):
        for o in eqn_outs(e):
            last[o.id] = i
        for v in e.ins:
            last[v.id] = i
    for v in graph.outputs:
        last[v.id] = end
    for i in range(end - 1, -1, -1):  # a possible view keeps its base alive
        e = eqns[i]
        if not fresh(e):
            until = max(last[o.id] for o in eqn_outs(e))
            for v in e.ins:
                if last[v.id] < until:
                    last[v.id] = until
    return last


def plan(graph: Graph) -> Graph:
    """Assign reusable buffers (see the module docstring); a new Graph, same equations."""
    eqns = graph.eqns
    end = len(eqns)
    last = _liveness(graph)
    orders = graph.meta.get("orders", {})

    buffers: dict = {}   # Var id -> buffer index
    sizes: list = []     # buffer index -> nbytes (the largest value it holds)
    free: set = set()    # buffer indices whose value is dead
    expire: dict = {}    # equation index -> [buffer index] released after it runs
    for i, e in enumerate(eqns):
        if impl_into(e) is not None:
            for o in eqn_outs(e):
                if last[o.id] >= end or o.nbytes == 0:
                    continue
                b = _in_place(e, o, i, buffers, last, expire, orders)
                if b is None:
                    b = _best_fit(free, sizes, o.nbytes)
                buffers[o.id] = b
                expire.setdefault(last[o.id], []).append(b)
        free.update(expire.pop(i, []))

    before, freed, after = _peaks(graph, last, buffers, sizes)
    specs = [((n,), "uint8") for n in sizes]
    meta = {**graph.meta, "buffers": buffers, "buffer_specs": specs, "n_buffers": len(specs),
            "peak_bytes_before": before, "peak_bytes_freed": freed, "peak_bytes_after": after}
    return graph.replace(meta=meta)


def donations(graph: Graph, writes: list) -> list:
    """Which writes of captured tensors can be computed straight into the tensor's own
    buffer (as JAX's donated arguments): ``writes`` holds (graph output position, graph
    input position) pairs, the new value of a tensor and its old one. A pair qualifies
    when one elementwise equation makes the new value from the old at the same shape
    and dtype, reading each element before it writes it (a ufunc, or a fused group on
    the numba target), and nothing needs the old value after it (no later reader, no
    view of it alive), and the new value leaves the graph only this once. The caller
    still checks at each call that no one else sees the tensor's buffer."""
    maker = {o.id: (i, e) for i, e in enumerate(graph.eqns) for o in eqn_outs(e)}
    last = _liveness(graph)
    orders = graph.meta.get("orders", {})  # (a tensor's own buffer is C-ordered)
    leaving: dict = {}
    for v in graph.outputs:
        leaving[v.id] = leaving.get(v.id, 0) + 1
    out = []
    for p, q in writes:
        new, old = graph.outputs[p], graph.inputs[q]
        if new.id not in maker or leaving[new.id] != 1:
            continue
        i, e = maker[new.id]
        if (_reads_before_writing(e) and new.shape == old.shape and new.dtype == old.dtype
                and new.id not in orders and any(v is old for v in e.ins)
                and last.get(old.id) == i):
            out.append((p, q))
    return out


def _reads_before_writing(e) -> bool:
    if getattr(e.prim, "target", None) == "numba":  # a fused group's compiled loop
        return True
    return registered(e.prim) and e.prim.name in IN_PLACE and impl_into(e) is not None


def _best_fit(free: set, sizes: list, n: int) -> int:
    """A dead buffer for a value of ``n`` bytes, taken from ``free``: the smallest that
    holds it, else the largest, grown to ``n`` (its earlier values used a prefix), else
    a new one."""
    fits = [b for b in free if sizes[b] >= n]
    if fits:
        b = min(fits, key=lambda b: (sizes[b], b))
    elif free:
        b = max(free, key=lambda b: (sizes[b], -b))
        sizes[b] = n
    else:
        sizes.append(n)
        return len(sizes) - 1
    free.discard(b)
    return b


def _in_place(e, o, i: int, buffers: dict, last: dict, expire: dict, orders: dict):
    """The buffer of an operand that dies at ``e`` and matches ``o`` exactly (shape,
    dtype, memory order), taken over by ``o`` (ufunc-like primitives only), or None."""
    if not registered(e.prim) or e.prim.name not in IN_PLACE:
        return None
    for v in e.ins:
        b = buffers.get(v.id)
        if b is not None and last[v.id] == i and v.shape == o.shape and v.dtype == o.dtype \
                and orders.get(v.id) == orders.get(o.id) and b in expire.get(i, ()):
            expire[i].remove(b)
            return b
    return None


def _owned(e, o) -> int:
    """Bytes a result allocates: 0 for the view primitives."""
    return 0 if getattr(e.prim, "view", False) and registered(e.prim) else o.nbytes


def _peaks(graph: Graph, last: dict, buffers: dict, sizes: list) -> tuple:
    total = 0
    live = live_unplanned = 0
    freed = after = 0
    dying: dict = {}
    for i, e in enumerate(graph.eqns):
        for o in eqn_outs(e):
            n = _owned(e, o)
            total += n
            live += n
            if o.id not in buffers:
                live_unplanned += n
            dying.setdefault(last[o.id], []).append((o.id, n))
        freed = max(freed, live)
        after = max(after, live_unplanned)
        for vid, n in dying.pop(i, []):
            live -= n
            if vid not in buffers:
                live_unplanned -= n
    return total, freed, sum(sizes) + after


def memory_report(graph: Graph) -> str:
    """One line on the planned graph's peak memory (``plan`` must have run)."""
    m = graph.meta
    if "peak_bytes_after" not in m:
        return "no buffer plan (run passes.plan)"
    mib = 1 << 20
    return (f"peak bytes of intermediates and outputs: {m['peak_bytes_before'] / mib:.2f} MiB "
            f"with no reuse, {m['peak_bytes_freed'] / mib:.2f} MiB freeing at last use, "
            f"{m['peak_bytes_after'] / mib:.2f} MiB planned ({m['n_buffers']} buffers for "
            f"{len(m['buffers'])} values)")
