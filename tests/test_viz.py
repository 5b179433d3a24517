"""chainrule.viz: the graph model built from the tape, DOT text, the pure-Python SVG
layout, and render() by file extension (Graphviz itself is faked where needed)."""
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

import chainrule as cr
from chainrule import viz
from chainrule.core.dispatch import Node
from chainrule.viz.layered import _isotonic

SVG = "{http://www.w3.org/2000/svg}"


def mlp():
    """A two-layer MLP loss; returns (loss, params, x, hidden)."""
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    params = {"W1": cr.tensor(rng.standard_normal((3, 5)).astype(np.float32),
                              requires_grad=True),
              "b1": cr.zeros(5, requires_grad=True),
              "W2": cr.tensor(rng.standard_normal((5, 2)).astype(np.float32),
                              requires_grad=True)}
    h = cr.relu(x @ params["W1"] + params["b1"])  # (4, 5)
    loss = ((h @ params["W2"]) ** 2).mean()
    return loss, params, x, h


def tape_edges(outputs, names):
    """Label-level edges (producer label, consumer label) read straight off the tape."""
    edges = Counter()
    stack, seen = [t.grad_fn for t in outputs], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for p in node.parents:
            if p is None:
                continue
            label = p.name() if isinstance(p, Node) else names.get(id(p), "input")
            edges[(label, node.name())] += 1
            if isinstance(p, Node):
                stack.append(p)
    return edges


def dot_graph(text):
    """({id: [label lines]}, Counter of (src label, dst label), {id: attribute text})."""
    labels, attrs = {}, {}
    for m in re.finditer(r'^\s*"([^"]+)" \[label="((?:[^"\\]|\\.)*)"(.*)\];$', text, re.M):
        labels[m.group(1)] = m.group(2).split("\\n")
        attrs[m.group(1)] = m.group(3)
    edges = Counter((labels[s][0], labels[d][0])
                    for s, d in re.findall(r'^\s*"([^"]+)" -> "([^"]+)";$', text, re.M))
    return labels, edges, attrs


def svg_nodes(text):
    root = ET.fromstring(text)
    return root, [g for g in root.iter(SVG + "g") if g.get("class", "").startswith("node")]


def node_text(g):
    return [t.text for t in g.iter(SVG + "tspan")]


# ------------------------------------------------------------------------ DOT

def test_dot_has_ops_shapes_names_and_one_edge_per_parent_link():
    loss, params, _, _ = mlp()
    text = viz.to_dot(loss, params=params)
    labels, edges, _ = dot_graph(text)
    names = {id(t): k for k, t in params.items()}
    expected = tape_edges([loss], names)
    expected[("MulBackward", "output")] += 1  # mean = sum * (1/n); its node feeds the output
    assert edges == expected
    by_title = {}
    for lines in labels.values():
        by_title.setdefault(lines[0], []).append(lines[1:])
    assert by_title["W1"] == [["(3, 5) float32"]]
    assert by_title["b1"] == [["(5,) float32"]]
    assert by_title["W2"] == [["(5, 2) float32"]]
    assert by_title["ReluBackward"] == [["(4, 5) float32", "saved 80 B"]]
    # matmul saves both inputs: x (4, 3) and W1 (3, 5) in float32 = 48 + 60 bytes
    assert ["(4, 5) float32", "saved 108 B"] in by_title["MatmulBackward"]
    assert ["(4, 2) float32", "saved 120 B"] in by_title["MatmulBackward"]
    assert by_title["output"] == [["() float32"]]
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    assert "saved for backward:" in text


def test_repeated_input_gives_one_edge_per_link_and_unnamed_leaves_are_inputs():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    labels, edges, _ = dot_graph(viz.to_dot(y))
    assert edges[("input", "MulBackward")] == 2
    assert ["input", "(2,) float32"] in labels.values()


def test_show_saved_false_drops_bytes_and_caption():
    loss, params, _, _ = mlp()
    text = viz.to_dot(loss, params=params, show_saved=False)
    assert "saved" not in text


def test_saved_bytes_total_counts_each_buffer_once():
    a = cr.tensor(np.ones((10,), np.float64), requires_grad=True)
    y = (cr.sin(a) + cr.cos(a)).sum()  # sin and cos both save a: 80 bytes, counted once
    g = viz.autograd_graph(y)
    assert g.caption == "saved for backward: 80 B in 1 arrays"
    assert viz.format_bytes(1536) == "1.5 KiB" and viz.format_bytes(3 << 20) == "3.0 MiB"


