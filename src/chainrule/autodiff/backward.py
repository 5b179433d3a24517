"""The reverse-mode engine.

It walks the tape iteratively (no recursion, so a chain of 100,000 ops is fine):
count each node's consumers, then process nodes whose consumers are all done,
calling the primitive's vjp rule — under grad mode when ``create_graph`` is set,
so the gradient computation is itself recorded and can be differentiated again.
"""
from __future__ import annotations

import numpy as np

from ..core import dispatch
from ..core import sparse
from ..core.dispatch import Node, user_site
from ..core.sparse import RowSparseGrad
from ..core.tensor import Tensor, _make
from ..ops import creation
from ..ops import elementwise as ew
from . import anomaly

_FREED = ("Trying to backward through the graph a second time: the values '{}' saved for "
          "backward were freed by the first backward. Pass retain_graph=True to the first "
          "backward() or autograd.grad() call if you need to go through it again.")


def _check_saved(node: Node) -> None:
    for cell, version, i in node.saved:
        if cell[0] != version:
            what = node.inputs[i] if i >= 0 else _make(node.out)
            where = ("at %s:%d " % node.site) if node.site is not None else ""
            hint = "" if where else (" Run under chainrule.autograd.detect_anomaly() to see "
                                     "where it was saved.")
            raise RuntimeError(
                f"one of the tensors needed for gradient computation has been modified by an "
                f"in-place operation: the {'output' if i < 0 else f'input {i}'} "
                f"({tuple(what.shape)} {what.dtype}) saved by '{node.prim.name}' {where}is "
                f"at version {cell[0]}, expected version {version}; it was changed by "
                f"{cell[1][0]} at {cell[1][1][0]}:{cell[1][1][1]}. Use an out-of-place op, "
                f"or .clone() before changing it.{hint}")


def _graph(roots, leaf_uses=None):
    """Consumer counts of every node reachable from ``roots`` (iterative DFS); with
    ``leaf_uses`` (a dict), also the number of nodes that read each leaf."""
    deps = {}
    stack = list(roots)
    seen = set(roots)
    while stack:
        node = stack.pop()
        for p in node.parents:
            if p.__class__ is Node:
                deps[p] = deps.get(p, 0) + 1
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
            elif p is not None and leaf_uses is not None:
                leaf_uses[p] = leaf_uses.get(p, 0) + 1
    return deps


def _needed(roots, sinks) -> set:
    """Nodes whose vjp leads to a sink (a requested input): iterative post-order DFS."""
    state = {}
    stack = [(r, False) for r in roots]
    while stack:
        node, done = stack.pop()
        if done:
            state[node] = any(p is not None and (p in sinks or state.get(p, False))
                              for p in node.parents)
        elif node not in state:
            state[node] = False
            stack.append((node, True))
            stack.extend((p, False) for p in node.parents
                         if p.__class__ is Node and p not in state)
    return {n for n, v in state.items() if v}


def reaches_outside(outputs, inputs) -> bool:
    """Whether the graph of ``outputs`` reaches a leaf that requires grad other than the
    leaves among ``inputs`` (an input with history counts: its history is outside). Then
    the gradients depend on tensors of an outer level, and a transform must record them
    (``create_graph``) for that level to differentiate them."""
    stop = {t for t in inputs if t._node is None}
    stack = [t._node for t in outputs if isinstance(t, Tensor) and t._node is not None]
    seen = set(stack)
    while stack:
        for p in stack.pop().parents:
            if p is None or p in stop or p in seen:
                continue
            if p.__class__ is not Node:
                return True  # a leaf of an outer level
            seen.add(p)
            stack.append(p)
    return False


