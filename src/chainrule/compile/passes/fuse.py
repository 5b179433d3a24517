"""Elementwise fusion: maximal groups of elementwise equations become one equation.

Forward, backward and optimizer-update chains alike are mostly elementwise ops over
equal shapes; run one by one, each reads and writes whole arrays. This pass groups
them: every elementwise equation (``codegen.OPS``: the unary and binary arithmetic,
transcendental, comparison and logical primitives, ``where``, ``cast``) joins the
group of an equation whose value it reads, when both have the same shape, and a
group of one stays as it was. The group becomes ONE equation whose primitive is a
``codegen.FusedGroup``: a kernel (numba or NumPy, see ``compile/codegen``) writes every
group value that is used outside the group (its outputs) in a single sweep.

``broadcast_to`` is not a member but is seen through: a member that reads a broadcast
view reads the smaller array and the kernel indexes it (a bias, a scalar, a row of
statistics). A broadcast equation that no one else reads is dropped.

No cycles. A group must be convex: no path may leave it through a non-member and come
back. For every value the pass keeps a bitset of the groups it depends on (group ids
are bits; a merged group owns the bits of its parts), so an equation joins (or merges)
candidate groups only if none of its other operands, and none of the other candidates'
outside inputs, already depends on them. Finally the equations are put back in an
order that respects every dependency (groups placed by their first member).
"""
from __future__ import annotations

import heapq

import numpy as np

from ...core.primitive import PRIMITIVES
from ..codegen import FusedGroup, fusible
from ..ir import Eqn, Graph, Var, constant

__all__ = ["fuse"]

UNIFORM_CHECK = 1 << 16  # the largest constant checked for being one repeated value


class _Group:
    __slots__ = ("members", "mask", "shape", "ext", "dep")

    def __init__(self, bit: int, shape: tuple):
        self.members: list = []  # equation indices
        self.mask = bit
        self.shape = shape
        self.ext: list = []  # operands of members defined outside the group
        self.dep = 0  # the groups its outside operands depend on (grows as members join)


def fuse(graph: Graph, target: str | None = None) -> Graph:
    """Fuse maximal elementwise groups (see the module docstring). ``target`` names the
    kernel target (``"numba"``, ``"numpy"``, ``"auto"``; default: the
    ``CHAINRULE_FUSION_TARGET`` environment variable, else auto)."""
    eqns = graph.eqns
    defs = {e.out.id: i for i, e in enumerate(eqns)}
    bcast = PRIMITIVES["broadcast_to"]

    def base(v: Var) -> Var:
        i = defs.get(v.id)
        while i is not None and eqns[i].prim is bcast:
            v = eqns[i].ins[0]
            i = defs.get(v.id)
        return v

    reach: dict = {}  # Var id -> the groups (bits) it depends on, its own included
    owner: list = [None] * len(eqns)
    groups: list = []

    def inside(v: Var, chosen: list) -> bool:
        i = defs.get(v.id)
        return i is not None and owner[i] is not None and any(owner[i] is g for g in chosen)

    bit_group: dict = {}  # bit index -> the group that owns it now
    # A value's ``reach`` already holds the dependencies its groups had when it was made
    # (every member reads an earlier member, so it depends on what they depend on). Only
    # groups that gained dependencies later ("grown": a member joined with new outside
    # operands, or groups merged) need following, and only those are expanded.
    grown = 0
    memo: dict = {}  # closure results, valid until a group grows

    def closure(bits: int) -> int:
        """Every group reachable from ``bits``: a group depends on everything its outside
        operands depend on, including what members that joined later brought in."""
        done = memo.get(bits)
        if done is not None:
            return done
        seen, frontier = bits, bits & grown
        expanded = 0
        while frontier:
            expanded |= frontier
            new = 0
            while frontier:
                low = frontier & -frontier
                frontier ^= low
                new |= bit_group[low.bit_length() - 1].dep
            seen |= new
            frontier = new & grown & ~expanded
        memo[bits] = seen
        return seen

    def outside(vs, chosen: list) -> int:
        """The groups the operands ``vs`` not computed by ``chosen`` depend on."""
        bits = 0
        for v in vs:
            if not inside(v, chosen):
                bits |= reach.get(v.id, 0)
        return closure(bits)  # the closure of a union is the union of the closures

    def joinable(ops: list, chosen: list, mask: int) -> bool:
        if outside(ops, chosen) & mask:
            return False
        for g in chosen:
            others = mask & ~g.mask
            if others and outside(g.ext, chosen) & others:
                return False
        return True

    for i, e in enumerate(eqns):
        r = 0
        for v in e.ins:
            r |= reach.get(v.id, 0)
        if not fusible(e):
            reach[e.out.id] = r
            continue
        ops = [base(v) for v in e.ins]
        cands: list = []
        for v in ops:
            j = defs.get(v.id)
            g = owner[j] if j is not None else None
            if g is not None and g.shape == e.out.shape and all(g is not c for c in cands):
                cands.append(g)
        chosen: list = []
        mask = 0
        for g in cands:
            if joinable(ops, chosen + [g], mask | g.mask):
                chosen.append(g)
                mask |= g.mask
        if chosen:
            g = chosen[0]
            for h in chosen[1:]:
                g.members += h.members
                g.ext += h.ext
                g.mask |= h.mask
                g.dep |= h.dep
                for j in h.members:
                    owner[j] = g
                groups.remove(h)
            b = g.mask
            while b:  # its bits now name the merged group
                low = b & -b
                b ^= low
                bit_group[low.bit_length() - 1] = g
        else:
            g = _Group(1 << i, e.out.shape)
            bit_group[i] = g
            groups.append(g)
        g.members.append(i)
        new_ext = [v for v in ops if not inside(v, [g])]
        g.ext += new_ext
        dep = g.dep
        for v in new_ext:
            dep |= reach.get(v.id, 0)
        dep &= ~g.mask
        if chosen and dep != g.dep or len(chosen) > 1:
            grown |= g.mask  # an existing group now depends on more (or groups merged)
            memo.clear()
        g.dep = dep
        owner[i] = g
        reach[e.out.id] = r | g.mask

    fused = [g for g in groups if len(g.members) > 1]
    if not fused:
        return graph
    return _rebuild(graph, fused, base, target)


