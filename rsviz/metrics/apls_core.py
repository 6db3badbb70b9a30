"""APLS, the road-network metric of SpaceNet 3 and 5, as CosmiQ's reference implementation computes it.

Average Path Length Similarity (Van Etten, Lindenbaum & Bacastow, "SpaceNet: A Remote Sensing
Dataset and Challenge Series", 2018; reference implementation CosmiQ ``apls``,
github.com/CosmiQ/apls, ``apls/apls.py``) compares the shortest paths between control points of a
ground-truth and a proposal road network. This module is our own implementation of the reference's
algorithm, step by step; the reference's defaults (those of its command line, which scores its
README examples) are the defaults here, and where we allow something else it is a named option.

Networks are in **metres of a projected CRS** (the reference projects both graphs to UTM); a pixel
graph is scored in metres with ``scale`` = the GSD, or in pixels with ``scale=1`` (every distance
parameter is then in pixels too).

Steps (``apls`` runs them for both directions, ground truth onto proposal and proposal onto ground truth):

1. **Graphs.** Each input graph becomes a network whose nodes are the end points and intersections
   (chains of degree-2 nodes are merged into one polyline edge, osmnx ``simplify_graph``; nodes marked
   ``endpoint`` stay nodes), edges weighted by their geometric length in the projected CRS. Line vectors
   become graphs with :func:`graph_from_polylines`, which also reproduces how the reference's GeoJSON
   reader loses a segment that two lines share (``duplicates="drop"``; its WKT reader keeps one copy).
   The reference weights ground-truth GeoJSON edges by the great-circle length of their lon/lat segments
   (osmnx ``add_edge_lengths``, rounded to the millimetre) while it projects their geometry to UTM; we use
   the projected length throughout (on the Vegas sample the two differ by about 0.2 % per edge and APLS
   by 1e-4). Connected components whose longest shortest path is below
   ``min_subgraph_length`` (5 m) are dropped (``_clean_sub_graphs``; as there, only components of at most
   100 nodes are measured).
2. **Control points** (``create_graph_midpoints``): every node of the network plus midpoints inserted along
   each edge of length >= 0.75 ``spacing`` (50 m): one at the middle of an edge up to ``spacing`` long,
   else ``ceil(L / spacing) - 1`` points evenly spaced. With ``curved_eps`` >= 0 only edges whose length
   exceeds their bounding-box diagonal by that fraction get midpoints (the reference command line uses
   -1: every edge). A ground truth of ``max_nodes_for_midpoints`` (500) nodes or more gets no midpoints
   and ``max_nodes`` (1000) nodes of each graph are sampled as control points instead (``make_graphs_yuge``).
3. **Insertion** (``insert_control_points``): the control points of one graph are inserted, one by one and
   in order, into the *other* graph without its midpoints: a point is projected onto the nearest edge; if
   that edge is farther than ``buffer`` (4 m, ``max_snap_dist``) the point is not inserted. A projection
   strictly inside the edge splits it there into two edges (a new node); a projection at the edge's end
   (within ``rename_tolerance`` of it, 0 in the reference: only an exact end) *renames* that end node
   (``allow_renaming``), so each node carries one control point: a later point landing on a node already
   renamed by an earlier one takes the node over, and the earlier point counts as not inserted. Without
   renaming, a node can carry several control points (the reference joins them by zero-length edges).
4. **Paths** (``path_sim_metric``): for every ordered pair ``(a, b)`` of control points joined by a path of
   length ``L`` in their own graph, with ``L >= min_path_length`` (0.001 m), the pair scores
   ``min(1, |L - L'| / L)`` with ``L'`` the shortest path between the inserted ``a`` and ``b`` in the other
   graph, or 1 (the missing-path penalty) when there is none. A control point that was not inserted scores
   1 for every pair it starts (the reference applies no minimum length to these). Pairs not connected in
   their own graph are not scored.
5. **Score.** ``APLS_gt->prop = 1 - mean(scores)`` (0 when no pair was scored) and likewise from the
   proposal side; APLS is their harmonic mean, 0 when either is 0 (``compute_apls_metric``). An empty
   proposal scores 0; an empty ground truth gives NaN (the reference skips such images).

With edge length as path weight this is SpaceNet 5's ``APLS_length`` (``apls_length``); SpaceNet 5's
``APLS_time`` (travel-time weights) and the TOPO / SP metrics are not implemented.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Hashable, Iterable, Literal, Sequence

import networkx as nx
import numpy as np

Coords = np.ndarray  # (N, 2) float64 polyline vertices

#: The reference's defaults (CosmiQ ``apls.py`` command line): the keyword defaults of :func:`apls`.
APLS_DEFAULTS: dict[str, Any] = {
    "buffer": 4.0,
    "spacing": 50.0,
    "curved_eps": -1.0,
    "min_path_length": 0.001,
    "min_subgraph_length": 5.0,
    "allow_renaming": True,
    "rename_tolerance": 0.0,
    "max_nodes_for_midpoints": 500,
    "max_nodes": 1000,
}

#: Components with more nodes than this are kept without measuring their longest path (reference: 100).
_MAX_NODES_TO_MEASURE = 100


@dataclass(frozen=True)
class APLSResult:
    """APLS of a ground-truth and a proposal network (:func:`apls`).

    Attributes:
        apls: Harmonic mean of the two directions in [0, 1]; NaN for an empty ground truth.
        apls_gt_to_prop: ``1 - mean`` path score with ground-truth control points inserted into the proposal.
        apls_prop_to_gt: The same with proposal control points inserted into the ground truth.
        pairs_gt: Paths scored in the ground-truth-to-proposal direction.
        pairs_prop: Paths scored in the proposal-to-ground-truth direction.
        control_gt: Control points of the ground truth (nodes plus midpoints).
        control_prop: Control points of the proposal.
        inserted_gt: Ground-truth control points that carry a node of the proposal after insertion.
        inserted_prop: Proposal control points that carry a node of the ground truth after insertion.
    """

    apls: float
    apls_gt_to_prop: float
    apls_prop_to_gt: float
    pairs_gt: int = 0
    pairs_prop: int = 0
    control_gt: int = 0
    control_prop: int = 0
    inserted_gt: int = 0
    inserted_prop: int = 0

    def __getitem__(self, key: str) -> Any:
        """Field by name, as in the dict :func:`apls` returned before (``result["apls"]``)."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return asdict(self)