def run_backward(roots, root_grads, retain_graph, create_graph, sinks=None,
                 on_leaf=None) -> dict:
    """Propagate ``root_grads`` from ``roots`` to the leaves.

    Returns the total gradient of every leaf reached (keyed by the leaf Tensor), and
    of every key in ``sinks`` (leaf Tensors or Nodes) when ``sinks`` is given; then
    only the part of the graph that leads to a sink is computed. With ``on_leaf``, each
    leaf's total gradient (after its hooks) is handed to ``on_leaf(leaf, g)`` as soon as
    its last consumer is done, as PyTorch's AccumulateGrad does, and is not returned:
    backward() then never holds every parameter's new gradient at once.
    """
    grads = {}
    leaves = {}
    for t, g in zip(roots, root_grads):
        key = t._node if t._node is not None else t
        store = grads if t._node is not None else leaves
        store[key] = g if key not in store else ew.add(store[key], g)
    root_nodes = list(dict.fromkeys(t._node for t in roots if t._node is not None))
    leaf_uses = {} if on_leaf is not None else None
    deps = _graph(root_nodes, leaf_uses)
    needed = None if sinks is None else _needed(root_nodes, sinks)
    captured = {}
    regions = set()
    ready = [n for n in root_nodes if n not in deps]
    prev_mode = dispatch._mode.grad
    dispatch._mode.grad = bool(create_graph)
    try:
        while ready:
            node = ready.pop()
            g = grads.pop(node, None)
            if g is not None:
                if node.hooks is not None or node.retain is not None or sinks is not None:
                    g = _visit(node, g, captured, sinks)
                if needed is None or node in needed:
                    if node.lazy is not None:  # made inside checkpoint(): recompute
                        regions.add(node.lazy)
                        node.lazy.fill()
                    if node.inputs is None:
                        raise RuntimeError(_FREED.format(node.prim.name))
                    _propagate(node, g, grads, leaves)
            for p in node.parents:
                if p.__class__ is Node:
                    left = deps[p] - 1
                    deps[p] = left
                    if left == 0:
                        ready.append(p)
                elif leaf_uses and p is not None:
                    left = leaf_uses[p] - 1
                    leaf_uses[p] = left
                    if left == 0 and p in leaves:
                        on_leaf(p, _leaf_hooks(p, leaves.pop(p)))
            if not retain_graph:
                if node.lazy is not None:  # recomputed values, used: drop them now
                    if node.lazy.filled:
                        node.lazy.adopt_again(node)
                elif node.saved:  # free saved values; nodes that saved nothing stay
                    node.inputs = node.out = None  # usable, as in PyTorch
    finally:
        dispatch._mode.grad = prev_mode
        if not retain_graph:
            for region in regions:  # drop recomputed values: a later backward recomputes
                region.release()
    for leaf, g in leaves.items():
        g = _leaf_hooks(leaf, g)
        if on_leaf is not None:
            on_leaf(leaf, g)
        else:
            leaves[leaf] = g
    if on_leaf is None:
        captured.update({k: v for k, v in leaves.items() if sinks is None or k in sinks})
    return captured


def _leaf_hooks(leaf, g):
    if leaf._hooks:
        for hook in leaf._hooks:
            r = hook(g)
            g = g if r is None else r
    return g


def _visit(node: Node, g: Tensor, captured: dict, sinks):
    if node.hooks:
        for hook in node.hooks:
            r = hook(g)
            g = g if r is None else r
    if node.retain is not None:
        t = node.retain()
        if t is not None:
            t.grad = g if dispatch._mode.grad else g.detach()
    if sinks is not None and node in sinks:
        captured[node] = g
    return g


def _propagate(node: Node, g: Tensor, grads: dict, leaves: dict) -> None:
    if node.saved:
        _check_saved(node)
    out = _make(node.out, node) if node.out is not None else None
    if anomaly._depth[0]:
        anomaly._current[0] = node
        try:
            gins = node.prim.vjp(g, out, *node.inputs, **node.params)
        finally:
            anomaly._current[0] = None
        anomaly.check_gradient(node, g, gins)
    else:
        gins = node.prim.vjp(g, out, *node.inputs, **node.params)
    for p, gi, inp in zip(node.parents, gins, node.inputs):
        if p is None or gi is None:
            continue
        data = gi.data if gi.__class__ is not RowSparseGrad else gi
        if data.shape != inp.shape or data.dtype != inp.dtype:
            raise RuntimeError(
                f"internal error in the vjp rule of '{node.prim.name}': gradient "
                f"{tuple(gi.shape)} {gi.dtype} for an input of {tuple(inp.shape)} {inp.dtype}")
        store = grads if p.__class__ is Node else leaves
        prev = store.get(p)
        store[p] = gi if prev is None else _plus(prev, gi)


def _plus(prev, g):
    """``prev + g`` for two gradients of one input (sparse + sparse stays sparse)."""
    if prev.__class__ is RowSparseGrad or g.__class__ is RowSparseGrad:
        return sparse.accumulate(prev, g)
    return ew.add(prev, g)