def test_multiple_outputs_are_drawn_separately():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.exp(x)
    g = viz.autograd_graph([y.sum(), (y * 2).sum()])
    outs = [n for n in g.nodes if n.kind == "output"]
    assert [n.lines[0] for n in outs] == ["output 0", "output 1"]
    assert sum(1 for n in g.nodes if n.lines[0] == "ExpBackward") == 1


def test_bad_outputs_and_graph_with_tensor_options_are_rejected():
    with pytest.raises(TypeError, match="output 0 is a list"):
        viz.to_dot([[cr.tensor([1.0])]])
    g = viz.Graph()
    g.add_node("a", ["a"])
    with pytest.raises(TypeError, match="drawn as it is"):
        viz.to_dot(g, params={})


# ---------------------------------------------------------------- highlight

@pytest.mark.parametrize("how", ["node", "tensor", "set", "predicate"])
def test_highlight_marks_exactly_the_chosen_node(how):
    loss, params, _, h = mlp()
    node = h.grad_fn
    highlight = {"node": node, "tensor": h, "set": {node},
                 "predicate": lambda n: n.prim.name == "relu"}[how]
    _, _, attrs = dot_graph(viz.to_dot(loss, params=params, highlight=highlight))
    labels, _, _ = dot_graph(viz.to_dot(loss, params=params, highlight=highlight))
    red = [labels[k][0] for k, a in attrs.items() if "#d00000" in a]
    assert red == ["ReluBackward"]
    _, nodes = svg_nodes(viz.to_svg(loss, params=params, highlight=highlight, engine="python"))
    marked = [g for g in nodes if "highlight" in g.get("class").split()]
    assert len(marked) == 1 and node_text(marked[0])[0] == "ReluBackward"
    assert marked[0].find(SVG + "rect").get("stroke") == "#d00000"


def test_highlight_a_leaf_by_tensor():
    loss, params, _, _ = mlp()
    g = viz.autograd_graph(loss, params=params, highlight=[params["b1"]])
    assert [n.lines[0] for n in g.nodes if n.highlight] == ["b1"]


# ---------------------------------------------------------------------- SVG

def test_svg_is_well_formed_with_one_box_per_node_and_one_path_per_edge():
    loss, params, _, _ = mlp()
    g = viz.autograd_graph(loss, params=params)
    text = viz.to_svg(loss, params=params, engine="python")
    root, nodes = svg_nodes(text)
    assert root.tag == SVG + "svg"
    assert len(nodes) == len(g.nodes)
    assert [node_text(n) for n in nodes] == [n.lines for n in g.nodes]
    assert len([p for p in root.iter(SVG + "path") if p.get("class") == "edge"]) == len(g.edges)
    caption = [t for t in root.iter(SVG + "text") if t.get("class") == "caption"]
    assert caption[0].text == g.caption
    assert text == viz.to_svg(loss, params=params, engine="python")  # deterministic


def test_layout_boxes_do_not_overlap_and_edges_point_down():
    loss, params, _, _ = mlp()
    g = viz.autograd_graph(loss, params=params)
    lay = viz.layout(g)
    rows = {}
    for cx, cy, w, h in lay.boxes:
        rows.setdefault(cy, []).append((cx - w / 2, cx + w / 2))
    for spans in rows.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    index = {n.id: i for i, n in enumerate(g.nodes)}
    for (s, d), pts in zip(g.edges, lay.paths):
        assert pts[0][1] == lay.boxes[index[s]][1] + lay.boxes[index[s]][3] / 2
        assert pts[-1][1] == lay.boxes[index[d]][1] - lay.boxes[index[d]][3] / 2
        assert all(p[1] < q[1] for p, q in zip(pts, pts[1:]))
    out = [i for i, n in enumerate(g.nodes) if n.kind == "output"][0]
    assert lay.boxes[out][1] == max(b[1] for b in lay.boxes)  # the output is at the bottom


def test_svg_escapes_xml():
    g = viz.Graph(caption="a < b & c")
    g.add_node("<x>", ['say "<hi>" & bye'], "leaf")
    g.add_node("y", ["y"], "output")
    g.add_edge("<x>", "y")
    root, nodes = svg_nodes(viz.to_svg(g, engine="python"))
    assert node_text(nodes[0]) == ['say "<hi>" & bye']
    assert nodes[0].find(SVG + "title").text == "<x>"
    assert '\\"<hi>\\"' in viz.to_dot(g)


