"""The drawing model (nodes, edges, clusters) and its source for eager autograd graphs.

Any graph source (the reverse-mode tape here; the compiler's IR later) builds a
``Graph``; the DOT writer, the layout and the SVG writer read only this model.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Union

from ..core.dispatch import Node
from ..core.tensor import Tensor

KINDS = ("op", "leaf", "output", "group")
# fill colours by kind (torchviz's palette); highlighted nodes are red whatever their kind
FILL = {"op": "#e8e8e8", "leaf": "#cfe3ff", "output": "#c8f0b4", "group": "#ffe3b3"}
HIGHLIGHT_FILL, HIGHLIGHT_STROKE = "#ffd0d0", "#d00000"


@dataclass
class VNode:
    """One box: ``id`` (unique), text ``lines`` (the first is the title), ``kind`` (one of
    ``KINDS``; "group" is one box standing for a whole fused group), the name of the
    ``cluster`` it is drawn inside (or None) and whether it is ``highlight``-ed in red."""

    id: str
    lines: list
    kind: str = "op"
    cluster: Optional[str] = None
    highlight: bool = False


@dataclass
class Graph:
    """Nodes in a deterministic order, edges ``(src_id, dst_id)`` in the direction data
    flows (producer to consumer; several edges may join the same pair) and an optional
    caption drawn under the graph. A node's ``cluster`` names the box drawn around it."""

    nodes: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    caption: Optional[str] = None

    def add_node(self, id: str, lines, kind: str = "op", cluster: Optional[str] = None,
                 highlight: bool = False) -> VNode:
        if kind not in KINDS:
            raise ValueError(f"viz.Graph: node kind must be one of {KINDS}, got {kind!r}")
        node = VNode(id, [str(s) for s in lines], kind, cluster, highlight)
        self.nodes.append(node)
        return node

    def add_edge(self, src: str, dst: str) -> None:
        self.edges.append((src, dst))

    def clusters(self) -> list:
        """Cluster names in order of first appearance."""
        return list(dict.fromkeys(n.cluster for n in self.nodes if n.cluster is not None))

    def check(self) -> None:
        """Raise ValueError for duplicate node ids or edges naming unknown nodes."""
        ids = set()
        for n in self.nodes:
            if n.id in ids:
                raise ValueError(f"viz.Graph: duplicate node id {n.id!r}")
            ids.add(n.id)
        for s, d in self.edges:
            if s not in ids or d not in ids:
                raise ValueError(f"viz.Graph: edge {s!r} -> {d!r} names an unknown node")


# ------------------------------------------------------------ text helpers

def format_bytes(n: int) -> str:
    """``1536 -> '1.5 KiB'``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=4096)  # str(dtype) alone costs microseconds
def describe(shape, dtype) -> str:
    """``'(32, 10) float32'``; ``'shape unknown (freed)'`` when it cannot be known."""
    if shape is None:
        return "shape unknown (freed)"
    return f"{tuple(int(s) for s in shape)} {dtype}"


# ------------------------------------------------------------- eager source

Highlight = Union[None, Iterable, Callable]


def _highlighter(highlight: Highlight) -> Callable:
    if highlight is None:
        return lambda obj: False
    if callable(highlight):  # a predicate on Nodes; leaves are marked by passing them
        return lambda obj: obj.__class__ is Node and highlight(obj)
    items = [highlight] if isinstance(highlight, (Node, Tensor)) else list(highlight)
    ids = set()
    for h in items:  # a Tensor stands for its grad_fn, or for itself when it is a leaf
        ids.add(id(h._node) if isinstance(h, Tensor) and h._node is not None else id(h))
    return lambda obj: id(obj) in ids


def _saved(node: Node):
    """(bytes, [arrays]) the node keeps for its vjp; None when they were freed."""
    if not node.saved:
        return 0, []
    if node.inputs is None and node.out is None:
        return None
    arrays = []
    for _, _, i in node.saved:
        if i < 0:
            if node.out is not None:
                arrays.append(node.out)
        elif node.inputs is not None:
            arrays.append(node.inputs[i].data)
    return sum(a.nbytes for a in arrays), arrays


class _Aval:
    """Shape and dtype, for calling a shape rule."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _shape_rule(node: Node, args):
    try:
        return node.prim.shape(*args, **node.params)
    except Exception:  # a shape rule that needs more than shapes and dtypes
        return None


