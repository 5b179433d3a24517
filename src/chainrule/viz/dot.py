"""Graphviz DOT text for a ``Graph``, and running Graphviz's ``dot`` program on it."""
from __future__ import annotations

import shutil
import subprocess

from .graph import FILL, HIGHLIGHT_FILL, HIGHLIGHT_STROKE

INSTALL_HINT = ("install Graphviz (apt install graphviz, brew install graphviz or "
                "conda install graphviz) so that `dot` is on PATH")


def _q(s: str) -> str:
    """A DOT quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node(node) -> str:
    attrs = {"label": '"' + "\\n".join(_q(line)[1:-1] for line in node.lines) + '"',
             "fillcolor": f'"{FILL[node.kind]}"'}
    if node.kind == "group":
        attrs["style"] = '"rounded,filled,dashed"'
    if node.highlight:
        attrs.update(fillcolor=f'"{HIGHLIGHT_FILL}"', color=f'"{HIGHLIGHT_STROKE}"',
                     penwidth="2.5")
    return f"{_q(node.id)} [{', '.join(f'{k}={v}' for k, v in attrs.items())}];"


def graph_to_dot(graph) -> str:
    """DOT text for ``graph``: boxes top to bottom, clusters as ``subgraph cluster_<k>``."""
    graph.check()
    out = ["digraph chainrule {",
           '  graph [rankdir=TB, fontname="monospace", fontsize=12'
           + (f", label={_q(graph.caption)}, labelloc=b, labeljust=l" if graph.caption else "")
           + "];",
           '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=11, '
           'color="#555555"];',
           '  edge [color="#444444", arrowsize=0.7];']
    members = {}
    for node in graph.nodes:
        members.setdefault(node.cluster, []).append(node)
    for node in members.get(None, []):
        out.append("  " + _node(node))
    for k, name in enumerate(graph.clusters()):
        out.append(f"  subgraph cluster_{k} {{")
        out.append(f'    label={_q(name)}; style="rounded,dashed"; color="#c08a20"; '
                   f'bgcolor="#fff8e8";')
        out.extend("    " + _node(node) for node in members[name])
        out.append("  }")
    out.extend(f"  {_q(s)} -> {_q(d)};" for s, d in graph.edges)
    out.append("}")
    return "\n".join(out) + "\n"


def run_dot(text: str, fmt: str, caller: str) -> bytes:
    """Graphviz's output for DOT ``text`` in format ``fmt`` ("svg", "png", "pdf")."""
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(f"{caller}: Graphviz's `dot` program was not found; {INSTALL_HINT}")
    proc = subprocess.run([exe, f"-T{fmt}"], input=text.encode(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{caller}: `dot -T{fmt}` failed with exit code {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