def _rebuild(graph: Graph, fused: list, base, target) -> Graph:
    eqns = graph.eqns
    readers: dict = {}
    for i, e in enumerate(eqns):
        for v in e.ins:
            readers.setdefault(v.id, set()).add(i)
    outputs = {v.id for v in graph.outputs}
    consts: dict = {}
    node_of: dict = {}  # equation index -> node index
    nodes: list = []    # (first equation index, Eqn)
    for g in fused:
        g.members.sort()
        member_set = set(g.members)
        made_here = {eqns[i].out.id for i in g.members}
        operand, inputs, seen = {}, [], {}
        for i in g.members:
            for v in eqns[i].ins:
                src = base(v)
                if src.id in made_here:
                    operand[v.id] = src
                    continue
                src = _compact(src, consts)
                operand[v.id] = src
                if src.id not in seen:
                    seen[src.id] = src
                    inputs.append(src)
        outs = [eqns[i].out for i in g.members
                if eqns[i].out.id in outputs or readers.get(eqns[i].out.id, set()) - member_set]
        for i in g.members:
            node_of[i] = len(nodes)
        if not outs:  # nothing reads the group: dead code, dropped
            continue
        group = FusedGroup([eqns[i] for i in g.members], inputs, operand, outs,
                           eqns[g.members[0]].out.shape, target)
        nodes.append((g.members[0], Eqn(group, tuple(inputs), {}, outs[0])))
    for i, e in enumerate(eqns):
        if i not in node_of:
            node_of[i] = len(nodes)
            nodes.append((i, e))
    return graph.replace(eqns=_order(_drop_dead_broadcasts(nodes, graph), graph),
                         meta={**graph.meta, "fused_groups": len(fused)})


def _compact(v: Var, consts: dict) -> Var:
    """A constant operand as the smallest array that broadcasts back to it (one value:
    0-d), so the kernel reads it once instead of a whole array."""
    if v.const is None or v.const.size <= 1:
        return v
    c = v.const
    if 0 in c.strides:
        c = c[tuple(slice(0, 1) if st == 0 else slice(None) for st in c.strides)]
    if 1 < c.size <= UNIFORM_CHECK:
        first = c.reshape(-1)[0]
        if (c.view(f"u{c.itemsize}") == first.view(f"u{c.itemsize}")).all() \
                if c.dtype.kind == "f" else (c == first).all():
            c = np.asarray(first)
    if c.shape == v.shape:
        return v
    key = (c.dtype.str, c.shape, c.tobytes())
    if key not in consts:
        consts[key] = constant(np.ascontiguousarray(c))
    return consts[key]


def _drop_dead_broadcasts(nodes: list, graph: Graph) -> list:
    """Remove the broadcast_to equations that only fused members read (they read the
    broadcast's input instead now)."""
    bcast = PRIMITIVES["broadcast_to"]
    used = {v.id for v in graph.outputs}
    keep = []
    for first, e in sorted(nodes, key=lambda n: n[0], reverse=True):
        if e.prim is bcast and e.out.id not in used:
            continue
        keep.append((first, e))
        used.update(v.id for v in e.ins)
    return keep


def _order(nodes: list, graph: Graph) -> list:
    """The equations in an order where each value is defined before it is read, as
    close to the original order as that allows (Kahn's algorithm, earliest first)."""
    made = {}
    for n, (_, e) in enumerate(nodes):
        for v in getattr(e.prim, "outs", None) or (e.out,):
            made[v.id] = n
    waits = [0] * len(nodes)
    after: list = [[] for _ in nodes]
    for n, (_, e) in enumerate(nodes):
        deps = {made[v.id] for v in e.ins if v.id in made}
        waits[n] = len(deps)
        for d in deps:
            after[d].append(n)
    ready = [(nodes[n][0], n) for n in range(len(nodes)) if not waits[n]]
    heapq.heapify(ready)
    out = []
    while ready:
        _, n = heapq.heappop(ready)
        out.append(nodes[n][1])
        for m in after[n]:
            waits[m] -= 1
            if not waits[m]:
                heapq.heappush(ready, (nodes[m][0], m))
    if len(out) != len(nodes):
        raise AssertionError("fuse: the fused graph has a cycle (a bug in the pass)")
    return out
