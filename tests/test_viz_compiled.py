"""chainrule.viz on compiled graphs: a box per equation, inputs/constants/outputs, fused
groups as clusters of their member ops, highlighting (the equation that made a NaN),
and to_dot/to_svg/render taking a compiled graph directly."""
import re
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

import chainrule as cr
from chainrule import viz
from chainrule.compile import jit
from chainrule.compile.ir import Eqn, Graph, Var, constant
from chainrule.compile.passes import PIPELINE
from chainrule.core.primitive import PRIMITIVES

SVG = "{http://www.w3.org/2000/svg}"
fuse = pytest.importorskip("chainrule.compile.passes.fuse").fuse


def loss(x, w):
    return (cr.tanh(x @ w) * 2.0 + 1.0).sum()


def lowered(fn, *args, fused=False):
    """The graph after every pass but fusion and buffer planning, fused if asked."""
    off = {n: False for n in ("fuse", "plan") if n in {name for name, _ in PIPELINE}}
    g = jit(fn, passes=off).lower(*args).graph
    return fuse(g) if fused else g


def xw():
    rng = np.random.default_rng(0)
    return (cr.tensor(rng.standard_normal((4, 3)).astype(np.float32)),
            cr.tensor(rng.standard_normal((3, 2)).astype(np.float32)))


def by_id(vg):
    return {n.id: n for n in vg.nodes}


def test_a_box_per_equation_with_op_shape_dtype_and_operands():
    g = lowered(cr.grad(loss, argnums=1), *xw())
    vg = viz.compiled_graph(g)
    vg.check()
    nodes = by_id(vg)
    ops = [n for n in vg.nodes if n.kind == "op"]
    assert len(ops) == len(g.eqns)
    for e in g.eqns:
        lines = nodes[f"v{e.out.id}"].lines
        assert lines[0].split("[")[0] == e.prim.name
        assert lines[1].startswith(f"{tuple(e.out.shape)} {e.out.dtype}")
        args = [repr(v.const.item()) if v.const is not None and v.const.size == 1
                else f"%{v.id}" for v in e.ins]
        assert lines[2] == f"%{e.out.id} \u2190 {' '.join(args)}"
    # inputs and outputs are boxes of their own kinds
    assert [n.lines[0] for n in vg.nodes if n.kind == "leaf" and n.id.startswith("in")] == \
        [f"input {k}" for k in range(len(g.inputs))]
    outs = [n for n in vg.nodes if n.kind == "output"]
    assert [n.lines[1] for n in outs] == ["(3, 2) float32"]
    # one edge per operand that is not a scalar constant, one per output
    want = Counter()
    producer = {v.id: f"in{k}" for k, v in enumerate(g.inputs)}
    for e in g.eqns:
        for v in e.ins:
            if not (v.const is not None and v.const.size == 1):
                want[(producer.get(v.id, f"c{v.id}"), f"v{e.out.id}")] += 1
        producer[e.out.id] = f"v{e.out.id}"
    want[(producer[g.outputs[0].id], "out0")] += 1
    assert Counter(vg.edges) == want
    assert vg.caption == f"{len(g.eqns)} equations"


def test_array_constants_are_leaf_boxes_and_scalars_are_inline():
    x = Var((2, 3), "float64")
    table = constant(np.arange(6.0).reshape(2, 3))
    two = constant(np.float64(2.0))
    m = Eqn(PRIMITIVES["mul"], (x, two), {}, Var((2, 3), "float64"))
    a = Eqn(PRIMITIVES["add"], (m.out, table), {}, Var((2, 3), "float64"))
    g = Graph([x], [m, a], [a.out, two])
    vg = viz.compiled_graph(g, names={0: "batch"})
    nodes = by_id(vg)
    assert nodes["in0"].lines[0] == "batch"
    assert nodes[f"c{table.id}"].lines == ["constant", "(2, 3) float64", "48 B"]
    assert nodes[f"c{table.id}"].kind == "leaf"
    assert nodes[f"v{m.out.id}"].lines[2] == f"%{m.out.id} \u2190 %{x.id} 2.0"
    assert (f"c{table.id}", f"v{a.out.id}") in vg.edges
    assert nodes["out1"].lines[0] == "output 1 = 2.0"  # a constant output: no edge
    assert not [e for e in vg.edges if e[1] == "out1"]
    with pytest.raises(ValueError, match="read before"):
        viz.compiled_graph(Graph([], [m], [m.out]))


def test_fused_groups_are_clusters_of_their_member_ops():
    g = lowered(cr.grad(loss, argnums=1), *xw(), fused=True)
    groups = [e for e in g.eqns if hasattr(e.prim, "members")]
    assert groups, f"the fusion pass made no group:\n{g}"
    vg = viz.compiled_graph(g)
    vg.check()
    nodes = by_id(vg)
    assert len(vg.clusters()) == len(groups)
    n_members = 0
    for k, e in enumerate(groups):
        members = e.prim.members
        n_members += len(members)
        cluster = vg.clusters()[k]
        assert cluster.startswith(f"fused group {k + 1}: {len(members)} ops")
        assert [n.id for n in vg.nodes if n.cluster == cluster] == \
            [f"v{m.out.id}" for m in members]
        for m in members:
            assert nodes[f"v{m.out.id}"].lines[0].split("[")[0] == m.prim.name
        # consumers outside read the group's outputs from the members that make them
        for v in e.prim.outs:
            for c in g.eqns:
                if v in c.ins and not hasattr(c.prim, "members"):
                    assert (f"v{v.id}", f"v{c.out.id}") in vg.edges
        # every group input reaches a member
        srcs = {s for s, d in vg.edges if nodes[d].cluster == cluster
                and nodes[s].cluster != cluster}
        assert len(srcs) == len({v.id for v in e.ins if v.const is None or v.const.size > 1})
    assert vg.caption.endswith(f"of {n_members} ops")
    assert "fused group" in viz.to_dot(g) and 'subgraph cluster_0' in viz.to_dot(g)