@dataclass
class _Edge:
    """One edge of a network: polyline ``coords`` from node ``u`` to node ``v`` and its cut points.

    ``cuts`` is the sorted list of ``(distance along the line, node)`` of nodes on the edge, its two ends
    included; inserting a point adds one, so the edge stands for the chain of pieces between its cuts.
    """

    u: Hashable
    v: Hashable
    coords: Coords
    length: float
    cuts: list[tuple[float, Hashable]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.cuts:
            self.cuts = [(0.0, self.u), (self.length, self.v)]


@dataclass
class _Network:
    """Nodes (``xy``, metres) and polyline edges of a simplified road network."""

    xy: dict[Hashable, tuple[float, float]]
    edges: list[_Edge]

    def copy(self) -> _Network:
        return _Network(dict(self.xy), [_Edge(e.u, e.v, e.coords, e.length, list(e.cuts)) for e in self.edges])

    def graph(self) -> nx.Graph:
        """The weighted graph of the network's pieces (parallel pieces: the shortest)."""
        g = nx.Graph()
        g.add_nodes_from(self.xy)
        for e in self.edges:
            for (d0, a), (d1, b) in zip(e.cuts, e.cuts[1:]):
                w = d1 - d0
                if a == b:
                    continue
                if not g.has_edge(a, b) or g.edges[a, b]["length"] > w:
                    g.add_edge(a, b, length=w)
        return g


def _polyline_length(c: Coords) -> float:
    return float(np.hypot(*np.diff(c, axis=0).T).sum()) if len(c) > 1 else 0.0


def _network(g: nx.Graph, scale: float) -> _Network:
    """Step 1: merge chains of degree-2 nodes into polyline edges (coordinates times ``scale``).

    Node ``xy`` gives positions; a node with ``endpoint=True`` (where :func:`graph_from_polylines` dropped a
    duplicated segment) stays a node whatever its degree. An edge ``geometry`` (``(N, 2)`` coordinates from one
    end to the other, in either direction) gives its shape, else it is straight. A cycle without end points is
    cut at its first node.
    """
    xy = {n: (float(d["xy"][0]) * scale, float(d["xy"][1]) * scale) for n, d in g.nodes(data=True)}
    h = nx.Graph(g)
    h.remove_edges_from(list(nx.selfloop_edges(h)))

    def seg(a: Hashable, b: Hashable) -> Coords:
        geom = h.edges[a, b].get("geometry")
        if geom is None:
            return np.array([xy[a], xy[b]], float)
        c = np.asarray(getattr(geom, "coords", geom), float)[:, :2] * scale
        if np.hypot(*(c[0] - xy[a])) > np.hypot(*(c[0] - xy[b])):
            c = c[::-1]
        return c

    ends = [n for n in h.nodes if h.degree(n) != 2 or g.nodes[n].get("endpoint")]
    stop = set(ends)
    seen: set[frozenset[Hashable]] = set()
    edges: list[_Edge] = []

    def walk(start: Hashable) -> None:
        for nb in list(h.neighbors(start)):
            if frozenset((start, nb)) in seen:
                continue
            seen.add(frozenset((start, nb)))
            parts, prev, cur = [seg(start, nb)], start, nb
            while cur not in stop:
                nxt = next(k for k in h.neighbors(cur) if k != prev)
                if frozenset((cur, nxt)) in seen:
                    break
                seen.add(frozenset((cur, nxt)))
                parts.append(seg(cur, nxt))
                prev, cur = cur, nxt
            c = np.vstack([parts[0]] + [p[1:] for p in parts[1:]])
            edges.append(_Edge(start, cur, c, _polyline_length(c)))

    for n in ends:
        walk(n)
    for n in list(h.nodes):  # cycles without an end point
        if any(frozenset((n, m)) not in seen for m in h.neighbors(n)):
            ends.append(n)
            stop.add(n)
            walk(n)
    keep = set(ends)
    return _Network({n: xy[n] for n in h.nodes if n in keep}, edges)


def _drop_small_components(net: _Network, min_length: float) -> _Network:
    """Step 1: drop components whose longest shortest path is below ``min_length`` (isolated nodes too)."""
    if min_length <= 0:
        return net
    g = net.graph()
    bad: set[Hashable] = set()
    for comp in nx.connected_components(g):
        sub = g.subgraph(comp)
        if sub.number_of_edges() == 0:
            bad |= comp
            continue
        if len(comp) > _MAX_NODES_TO_MEASURE:
            continue
        longest = max(max(d.values()) for _, d in nx.all_pairs_dijkstra_path_length(sub, weight="length"))
        if longest < min_length:
            bad |= comp
    return _Network({n: p for n, p in net.xy.items() if n not in bad}, [e for e in net.edges if e.u not in bad])


def _point_at(e: _Edge, d: float) -> tuple[float, float]:
    c = e.coords
    seglen = np.hypot(*np.diff(c, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seglen)])
    i = int(np.clip(np.searchsorted(cum, d, side="right") - 1, 0, len(seglen) - 1))
    t = (d - cum[i]) / seglen[i] if seglen[i] > 0 else 0.0
    p = c[i] + t * (c[i + 1] - c[i])
    return float(p[0]), float(p[1])


