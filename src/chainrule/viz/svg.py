"""Pure-Python SVG drawing of a ``Graph`` (used when Graphviz is not installed)."""
from __future__ import annotations

from xml.sax.saxutils import escape

from .graph import FILL, HIGHLIGHT_FILL, HIGHLIGHT_STROKE
from .layered import CHAR_W, LINE_H, MARGIN, PAD_Y, layout

FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
CAPTION_H = 24


def _f(v: float) -> str:
    return f"{v:.1f}"


def _edge_path(pts: list) -> str:
    """Cubic Béziers with vertical tangents through the points; the last segment stops
    short of the box so the arrowhead ends on its border."""
    d = [f"M{_f(pts[0][0])},{_f(pts[0][1])}"]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        k = (y1 - y0) / 2
        d.append(f"C{_f(x0)},{_f(y0 + k)} {_f(x1)},{_f(y1 - k)} {_f(x1)},{_f(y1)}")
    return " ".join(d)


def graph_to_svg(graph) -> str:
    """An SVG document drawing ``graph`` with the layered layout of ``viz.layout``."""
    graph.check()
    lay = layout(graph)
    width = max(lay.width, len(graph.caption or "") * CHAR_W + 2 * MARGIN)
    height = lay.height + (CAPTION_H if graph.caption else 0)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="{FONT}" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker>'
        '</defs>',
        f'<rect width="{_f(width)}" height="{_f(height)}" fill="white"/>',
    ]
    for name, x0, y0, x1, y1 in lay.clusters:
        out.append(
            f'<g class="cluster"><title>{escape(name)}</title>'
            f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(x1 - x0)}" height="{_f(y1 - y0)}" '
            f'rx="10" fill="#fff8e8" stroke="#c08a20" stroke-dasharray="5,3"/>'
            f'<text x="{_f(x0 + 8)}" y="{_f(y0 + 13)}" fill="#8a5a00">{escape(name)}</text></g>')
    for pts in lay.paths:
        out.append(f'<path class="edge" d="{_edge_path(pts)}" fill="none" stroke="#444" '
                   f'stroke-width="1.2" marker-end="url(#arrow)"/>')
    for node, (cx, cy, w, h) in zip(graph.nodes, lay.boxes):
        fill, stroke, sw = FILL[node.kind], "#555", "1"
        cls = f"node {node.kind}"
        if node.highlight:
            fill, stroke, sw, cls = HIGHLIGHT_FILL, HIGHLIGHT_STROKE, "2.5", cls + " highlight"
        x0, y0 = cx - w / 2, cy - h / 2
        out.append(
            f'<g class="{cls}"><title>{escape(node.id)}</title>'
            f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(w)}" height="{_f(h)}" rx="5" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{sw}"'
            + (' stroke-dasharray="6,2"' if node.kind == "group" else "") + '/>')
        text = [f'<text x="{_f(cx)}" y="{_f(y0 + PAD_Y + 11)}" text-anchor="middle">']
        for k, line in enumerate(node.lines):
            weight = ' font-weight="bold"' if k == 0 else ""
            text.append(f'<tspan x="{_f(cx)}" dy="{0 if k == 0 else LINE_H}"{weight}>'
                        f'{escape(line)}</tspan>')
        out.append("".join(text) + "</text></g>")
    if graph.caption:
        out.append(f'<text class="caption" x="{_f(MARGIN)}" y="{_f(height - 8)}" '
                   f'fill="#333">{escape(graph.caption)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"