def _walk(outs):
    """Iterative DFS from the outputs' nodes: (objects in preorder, Nodes in postorder
    (parents first), edges (producer, consumer Node), avals learnt from consumers)."""
    avals = {}  # id(Node) -> (shape, dtype)
    for t in outs:
        if t._node is not None:
            avals.setdefault(id(t._node), (t.shape, t.dtype))
    seen, order, post, edges = set(), [], [], []
    stack = [(t._node if t._node is not None else t, False) for t in reversed(outs)]
    while stack:  # parents pushed in reverse, so parent 0 is visited first
        obj, done = stack.pop()
        if done:
            post.append(obj)
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        order.append(obj)
        if obj.__class__ is not Node:
            continue
        stack.append((obj, True))
        inputs = obj.inputs
        for i, p in enumerate(obj.parents):
            if p is None:
                continue
            edges.append((p, obj))
            if p.__class__ is Node and inputs is not None and id(p) not in avals:
                avals[id(p)] = (inputs[i].shape, inputs[i].dtype)
        stack.extend((p, False) for p in reversed(obj.parents)
                     if p is not None and id(p) not in seen)
    return order, post, edges, avals


def _resolve_avals(post: list, avals: dict) -> None:
    """Fill in the output (shape, dtype) of every Node where it can still be known: its
    saved output, a consumer's saved input, its shape rule on its own saved inputs, or
    (after backward freed those) its shape rule on its parents' outputs."""
    for node in post:
        if id(node) in avals:
            continue
        aval = None
        if node.out is not None:
            aval = node.out.shape, node.out.dtype
        elif node.inputs is not None:
            aval = _shape_rule(node, node.inputs)
        else:
            args = []
            for p in node.parents:  # a parent None (no grad) leaves its shape unknown
                pa = avals.get(id(p)) if p.__class__ is Node else (
                    None if p is None else (p.shape, p.dtype))
                if pa is None:
                    break
                args.append(_Aval(*pa))
            else:
                aval = _shape_rule(node, args)
        if aval is not None:
            avals[id(node)] = (tuple(aval[0]), aval[1])


def autograd_graph(outputs, params: Optional[dict] = None, show_saved: bool = True,
                   highlight: Highlight = None) -> Graph:
    """The reverse-mode graph behind ``outputs`` (a Tensor or a list of them).

    Op boxes show the op (``MatmulBackward``), its output's shape and dtype, and (with
    ``show_saved``) the bytes it keeps for backward; leaf boxes show their name from
    ``params`` (name -> Tensor, e.g. ``dict(model.named_parameters())``) or "input";
    output boxes are added for each output. ``highlight`` is a Node, a Tensor (its
    grad_fn, or itself for a leaf), an iterable of them, or a predicate on Nodes.
    The walk is iterative, so graphs of any depth can be drawn.
    """
    outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    for i, t in enumerate(outs):
        if not isinstance(t, Tensor):
            raise TypeError(f"viz: output {i} is a {type(t).__name__}, expected a Tensor")
    names = {id(t): name for name, t in (params or {}).items()}
    marked = _highlighter(highlight)
    g = Graph()
    order, post, edges, avals = _walk(outs)
    _resolve_avals(post, avals)
    ids = {id(obj): f"n{k}" for k, obj in enumerate(order)}
    total, buffers, freed = 0, set(), 0
    for obj in order:
        if obj.__class__ is Node:
            lines = [obj.name(), describe(*avals.get(id(obj), (None, None)))]
            saved = _saved(obj)
            if saved is None:
                freed += 1
            else:
                for a in saved[1]:
                    if id(a) not in buffers:
                        buffers.add(id(a))
                        total += a.nbytes
            if show_saved and obj.saved:
                lines.append("saved: freed" if saved is None
                             else f"saved {format_bytes(saved[0])}")
            g.add_node(ids[id(obj)], lines, "op", highlight=bool(marked(obj)))
        else:
            g.add_node(ids[id(obj)], [names.get(id(obj), "input"),
                                      describe(obj.shape, obj.dtype)],
                       "leaf", highlight=bool(marked(obj)))
    for k, t in enumerate(outs):
        oid = f"out{k}"
        g.add_node(oid, ["output" if len(outs) == 1 else f"output {k}",
                         describe(t.shape, t.dtype)], "output")
        g.add_edge(ids[id(t._node if t._node is not None else t)], oid)
    for p, node in edges:
        g.add_edge(ids[id(p)], ids[id(node)])
    if show_saved:
        g.caption = (f"saved for backward: {format_bytes(total)} in {len(buffers)} "
                     f"arrays" + (f"; {freed} nodes freed theirs" if freed else ""))
    return g