def _add_cut(net: _Network, e: _Edge, d: float, node: Hashable) -> None:
    net.xy[node] = _point_at(e, d)
    i = next((k for k, (pos, _) in enumerate(e.cuts) if pos > d), len(e.cuts) - 1)
    e.cuts.insert(i, (d, node))


def _midpoints(net: _Network, spacing: float, curved_eps: float) -> tuple[_Network, list[Hashable]]:
    """Step 2: ``net`` with midpoint nodes; returns it and the control points (nodes, then midpoints)."""
    out = net.copy()
    control = list(out.xy)
    k = 0
    for e in out.edges:
        length = e.length
        if length <= 0 or length < 0.75 * spacing:
            continue
        if curved_eps >= 0:
            lo, hi = e.coords.min(axis=0), e.coords.max(axis=0)
            if abs(float(np.hypot(*(hi - lo))) - length) / length < curved_eps:
                continue
        if length <= spacing:
            ds = [0.5 * length]
        else:
            n = len(np.arange(0, length, spacing)) + 1
            ds = list(np.linspace(0, length, n)[1:-1])
        for d in ds:
            node = ("mid", k)
            k += 1
            _add_cut(out, e, float(d), node)
            control.append(node)
    return out, control


def _insert(
    net: _Network,
    points: Sequence[tuple[Hashable, tuple[float, float]]],
    buffer: float,
    allow_renaming: bool,
    rename_tolerance: float,
) -> dict[Hashable, Hashable]:
    """Step 3: insert control points into ``net`` (modified); returns ``{control point: node of net}``."""
    import shapely

    if not net.edges:
        return {}
    lines = [shapely.LineString(e.coords) for e in net.edges]
    tree = shapely.STRtree(lines)
    carried: dict[Hashable, list[Hashable]] = {}  # node -> control points it carries
    k = 0
    for cp, (x, y) in points:
        pt = shapely.Point(x, y)
        idx, dist = tree.query_nearest(pt, return_distance=True, all_matches=True)
        if len(idx) == 0 or float(dist[0]) > buffer:
            continue
        i = int(min(idx))
        e, line = net.edges[i], lines[i]
        d = float(line.project(pt))
        pos = [p for p, _ in e.cuts]
        j = int(np.argmin([abs(p - d) for p in pos]))
        end = abs(pos[j] - d) <= rename_tolerance or d <= 0.0 or d >= line.length
        if end:
            node = e.cuts[j][1]
            if allow_renaming:
                carried[node] = [cp]
            else:
                carried.setdefault(node, []).append(cp)
            continue
        node = ("ins", k)
        k += 1
        _add_cut(net, e, d, node)
        carried[node] = [cp]
    return {cp: node for node, cps in carried.items() for cp in cps}


