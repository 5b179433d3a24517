"""Pytrees: nested tuples, lists, dicts (and namedtuples) with tensors at the leaves.

The transforms (``grad``, ``jvp``, ``jacrev`` ...) and ``jit`` take and return pytrees:
``tree_flatten`` turns one into a flat list of leaves and a hashable ``TreeDef`` that
``tree_unflatten`` rebuilds it from. Dicts keep their insertion order (a module's
parameter dict comes back in the order it went in). ``None`` is an empty subtree, as in
JAX; anything else that is not a container is a leaf.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["TreeDef", "tree_flatten", "tree_unflatten", "tree_map", "tree_leaves",
           "tree_structure"]


class TreeDef:
    """The shape of a pytree without its leaves: hashable and comparable, so it can be a
    cache key. ``kind`` is 'leaf', 'none', a container type; ``meta`` the dict keys."""

    __slots__ = ("kind", "meta", "children", "num_leaves", "_hash")

    def __init__(self, kind, meta, children: tuple):
        self.kind = kind
        self.meta = meta
        self.children = children
        self.num_leaves = 1 if kind == "leaf" else sum(c.num_leaves for c in children)
        self._hash = hash((kind, meta, children))

    def __eq__(self, other) -> bool:
        return (isinstance(other, TreeDef) and self._hash == other._hash
                and self.kind == other.kind and self.meta == other.meta
                and self.children == other.children)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        if self.meta is not None and isinstance(self.kind, type) and issubclass(self.kind, dict):
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.meta, self.children))
            return "{" + inner + "}"
        inner = ", ".join(repr(c) for c in self.children)
        name = self.kind.__name__
        return f"[{inner}]" if name == "list" else f"{'' if name == 'tuple' else name}({inner})"


_LEAF = TreeDef("leaf", None, ())
_NONE = TreeDef("none", None, ())


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def tree_flatten(tree: Any, is_leaf: Callable | None = None) -> tuple[list, TreeDef]:
    """``(leaves, treedef)``: the leaves in depth-first order and the structure."""
    leaves: list = []
    return leaves, _flatten(tree, leaves, is_leaf)


def _flatten(x, leaves: list, is_leaf) -> TreeDef:
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return _LEAF
    if x is None:
        return _NONE
    t = type(x)
    if t is tuple or t is list or _is_namedtuple(x):
        return TreeDef(t, None, tuple(_flatten(c, leaves, is_leaf) for c in x))
    if isinstance(x, dict):
        keys = tuple(x.keys())
        return TreeDef(t, keys, tuple(_flatten(x[k], leaves, is_leaf) for k in keys))
    leaves.append(x)
    return _LEAF


def tree_unflatten(treedef: TreeDef, leaves) -> Any:
    """Rebuild the pytree that ``treedef`` describes from a sequence of leaves."""
    it = iter(leaves)
    out = _unflatten(treedef, it)
    if next(it, _SENTINEL) is not _SENTINEL:
        raise ValueError(f"tree_unflatten: more leaves than the {treedef.num_leaves} the "
                         f"structure {treedef} holds")
    return out


_SENTINEL = object()


def _unflatten(td: TreeDef, it):
    if td.kind == "leaf":
        x = next(it, _SENTINEL)
        if x is _SENTINEL:
            raise ValueError("tree_unflatten: fewer leaves than the structure holds")
        return x
    if td.kind == "none":
        return None
    children = [_unflatten(c, it) for c in td.children]
    if td.meta is not None:
        return td.kind(zip(td.meta, children))
    if td.kind is tuple or td.kind is list:
        return td.kind(children)
    return td.kind(*children)  # a namedtuple


def tree_leaves(tree: Any, is_leaf: Callable | None = None) -> list:
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree: Any, is_leaf: Callable | None = None) -> TreeDef:
    return tree_flatten(tree, is_leaf)[1]


def tree_map(fn: Callable, tree: Any, *rest: Any, is_leaf: Callable | None = None) -> Any:
    """Apply ``fn`` leaf by leaf; ``rest`` are trees of the same structure whose leaves
    become further arguments."""
    leaves, td = tree_flatten(tree, is_leaf)
    others = []
    for r in rest:
        rl, rtd = tree_flatten(r, is_leaf)
        if rtd != td:
            raise ValueError(f"tree_map: the trees differ in structure: {td} vs {rtd}")
        others.append(rl)
    return tree_unflatten(td, [fn(*xs) for xs in zip(leaves, *others)])