# ------------------------------------------------------------------ public API

def _as_list(x):
    if x is None:
        return None
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _root_grads(outputs, grad_outputs, op):
    grads = []
    for i, t in enumerate(outputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"{op}: element {i} of the outputs does not require grad and "
                               f"has no grad_fn, at {user_site()}")
        g = None if grad_outputs is None else grad_outputs[i]
        if g is None:
            if t.data.size != 1:
                raise RuntimeError(
                    f"{op}: grad can be implicitly created only for scalar outputs; got an "
                    f"output of shape {tuple(t.shape)}: pass gradient= (a tensor of that "
                    f"shape), at {user_site()}")
            g = creation.ones(t.shape, dtype=t.dtype)  # (a constant under jit)
        else:
            g = g if isinstance(g, Tensor) else Tensor(np.asarray(g, dtype=t.dtype))
            if g.shape != t.shape:
                raise RuntimeError(
                    f"{op}: gradient of shape {tuple(g.shape)} does not match the output "
                    f"shape {tuple(t.shape)}, at {user_site()}")
            if g.dtype != t.dtype:
                g = ew.cast(g, t.dtype)
        grads.append(g)
    return grads


def _owned(g: Tensor, taken: set) -> Tensor:
    """``g`` if it may become a ``.grad`` as is, else a private copy."""
    if id(g) in taken or g.data.base is not None or not g.data.flags.writeable:
        g = _make(np.array(g.data)) if g._node is None else ew.mul(g, 1)
    taken.add(id(g))
    return g


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves (or of
    ``inputs`` only, when given)."""
    outputs = _as_list(tensors)
    grads = _root_grads(outputs, _as_list(grad_tensors), "backward")
    if retain_graph is None:
        retain_graph = create_graph
    dispatch.note_backward()
    targets = _as_list(inputs)
    sinks = None
    if targets is not None:
        sinks = {t._node if t._node is not None else t for t in targets}
    taken = {id(g) for g in grads}
    if targets is None:  # every leaf, each accumulated as soon as its gradient is complete
        run_backward(outputs, grads, retain_graph, create_graph,
                     on_leaf=lambda t, g: _accumulate(t, g, create_graph, taken))
        return
    result = run_backward(outputs, grads, retain_graph, create_graph, sinks)
    for t in targets:
        g = result.get(t._node if t._node is not None else t)
        if g is not None:
            _accumulate(t, g, create_graph, taken)


def _accumulate(t: Tensor, g, create_graph: bool, taken: set) -> None:
    """Add ``g`` into ``t.grad`` (in place when nothing records or traces it)."""
    if g.__class__ is RowSparseGrad or t.grad.__class__ is RowSparseGrad:
        g = g if create_graph else g.detach()
        t.grad = g if t.grad is None else _plus(t.grad, g)
        return
    if not create_graph and g._node is not None:
        g = g.detach()
    if t.grad is None:
        t.grad = _owned(g, taken)
    elif create_graph or t.grad._node is not None or dispatch._interpreters:
        t.grad = ew.add(t.grad, g)  # functional: recorded, or seen by interpreters
    else:
        np.add(t.grad.data, g.data, out=t.grad.data)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False, materialize_grads=False):
    """The gradients of ``outputs`` with respect to ``inputs``, returned as a tuple
    (``.grad`` fields are left untouched)."""
    outs = _as_list(outputs)
    ins = _as_list(inputs)
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad, at {user_site()}")
    grads = _root_grads(outs, _as_list(grad_outputs), "grad")
    if retain_graph is None:
        retain_graph = create_graph
    keys = [t._node if t._node is not None else t for t in ins]
    result = run_backward(outs, grads, retain_graph, create_graph, set(keys))
    res = []
    for i, (t, k) in enumerate(zip(ins, keys)):
        g = result.get(k)
        if g is None:
            if materialize_grads:
                g = creation.zeros(t.shape, dtype=t.dtype)
            elif not allow_unused:
                raise RuntimeError(
                    f"grad: input {i} ({tuple(t.shape)} {t.dtype}) was not used in the "
                    f"graph of the outputs; pass allow_unused=True to get None for it")
        res.append(g)
    return tuple(res)