def _lengths(g: nx.Graph, sources: Iterable[Hashable], targets: set[Hashable]) -> dict[Hashable, dict[Hashable, float]]:
    out = {}
    for s in sources:
        d = nx.single_source_dijkstra_path_length(g, s, weight="length")
        out[s] = {t: v for t, v in d.items() if t in targets}
    return out


def _one_way(
    native: dict[Hashable, dict[Hashable, float]],
    control: Sequence[Hashable],
    other: nx.Graph,
    where: dict[Hashable, Hashable],
    min_path_length: float,
) -> tuple[float, int]:
    """Steps 3-4 for one direction: ``(1 - mean score, number of scored pairs)``."""
    ctrl = set(control)
    node_of = {cp: where[cp] for cp in control if cp in where}
    cp_at: dict[Hashable, list[Hashable]] = {}
    for cp, n in node_of.items():
        cp_at.setdefault(n, []).append(cp)
    diffs: list[float] = []
    for a in control:
        paths = native.get(a, {})
        if a not in node_of:
            diffs += [1.0] * sum(1 for b in paths if b != a and b in ctrl)
            continue
        reach = nx.single_source_dijkstra_path_length(other, node_of[a], weight="length")
        for b, length in paths.items():
            if b not in ctrl or length < min_path_length:
                continue
            nb = node_of.get(b)
            if nb is None or nb not in reach:
                diffs.append(1.0)
            else:
                diffs.append(min(1.0, abs(length - reach[nb]) / length) if length > 0 else 0.0)
    if not diffs:
        return 0.0, 0
    return 1.0 - float(np.mean(diffs)), len(diffs)


