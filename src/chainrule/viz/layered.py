"""A layered (Sugiyama-style) layout of a ``Graph``, in pure Python, without recursion.

1. Layers: the longest path from the sinks (outputs at the bottom, leaves above the first
   op that reads them).
2. Edges that span several layers get a chain of dummy points (up to a budget, so a leaf
   read by every op of a long chain stays linear); the rest are drawn directly.
3. Order within layers: a few barycenter sweeps, down and up, keeping cluster members
   side by side.
4. x coordinates: each node wants the median x of its neighbours in the previous layer;
   the closest non-overlapping placement (in the least-squares sense) is an isotonic
   regression, solved exactly by pool-adjacent-violators in linear time.

Everything is deterministic: ties keep the graph's own node order.
"""
from __future__ import annotations

from dataclasses import dataclass

CHAR_W = 7.2      # width of one character of 12 px monospace
LINE_H = 15       # height of one text line
PAD_X, PAD_Y = 8, 6
GAP_X, GAP_Y = 18, 44
DUMMY_W = 8
CLUSTER_PAD, CLUSTER_LABEL = 8, 16
MARGIN = 12
SWEEPS = 4


def box_size(lines) -> tuple:
    """(width, height) of a box holding these text lines."""
    return (max((len(s) for s in lines), default=1) * CHAR_W + 2 * PAD_X,
            max(len(lines), 1) * LINE_H + 2 * PAD_Y)


@dataclass
class Layout:
    """``boxes[i] = (cx, cy, w, h)`` for ``graph.nodes[i]``; ``paths[e]``: the points edge e
    passes through, from the bottom of its source to the top of its target;
    ``clusters``: ``(name, x0, y0, x1, y1)``; ``width``/``height`` of the drawing."""

    boxes: list
    paths: list
    clusters: list
    width: float
    height: float


def _layers(n: int, edges: list) -> list:
    """Longest-path layer from the sinks, by Kahn's algorithm on the reversed graph."""
    preds = [[] for _ in range(n)]
    outdeg = [0] * n
    for s, d in edges:
        preds[d].append(s)
        outdeg[s] += 1
    layer = [0] * n
    ready = [i for i in range(n - 1, -1, -1) if outdeg[i] == 0]
    done = 0
    while ready:
        v = ready.pop()
        done += 1
        lv = layer[v] + 1
        for u in preds[v]:
            if layer[u] < lv:
                layer[u] = lv
            outdeg[u] -= 1
            if outdeg[u] == 0:
                ready.append(u)
    if done < n:
        raise ValueError("viz: the graph has a cycle; only acyclic graphs can be laid out")
    return layer


def _isotonic(values: list) -> list:
    """The non-decreasing sequence closest to ``values`` in least squares (PAV)."""
    sums, counts = [], []
    for v in values:
        s, c = v, 1
        while sums and sums[-1] * c > s * counts[-1]:  # previous block's mean is larger
            s += sums.pop()
            c += counts.pop()
        sums.append(s)
        counts.append(c)
    out = []
    for s, c in zip(sums, counts):
        out.extend([s / c] * c)
    return out


def layout(graph) -> Layout:
    """Positions of every node, edge and cluster of ``graph`` (see the module docstring)."""
    nodes = graph.nodes
    n = len(nodes)
    index = {node.id: i for i, node in enumerate(nodes)}
    edges = [(index[s], index[d]) for s, d in graph.edges]
    layer = _layers(n, edges)
    top = max(layer, default=0)
    rank = [top - v for v in layer]
    sizes = [box_size(node.lines) for node in nodes]
    width = [w for w, _ in sizes]
    height = [h for _, h in sizes]
    cluster = [node.cluster for node in nodes]
    chains = _chains(edges, rank, width, height, cluster, budget=4 * n + 1000)
    m = len(rank)
    up = [[] for _ in range(m)]
    down = [[] for _ in range(m)]
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            if rank[b] == rank[a] + 1:
                down[a].append(b)
                up[b].append(a)
    layers = [[] for _ in range(top + 1)]
    for v in range(m):
        layers[rank[v]].append(v)
    has_clusters = any(c is not None for c in cluster)
    _order(layers, up, down, cluster if has_clusters else None)
    x = _xs(layers, up, down, width, cluster)

    # shift right of the margin; stack the layers top to bottom
    pad = CLUSTER_PAD if has_clusters else 0
    shift = MARGIN + pad - min((x[v] - width[v] / 2 for v in range(m)), default=0.0)
    y = [0.0] * m
    y_top = MARGIN + (CLUSTER_PAD + CLUSTER_LABEL if has_clusters else 0)
    for L in layers:
        h = max((height[v] for v in L), default=0)
        for v in L:
            x[v] += shift
            y[v] = y_top + h / 2
        y_top += h + GAP_Y
    boxes = [(x[i], y[i], width[i], height[i]) for i in range(n)]
    total_w = max((x[v] + width[v] / 2 for v in range(m)), default=0.0) + MARGIN + pad
    return Layout(boxes, _paths(chains, x, y, width, height, n),
                  _cluster_rects(graph, boxes) if has_clusters else [],
                  total_w, y_top - GAP_Y + MARGIN + pad)


def _chains(edges, rank, width, height, cluster, budget: int) -> list:
    """For each edge, the layout vertices it passes through: its ends, with a dummy
    vertex (appended to rank, width, height, cluster) on every layer in between, for
    the shortest edges first while at most ``budget`` dummies are made."""
    chains = [None] * len(edges)
    for e in sorted(range(len(edges)), key=lambda e: rank[edges[e][1]] - rank[edges[e][0]]):
        s, d = edges[e]
        span = rank[d] - rank[s]
        if 1 < span <= budget + 1:
            chain = [s]
            for r in range(rank[s] + 1, rank[d]):
                chain.append(len(rank))
                rank.append(r)
                width.append(DUMMY_W)
                height.append(0)
                cluster.append(None)
            chain.append(d)
            budget -= span - 1
            chains[e] = chain
        else:
            chains[e] = [s, d]
    return chains