def test_a_group_that_only_lists_its_members_is_one_group_box():
    class Listed:
        name = "fused[exp,neg]"

        def impl(self, x):
            return -np.exp(x)

        def listing(self):
            return ["%9 = exp %0", "%10 = neg %9"]

    x = Var((3,), "float32")
    e = Eqn(Listed(), (x,), {}, Var((3,), "float32"))
    vg = viz.compiled_graph(Graph([x], [e], [e.out]))
    node = by_id(vg)[f"v{e.out.id}"]
    assert node.kind == "group" and node.lines[-2:] == ["%9 = exp %0", "%10 = neg %9"]
    assert ("in0", node.id) in vg.edges and (node.id, "out0") in vg.edges


def nan_graph(fused):
    return lowered(lambda x: cr.sqrt(x) * 2.0 + cr.log(x), cr.ones(3), fused=fused)


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_find_nonfinite_names_the_op_and_highlight_draws_it(fused):
    g = nan_graph(fused)
    bad = viz.find_nonfinite(g, [np.array([1.0, 0.0, 4.0], np.float32)])
    assert bad is not None and bad.prim.name == "log"  # sqrt(0) is fine, log(0) is not
    assert viz.find_nonfinite(g, [np.array([1.0, 2.0, 4.0], np.float32)]) is None
    assert viz.find_nonfinite(g, [np.array([np.nan, 2.0, 4.0], np.float32)]) is None
    vg = viz.compiled_graph(g, highlight=bad)
    assert [n.id for n in vg.nodes if n.highlight] == [f"v{bad.out.id}"]
    dot = viz.to_dot(g, highlight=bad)
    line = next(s for s in dot.splitlines() if s.strip().startswith(f'"v{bad.out.id}" ['))
    assert "#d00000" in line
    root = ET.fromstring(viz.to_svg(g, highlight=bad, engine="python"))
    marked = [el for el in root.iter(SVG + "g") if "highlight" in el.get("class", "")]
    assert [el.find(SVG + "title").text for el in marked] == [f"v{bad.out.id}"]


def test_highlight_by_var_id_collection_and_predicate():
    g = nan_graph(False)
    log = next(e for e in g.eqns if e.prim.name == "log")
    sqrt = next(e for e in g.eqns if e.prim.name == "sqrt")
    one, both = {f"v{log.out.id}"}, {f"v{log.out.id}", f"v{sqrt.out.id}"}
    for mark, want in [(log.out, one), (log.out.id, one), ([log], one), ((log.out, sqrt), both),
                       (lambda e: e.prim.name == "log", one)]:
        vg = viz.compiled_graph(g, highlight=mark)
        assert {n.id for n in vg.nodes if n.highlight} == want


def test_render_and_to_svg_take_a_compiled_graph_or_a_lowered(tmp_path):
    x, w = xw()
    low = jit(cr.grad(loss, argnums=1)).lower(x, w)
    dot = viz.to_dot(low)
    assert dot == viz.to_dot(low.graph)
    labels = re.findall(r'^\s*"v\d+" \[label="([^\\"]+)', dot, re.M)
    assert Counter(labels) == Counter(
        n.lines[0] for n in viz.compiled_graph(low.graph).nodes if n.kind in ("op", "group"))
    path = viz.render(low.graph, tmp_path / "g.svg", engine="python")
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg"
    texts = [t.text for t in root.iter(SVG + "tspan")]
    assert "matmul" in texts and "input 0" in texts and "output 0" in texts
    assert viz.render(low, tmp_path / "g.dot").endswith("g.dot")
    assert (tmp_path / "g.dot").read_text() == dot
    with pytest.raises(TypeError, match="names="):
        viz.to_dot(low.graph, params={"w": w})


def test_caption_counts_and_the_buffer_plan_peaks():
    g = nan_graph(False)
    assert viz.compiled_graph(g).caption == f"{len(g.eqns)} equations"
    planned = g.replace(meta={**g.meta, "peak_bytes_after": 3 << 20,
                              "peak_bytes_freed": 5 << 20})
    assert viz.compiled_graph(planned).caption == \
        f"{len(g.eqns)} equations; peak 3.0 MiB planned, 5.0 MiB freeing at last use"
    one = nan_graph(True)
    members = sum(len(getattr(e.prim, "members", ())) for e in one.eqns)
    assert viz.compiled_graph(one).caption == \
        f"{len(one.eqns)} equation{'s' * (len(one.eqns) != 1)}, 1 fused group of {members} ops"
