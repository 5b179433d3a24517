"""Primitives: one row per primitive, holding its impl, shape rule, vjp and jvp.

Rule signatures are fixed and pure:

* ``impl(*arrays, **params) -> array``            (the backend computation)
* ``shape(*avals, **params) -> (shape, dtype)``  (abstract evaluation: avals have
  ``.shape`` and ``.dtype``; used by tracing and by the generated tests)
* ``vjp(g, out, *inputs, **params) -> tuple``    (one cotangent per input, ``None``
  for inputs that take no gradient); written in chainrule ops, so it is
  differentiable again
* ``jvp(tangents, out, *inputs, **params) -> tangent``  (``tangents`` holds ``None``
  for inputs with a zero tangent)

``saves`` names the inputs the vjp reads and ``save_out`` whether it reads the
output: the engine keeps exactly those values alive, and checks that nobody
modified them in place before backward uses them.
"""
from __future__ import annotations

from typing import Callable, Optional

PRIMITIVES: dict[str, "Primitive"] = {}


class Primitive:
    __slots__ = ("name", "impl", "shape", "vjp", "jvp", "saves", "save_out", "view")

    def __init__(self, name: str, impl: Callable, shape: Callable,
                 vjp: Optional[Callable] = None, jvp: Optional[Callable] = None, *,
                 saves: tuple = (), save_out: bool = False, view: bool = False):
        self.name = name
        self.impl = impl
        self.shape = shape
        self.vjp = vjp
        self.jvp = jvp
        self.saves = tuple(saves)
        self.save_out = save_out
        self.view = view

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def defprim(name: str, impl: Callable, shape: Callable, vjp=None, jvp=None, **flags) -> Primitive:
    """Register one row of the primitive table and return it."""
    if name in PRIMITIVES:
        raise ValueError(f"primitive {name!r} is already defined")
    prim = Primitive(name, impl, shape, vjp, jvp, **flags)
    PRIMITIVES[name] = prim
    return prim