def apls(
    g_gt: nx.Graph,
    g_prop: nx.Graph,
    *,
    buffer: float = 4.0,
    spacing: float = 50.0,
    curved_eps: float = -1.0,
    min_path_length: float = 0.001,
    min_subgraph_length: float = 5.0,
    allow_renaming: bool = True,
    rename_tolerance: float = 0.0,
    max_nodes_for_midpoints: int = 500,
    max_nodes: int = 1000,
    seed: int = 0,
    scale: float = 1.0,
) -> APLSResult:
    """APLS between a ground-truth and a proposal road graph, as CosmiQ's reference computes it.

    The steps are listed in the module docstring; each keyword is one of the reference's parameters with
    its default (:data:`APLS_DEFAULTS`). Distances are in the graphs' units times ``scale``: metres for
    the SpaceNet definition.

    Args:
        g_gt: Ground-truth graph: node ``xy`` ``(x, y)`` and optional ``endpoint`` (stays a node of the
            network even where two edges meet); optional edge ``geometry`` (``(N, 2)`` coordinates
            or a shapely LineString) for curved edges, else edges are straight. Any graph of
            :mod:`rsviz.postprocess.road_graph` (mask skeletons, line vectors) qualifies.
        g_prop: Proposal graph, same coordinates.
        buffer: Largest distance from a control point to the edge it is inserted into (``max_snap_dist``), metres.
        spacing: Distance between midpoints along an edge (``linestring_delta``), metres.
        curved_eps: Only edges at least this fraction longer than their bounding-box diagonal get midpoints
            (``is_curved_eps``); < 0: every edge.
        min_path_length: Shorter paths are not scored (``min_path_length``), metres.
        min_subgraph_length: Components whose longest path is shorter are dropped from both graphs
            (the reference's ground-truth ``min_subgraph_length``; its WKT reader drops proposal components
            under 10 px instead), metres.
        allow_renaming: A control point projected onto a node takes the node over (``allow_renaming``).
        rename_tolerance: Projections within this distance along an edge of a node there are that node,
            metres; 0 (the reference) splits the edge wherever the projection is not exactly a node (the
            reference's 0.05 m box only tells which end an end projection is).
        max_nodes_for_midpoints: A ground truth with this many nodes or more gets no midpoints; ``max_nodes``
            random nodes of each graph are the control points instead.
        max_nodes: Control points sampled per graph on large graphs.
        seed: Seed of that sampling.
        scale: Metres per unit of the graphs' coordinates (a pixel graph: the GSD).

    Returns:
        :class:`APLSResult`.
    """
    net_gt = _drop_small_components(_network(g_gt, scale), min_subgraph_length)
    net_p = _drop_small_components(_network(g_prop, scale), min_subgraph_length)
    if not net_gt.edges:
        return APLSResult(float("nan"), float("nan"), float("nan"))
    if len(net_gt.xy) < max_nodes_for_midpoints:
        cp_gt, ctrl_gt = _midpoints(net_gt, spacing, curved_eps)
        cp_p, ctrl_p = _midpoints(net_p, spacing, curved_eps)
    else:
        rng = np.random.default_rng(seed)
        cp_gt, cp_p = net_gt, net_p
        ctrl_gt, ctrl_p = [
            [nodes[i] for i in sorted(rng.choice(len(nodes), min(max_nodes, len(nodes)), replace=False))]
            for nodes in (list(net_gt.xy), list(net_p.xy))
        ]
    if not net_p.edges:
        return APLSResult(0.0, 0.0, 0.0, control_gt=len(ctrl_gt))
    native_gt = _lengths(cp_gt.graph(), ctrl_gt, set(ctrl_gt))
    native_p = _lengths(cp_p.graph(), ctrl_p, set(ctrl_p))
    prime_p, prime_gt = net_p.copy(), net_gt.copy()
    at_p = _insert(prime_p, [(c, cp_gt.xy[c]) for c in ctrl_gt], buffer, allow_renaming, rename_tolerance)
    at_gt = _insert(prime_gt, [(c, cp_p.xy[c]) for c in ctrl_p], buffer, allow_renaming, rename_tolerance)
    a, na = _one_way(native_gt, ctrl_gt, prime_p.graph(), at_p, min_path_length)
    b, nb = _one_way(native_p, ctrl_p, prime_gt.graph(), at_gt, min_path_length)
    h = 0.0 if a <= 0 or b <= 0 else 2 * a * b / (a + b)
    return APLSResult(h, a, b, na, nb, len(ctrl_gt), len(ctrl_p), len(at_p), len(at_gt))


