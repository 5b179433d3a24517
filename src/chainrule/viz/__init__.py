"""Draw the autograd graph behind tensors, like torchviz: DOT, SVG or PNG.

    from chainrule import viz
    loss = model(x).pow(2).mean()
    viz.render(loss, "graph.svg", params=dict(model.named_parameters()))

Op boxes show the op, its output's shape and dtype and the bytes it saved for backward;
leaves show their parameter name. SVG comes from Graphviz's ``dot`` when it is installed,
else from a pure-Python layered layout; PNG and PDF need Graphviz.

Every function also accepts a ``viz.Graph`` (boxes, edges, clusters) in place of the
tensors, so other graph sources can be drawn the same way, and a compiled graph
(``jit(f).lower(x).graph``, see ``viz.compiled_graph``), where ``highlight`` marks
equations.
"""
from __future__ import annotations

import os
import shutil
from typing import Optional

from .compiled import compiled_graph, find_nonfinite, is_compiled_graph
from .dot import INSTALL_HINT, graph_to_dot, run_dot
from .graph import Graph, Highlight, VNode, autograd_graph, format_bytes
from .layered import Layout, layout
from .svg import graph_to_svg

__all__ = ["Graph", "VNode", "Layout", "autograd_graph", "compiled_graph", "find_nonfinite",
           "layout", "to_dot", "to_svg", "render", "format_bytes"]

ENGINES = ("auto", "graphviz", "python")


def _graph(outputs, params, show_saved, highlight, caller) -> Graph:
    if isinstance(outputs, Graph):
        if params is not None or highlight is not None or not show_saved:
            raise TypeError(f"{caller}: params, show_saved and highlight apply to tensors; "
                            f"a viz.Graph is drawn as it is (set VNode.highlight instead)")
        return outputs
    if is_compiled_graph(outputs):
        if params is not None:
            raise TypeError(f"{caller}: params label tensors; a compiled graph's inputs are "
                            f"named with viz.compiled_graph(graph, names=...)")
        return compiled_graph(outputs, highlight)
    return autograd_graph(outputs, params, show_saved, highlight)


def to_dot(outputs, params: Optional[dict] = None, show_saved: bool = True,
           highlight: Highlight = None) -> str:
    """Graphviz DOT text for the graph behind ``outputs`` (a Tensor, a list of Tensors,
    a ``viz.Graph``, or a compiled graph drawn by ``compiled_graph``).

    ``params`` maps names to leaf tensors (``dict(model.named_parameters())``) to label
    them; ``show_saved`` adds the bytes each op saved for backward (and their total as a
    caption); ``highlight`` (a Node, a Tensor, a collection of them, or a predicate on
    Nodes) draws those boxes in red: anomaly mode uses it to show the op that made a NaN.
    """
    return graph_to_dot(_graph(outputs, params, show_saved, highlight, "to_dot"))


def to_svg(outputs, params: Optional[dict] = None, show_saved: bool = True,
           highlight: Highlight = None, engine: str = "auto") -> str:
    """An SVG document drawing the graph behind ``outputs`` (arguments as in ``to_dot``).

    ``engine``: "graphviz" runs ``dot -Tsvg``; "python" uses the built-in layered layout;
    "auto" (the default) uses Graphviz when ``dot`` is on PATH, else the built-in one.
    """
    if engine not in ENGINES:
        raise ValueError(f"to_svg: engine must be one of {ENGINES}, got {engine!r}")
    graph = _graph(outputs, params, show_saved, highlight, "to_svg")
    if engine == "graphviz" or (engine == "auto" and shutil.which("dot") is not None):
        return run_dot(graph_to_dot(graph), "svg", "to_svg").decode()
    return graph_to_svg(graph)


def render(outputs, path, params: Optional[dict] = None, show_saved: bool = True,
           highlight: Highlight = None, engine: str = "auto") -> str:
    """Write the graph behind ``outputs`` to ``path``, in the format its extension names:
    ``.dot``/``.gv`` (DOT text), ``.svg`` (see ``to_svg`` for ``engine``), ``.png`` or
    ``.pdf`` (these two need Graphviz). Returns the path."""
    if engine not in ENGINES:
        raise ValueError(f"render: engine must be one of {ENGINES}, got {engine!r}")
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".dot", ".gv"):
        data = to_dot(outputs, params, show_saved, highlight).encode()
    elif ext == ".svg":
        data = to_svg(outputs, params, show_saved, highlight, engine).encode()
    elif ext in (".png", ".pdf"):
        if engine == "python" or shutil.which("dot") is None:
            raise RuntimeError(
                f"render: writing {path!r} needs Graphviz's `dot` program, which "
                f"{'engine=python rules out' if engine == 'python' else 'was not found'}; "
                f"{INSTALL_HINT}, or write a .svg (drawn in pure Python) or .dot file")
        data = run_dot(to_dot(outputs, params, show_saved, highlight), ext[1:], "render")
    else:
        raise ValueError(f"render: cannot tell the format of {path!r}; use a .dot, .gv, "
                         f".svg, .png or .pdf file name")
    with open(path, "wb") as f:
        f.write(data)
    return path