def test_deep_chain_is_drawn_without_recursion():
    x = cr.tensor(np.ones(3), requires_grad=True)
    y = x
    for i in range(10_000):
        y = cr.sin(y) if i % 2 else y * 1.5
    depth, f = 0, sys._getframe()
    while f is not None:
        depth, f = depth + 1, f.f_back
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 60)  # any recursion over the chain would fail
    try:
        g = viz.autograd_graph(y.sum())
        text = viz.to_svg(g, engine="python")
        dot = viz.to_dot(g)
    finally:
        sys.setrecursionlimit(limit)
    assert len(g.nodes) == 10_000 + 3  # the ops, the sum, the leaf, the output
    _, nodes = svg_nodes(text)
    assert len(nodes) == len(g.nodes)
    assert dot.count(" -> ") == len(g.edges) == 10_000 + 2


def test_leaf_read_by_every_op_of_a_long_chain():
    w = cr.tensor(np.ones(2), requires_grad=True)
    y = w
    for _ in range(2_000):  # spans of 1..2000 layers: dummy points are budgeted
        y = y * w
    g = viz.autograd_graph(y.sum())
    lay = viz.layout(g)
    assert len(lay.paths) == len(g.edges) == 4_002
    assert sum(len(p) for p in lay.paths) <= 2 * len(g.edges) + 4 * len(g.nodes) + 1000


# ----------------------------------------------------------------- clusters

def fused_graph():
    g = viz.Graph(caption="compiled")
    g.add_node("x", ["x", "(3,) float32"], "leaf")
    g.add_node("m", ["mul", "(3,)"], cluster="fused 0")
    g.add_node("e", ["exp", "(3,)"], cluster="fused 0")
    g.add_node("s", ["sum+tanh", "()"], "group")
    g.add_node("t", ["sin"], cluster="fused 1")
    g.add_node("o", ["output"], "output")
    for s, d in [("x", "m"), ("m", "e"), ("x", "e"), ("e", "s"), ("s", "t"), ("t", "o")]:
        g.add_edge(s, d)
    return g


def test_clusters_in_dot():
    text = viz.to_dot(fused_graph())
    blocks = re.findall(r"subgraph (cluster_\d+) \{\n\s*label=\"([^\"]*)\";[^\n]*\n(.*?)\n  \}",
                        text, re.S)
    assert [(c, name) for c, name, _ in blocks] == [("cluster_0", "fused 0"),
                                                    ("cluster_1", "fused 1")]
    assert re.findall(r'^\s*"(\w)" \[', blocks[0][2], re.M) == ["m", "e"]
    assert re.findall(r'^\s*"(\w)" \[', blocks[1][2], re.M) == ["t"]
    assert '"s" [label="sum+tanh\\n()", fillcolor="#ffe3b3", style="rounded,filled,dashed"]' \
        in text


def test_clusters_in_svg_enclose_their_members():
    g = fused_graph()
    root, nodes = svg_nodes(viz.to_svg(g, engine="python"))
    clusters = [c for c in root.iter(SVG + "g") if c.get("class") == "cluster"]
    assert [c.find(SVG + "title").text for c in clusters] == ["fused 0", "fused 1"]

    def rect(el):
        r = el.find(SVG + "rect")
        x, y = float(r.get("x")), float(r.get("y"))
        return x, y, x + float(r.get("width")), y + float(r.get("height"))

    boxes = {n.find(SVG + "title").text: rect(n) for n in nodes}
    for c, members in zip(clusters, (["m", "e"], ["t"])):
        cx0, cy0, cx1, cy1 = rect(c)
        for m in members:
            x0, y0, x1, y1 = boxes[m]
            assert cx0 < x0 and cy0 < y0 and x1 < cx1 and y1 < cy1
        for other in set(boxes) - set(members):  # no foreign box inside the cluster
            x0, y0, x1, y1 = boxes[other]
            assert x1 < cx0 or cx1 < x0 or y1 < cy0 or cy1 < y0


def test_graph_checks_its_input():
    g = viz.Graph()
    g.add_node("a", ["a"])
    with pytest.raises(ValueError, match="kind must be one of"):
        g.add_node("b", ["b"], kind="box")
    g.add_node("a", ["again"])
    with pytest.raises(ValueError, match="duplicate node id 'a'"):
        viz.to_dot(g)
    g = viz.Graph()
    g.add_node("a", ["a"])
    g.add_edge("a", "zz")
    with pytest.raises(ValueError, match="unknown node"):
        viz.to_svg(g, engine="python")
    g = viz.Graph()
    g.add_node("a", ["a"])
    g.add_node("b", ["b"])
    g.add_edge("a", "b")
    g.add_edge("b", "a")
    with pytest.raises(ValueError, match="cycle"):
        viz.to_svg(g, engine="python")