def apls_length(g_gt: nx.Graph, g_prop: nx.Graph, **params: Any) -> APLSResult:
    """SpaceNet 5's ``APLS_length``: :func:`apls` with edge length as path weight (which :func:`apls` uses).

    The name is kept for the SpaceNet 5 metric pair (``APLS_length``, ``APLS_time``); the value equals
    :func:`apls`'s.
    """
    return apls(g_gt, g_prop, **params)


#: What :func:`graph_from_polylines` does with a segment given more than once (see there).
DuplicateSegments = Literal["drop", "keep"]


def graph_from_polylines(lines: Iterable[Any], *, duplicates: DuplicateSegments = "drop") -> nx.Graph:
    """A graph of line geometries as the reference reads them: a node per vertex (equal coordinates are one
    node), an edge per segment.

    A segment between two vertices that occurs more than once (two lines sharing it, in either direction) is
    where the reference's two readers differ, and ``duplicates`` chooses between them:

    * ``"drop"`` (its GeoJSON reader, ``graphTools.create_graphGeoJson`` then ``_refine_gt_graph``): the copies
      become parallel edges, osmnx's ``simplify_graph`` keeps the nodes at both ends as end points (a node with
      a parallel edge is one), and ``create_edge_linestrings(remove_redundant=True)`` then removes *every* copy
      (each copy matches the first one's geometry and its reverse, and each match removes one edge). So the
      segment is missing from the graph and its two end vertices stay nodes (node attribute ``endpoint=True``,
      which :func:`apls` keeps as nodes of the network even when two edges meet there). On SpaceNet's Vegas
      sample one 2.5 m link shared by two GeoJSON features goes this way; it moves APLS from 0.823 to 0.729.
    * ``"keep"`` (its WKT reader, ``wkt_to_G.wkt_list_to_nodes_edges``, which skips an edge it has seen): one
      edge per segment.

    Args:
        lines: shapely LineStrings / MultiLineStrings, or ``(N, 2)`` coordinate sequences, one CRS.
        duplicates: ``"drop"`` or ``"keep"`` a segment that occurs more than once, as above.

    Returns:
        ``networkx.Graph`` with node ``xy`` (and ``endpoint`` where a dropped segment ended) and edge
        ``length`` (Euclidean, in the coordinates' units).

    Raises:
        ValueError: ``duplicates`` is neither ``"drop"`` nor ``"keep"``.
    """
    if duplicates not in ("drop", "keep"):
        raise ValueError(f"duplicates must be 'drop' or 'keep', not {duplicates!r}")
    g = nx.Graph()
    index: dict[tuple[float, float], int] = {}
    count: dict[frozenset[int], int] = {}

    def node(p: Sequence[float]) -> int:
        key = (float(p[0]), float(p[1]))
        if key not in index:
            index[key] = len(index)
            g.add_node(index[key], xy=key)
        return index[key]

    for geom in lines:
        parts = getattr(geom, "geoms", None)
        for line in parts if parts is not None else [geom]:
            coords = list(getattr(line, "coords", line))
            ids = [node(p) for p in coords]
            for (a, pa), (b, pb) in zip(zip(ids, coords), zip(ids[1:], coords[1:])):
                if a == b:
                    continue
                count[frozenset((a, b))] = count.get(frozenset((a, b)), 0) + 1
                if not g.has_edge(a, b):
                    g.add_edge(a, b, length=math.hypot(pb[0] - pa[0], pb[1] - pa[1]))
    if duplicates == "drop":
        for pair, n in count.items():
            if n > 1:
                a, b = tuple(pair)
                g.remove_edge(a, b)
                g.nodes[a]["endpoint"] = g.nodes[b]["endpoint"] = True
    return g