def _sweeps(top: int):
    """(layer ranks in order, whether the neighbours to follow are above) per sweep."""
    for sweep in range(SWEEPS):
        if sweep % 2 == 0:
            yield range(1, top + 1), True
        else:
            yield range(top - 1, -1, -1), False


def _order(layers: list, up: list, down: list, cluster) -> None:
    """Barycenter sweeps: sort each layer by the mean position of its neighbours in the
    layer just swept (clusters kept together when ``cluster`` is given)."""
    m = len(up)
    pos = [0.0] * m
    for L in layers:
        _number(L, pos)
    key = [0.0] * m
    for ranks, above in _sweeps(len(layers) - 1):
        nbrs = up if above else down
        for r in ranks:
            L = layers[r]
            if len(L) < 2:
                continue
            for v in L:
                nb = nbrs[v]
                key[v] = sum(pos[u] for u in nb) / len(nb) if nb else pos[v]
            L.sort(key=key.__getitem__)
            if cluster is not None:
                L[:] = _grouped(L, cluster)
            _number(L, pos)


def _xs(layers: list, up: list, down: list, width: list, cluster: list) -> list:
    """x of every vertex: each wants the median x of its neighbours in the layer just
    swept, and gets the closest placement without overlaps."""
    x = [0.0] * len(up)
    for L in layers:
        _place(L, [0.0] * len(L), width, cluster, x)
    for ranks, above in _sweeps(len(layers) - 1):
        nbrs = up if above else down
        for r in ranks:
            L = layers[r]
            if len(L) == 1:  # the common case in deep chains
                v = L[0]
                x[v] = _median([x[u] for u in nbrs[v]], x[v])
            else:
                _place(L, [_median([x[u] for u in nbrs[v]], x[v]) for v in L], width, cluster, x)
    return x


def _cluster_rects(graph, boxes: list) -> list:
    """(name, x0, y0, x1, y1) of a rectangle around the members of each cluster."""
    bounds = {}
    for node, (cx, cy, w, h) in zip(graph.nodes, boxes):
        if node.cluster is None:
            continue
        b = bounds.setdefault(node.cluster, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        b[0], b[1] = min(b[0], cx - w / 2), min(b[1], cy - h / 2)
        b[2], b[3] = max(b[2], cx + w / 2), max(b[3], cy + h / 2)
    rects = []
    for c in graph.clusters():
        x0, y0, x1, y1 = bounds[c]
        rects.append((c, x0 - CLUSTER_PAD, y0 - CLUSTER_PAD - CLUSTER_LABEL,
                      x1 + CLUSTER_PAD, y1 + CLUSTER_PAD))
    return rects


def _number(L: list, pos: list) -> None:
    k = len(L)
    for i, v in enumerate(L):
        pos[v] = (i + 0.5) / k


def _grouped(L: list, cluster: list) -> list:
    """``L`` with the members of each cluster moved next to its first member."""
    blocks, members = [], {}
    for v in L:
        c = cluster[v]
        if c is None:
            blocks.append([v])
        elif c in members:
            members[c].append(v)
        else:
            members[c] = [v]
            blocks.append(members[c])
    return [v for b in blocks for v in b]


def _median(values: list, default: float) -> float:
    if not values:
        return default
    values.sort()
    k = len(values)
    return values[k // 2] if k % 2 else (values[k // 2 - 1] + values[k // 2]) / 2


def _place(L: list, want: list, width: list, cluster: list, x: list) -> None:
    """Set x for the nodes of one layer, in order, without overlaps, as close to ``want``
    as possible: with offsets c (the minimum spacing, accumulated), x - c must be
    non-decreasing, which makes it an isotonic regression."""
    offs = [0.0] * len(L)
    for i in range(1, len(L)):
        a, b = L[i - 1], L[i]
        gap = GAP_X
        if cluster[a] != cluster[b] and (cluster[a] is not None or cluster[b] is not None):
            gap += 2 * CLUSTER_PAD
        offs[i] = offs[i - 1] + (width[a] + width[b]) / 2 + gap
    fit = _isotonic([w - o for w, o in zip(want, offs)])
    for v, f, o in zip(L, fit, offs):
        x[v] = f + o


def _paths(chains, x, y, width, height, n) -> list:
    """Edge points; edges leaving (entering) one box are spread along its bottom (top)."""
    outs = [[] for _ in range(n)]
    ins = [[] for _ in range(n)]
    for e, chain in enumerate(chains):
        outs[chain[0]].append((x[chain[1]], e))
        ins[chain[-1]].append((x[chain[-2]], e))
    start, end = [0.0] * len(chains), [0.0] * len(chains)
    for ports, side in ((outs, start), (ins, end)):
        for v in range(n):
            k = len(ports[v])
            if not k:
                continue
            ports[v].sort()
            step = min(12.0, 0.8 * width[v] / k)
            for j, (_, e) in enumerate(ports[v]):
                side[e] = x[v] + (j - (k - 1) / 2) * step
    paths = []
    for e, chain in enumerate(chains):
        s, d = chain[0], chain[-1]
        pts = [(start[e], y[s] + height[s] / 2)]
        pts.extend((x[v], y[v]) for v in chain[1:-1])
        pts.append((end[e], y[d] - height[d] / 2))
        paths.append(pts)
    return paths