def test_isotonic_fit():
    assert _isotonic([3.0, 1.0, 2.0]) == [2.0, 2.0, 2.0]
    assert _isotonic([1.0, 3.0, 2.0, 4.0]) == [1.0, 2.5, 2.5, 4.0]
    assert _isotonic([]) == []


# ----------------------------------------------------------- after backward

def test_graph_after_backward_draws_what_remains():
    loss, params, _, _ = mlp()
    loss.backward()
    g = viz.autograd_graph(loss, params=params)
    lines = Counter(tuple(n.lines) for n in g.nodes)
    # add saved nothing, so its input metadata survives: the first matmul's shape is
    # known from it, and relu's and the second matmul's from their shape rules
    assert lines[("MatmulBackward", "(4, 5) float32", "saved: freed")] == 1
    assert lines[("ReluBackward", "(4, 5) float32", "saved: freed")] == 1
    assert lines[("MatmulBackward", "(4, 2) float32", "saved: freed")] == 1
    assert lines[("W1", "(3, 5) float32")] == 1
    assert "freed theirs" in g.caption
    _, nodes = svg_nodes(viz.to_svg(loss, params=params, engine="python"))
    assert len(nodes) == len(g.nodes)


def test_shapes_that_backward_made_unknowable_are_said_so():
    x = cr.tensor(np.ones((2, 3)), requires_grad=True)
    c = cr.tensor(np.full((2, 3), 2.0))
    y = cr.exp(cr.sin(x * c)).sum()  # x * c: the shape of c (no grad) dies with backward
    y.backward()
    lines = [tuple(n.lines) for n in viz.autograd_graph(y).nodes]
    assert ("MulBackward", "shape unknown (freed)", "saved: freed") in lines
    assert ("SinBackward", "shape unknown (freed)", "saved: freed") in lines
    assert ("ExpBackward", "(2, 3) float64", "saved: freed") in lines  # sum kept its meta


def test_retained_graph_still_shows_saved_bytes():
    loss, params, _, _ = mlp()
    loss.backward(retain_graph=True)
    g = viz.autograd_graph(loss, params=params)
    assert ("ReluBackward", "(4, 5) float32", "saved 80 B") in {tuple(n.lines) for n in g.nodes}


# ------------------------------------------------------------------- render

def test_render_by_extension_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    loss, params, _, _ = mlp()
    assert viz.render(loss, tmp_path / "g.dot", params=params) == str(tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == viz.to_dot(loss, params=params)
    viz.render(loss, tmp_path / "g.svg", params=params)
    svg = (tmp_path / "g.svg").read_text()
    assert svg == viz.to_svg(loss, params=params, engine="python")
    for ext in ("png", "pdf"):
        with pytest.raises(RuntimeError, match=r"apt install graphviz, brew install graphviz"):
            viz.render(loss, tmp_path / f"g.{ext}")
        assert not (tmp_path / f"g.{ext}").exists()
    with pytest.raises(RuntimeError, match="`dot` program was not found"):
        viz.to_svg(loss, engine="graphviz")
    with pytest.raises(ValueError, match="cannot tell the format"):
        viz.render(loss, tmp_path / "g.jpeg")
    with pytest.raises(ValueError, match="engine must be one of"):
        viz.to_svg(loss, engine="neato")


class FakeDot:
    """Stands in for subprocess.run on Graphviz's dot."""

    def __init__(self, returncode=0):
        self.calls, self.returncode = [], returncode

    def __call__(self, args, input, capture_output):
        self.calls.append((args, input.decode()))
        return subprocess.CompletedProcess(args, self.returncode, b"<svg>from dot</svg>",
                                           b"syntax error in line 3")


def test_graphviz_is_used_when_dot_is_on_path(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/gv/dot" if name == "dot" else None)
    fake = FakeDot()
    monkeypatch.setattr(subprocess, "run", fake)
    loss, params, _, _ = mlp()
    assert viz.to_svg(loss, params=params) == "<svg>from dot</svg>"
    assert fake.calls[-1] == (["/opt/gv/dot", "-Tsvg"], viz.to_dot(loss, params=params))
    viz.render(loss, tmp_path / "g.png", params=params)
    assert fake.calls[-1][0] == ["/opt/gv/dot", "-Tpng"]
    assert (tmp_path / "g.png").read_bytes() == b"<svg>from dot</svg>"
    n = len(fake.calls)
    viz.to_svg(loss, engine="python")  # the built-in layout never calls dot
    assert len(fake.calls) == n
    monkeypatch.setattr(subprocess, "run", FakeDot(returncode=1))
    with pytest.raises(RuntimeError, match="exit code 1: syntax error in line 3"):
        viz.render(loss, tmp_path / "h.pdf")
