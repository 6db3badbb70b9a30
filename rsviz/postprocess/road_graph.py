"""Road-graph extraction: road masks and road vectors to graphs, as APLS scores them.

Graphs are :class:`networkx.Graph` objects in pixel coordinates (node attribute ``xy``,
edge attribute ``length`` in pixels; bridge edges carry ``bridge=True``). The skeleton graph
of a mask (:func:`graph_from_mask`) keeps junctions, end points and a node every ``spacing``
pixels; :func:`bridge_gaps` joins a dead end to the road it points at (the gap a tree or a
shadow leaves in a predicted mask). How the *proposal* graph is extracted is part of a model,
so a card states it as :class:`RoadGraphSettings` (``extra.road_graph``), chosen on val.

Road *vectors* (GeoJSON LineStrings, SpaceNet's ``ImageId,WKT_Pix`` CSV) are read by
:func:`read_road_lines` into :class:`RoadLines`, centre lines in metres of a projected CRS
(:func:`metric_crs`), as APLS scores them; :func:`graph_road_lines` puts a pixel graph (a mask
skeleton) into the same CRS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Literal, Mapping, Sequence

import networkx as nx
import numpy as np
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

if TYPE_CHECKING:
    import shapely
    from affine import Affine
    from rasterio.crs import CRS

from rsviz.postprocess.settings import CardSettings


@dataclass(frozen=True)
class RoadGraphSettings(CardSettings):
    """How a road probability map becomes the proposal graph of APLS (a card's ``extra.road_graph``).

    Attributes:
        threshold: Road where probability >= this, in [0, 1].
        closing_px: Radius of the morphological closing of the road mask, pixels.
        min_spur: Dead-end branches shorter than this are pruned from both graphs, pixels.
        bridge_px: Longest gap across which a dead end is joined to the road it points at, pixels (0: off).
        bridge_angle: Largest angle between a dead end's direction and the bridge, degrees.
    """

    kind: ClassVar[str] = "road-graph"
    threshold: float = 0.5
    closing_px: int = 2
    min_spur: float = 20.0
    bridge_px: float = 0.0
    bridge_angle: float = 30.0


_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def clean_road_mask(
    mask: np.ndarray, *, closing_px: int = 2, max_hole_px: int = 100, max_object_px: int = 100
) -> np.ndarray:
    """Tidy a predicted road mask before it becomes a graph.

    Morphological closing with a disk of radius ``closing_px`` (bridges 1-2 px breaks), then
    holes of at most ``max_hole_px`` pixels are filled and blobs of at most ``max_object_px``
    pixels removed (:mod:`skimage.morphology`), so the skeleton has fewer loops and orphan spurs.

    Args:
        mask: ``(H, W)`` {0, 1} road mask.

    Returns:
        ``(H, W)`` bool cleaned mask.
    """
    from skimage.morphology import closing, disk, remove_small_holes, remove_small_objects

    m = np.asarray(mask, bool)
    if closing_px > 0:
        m = closing(m, disk(closing_px))
    if max_hole_px > 0:
        m = remove_small_holes(m, max_size=max_hole_px)
    if max_object_px > 0:
        m = remove_small_objects(m, max_size=max_object_px)
    return m


def prune_spurs(g: nx.Graph, min_spur: float) -> nx.Graph:
    """Remove, repeatedly, terminal branches (end node up to the first junction) shorter than ``min_spur``.

    Skeletons of thick or ragged masks grow short side branches that are not roads; every
    such end point would otherwise be an APLS control node. Isolated paths (no junction)
    are kept. Modifies and returns ``g``.
    """
    changed = min_spur > 0
    while changed:
        changed = False
        for e in [n for n in g.nodes if g.degree(n) == 1]:
            if e not in g or g.degree(e) != 1:
                continue
            path, length, cur, prev = [e], 0.0, e, None
            while True:
                nxt = [m for m in g.neighbors(cur) if m != prev]
                if len(nxt) != 1:
                    break
                length += g.edges[cur, nxt[0]]["length"]
                prev, cur = cur, nxt[0]
                if g.degree(cur) != 2:
                    break
                path.append(cur)
            if g.degree(cur) >= 3 and length < min_spur:
                g.remove_nodes_from(path)
                changed = True
    return g


def bridge_gaps(g: nx.Graph, max_gap: float, *, max_angle: float = 45.0, look_back: float = 10.0) -> nx.Graph:
    """Join dead ends to the road they point at, across gaps of at most ``max_gap``.

    A predicted road that is occluded by a tree or a car often breaks into pieces a few metres
    apart; every break cuts all the shortest paths through it, which APLS punishes far more than
    the missing pixels. Each end node (degree 1) gets a direction from the last ``look_back``
    pixels of its branch; among the nodes within ``max_gap`` of it that lie within ``max_angle``
    degrees of that direction and are not already reachable from it along the graph within
    ``2 * max_gap + look_back`` (its own branch), the nearest is joined by a straight edge. This
    is the dead-end linking used in SpaceNet 3 road-network entries (e.g. albu's ``skeleton``
    post-processing) and, as a learned variant, Batra et al., "Improved Road Connectivity by
    Joint Learning of Orientation and Segmentation", CVPR 2019. Modifies and returns ``g``.

    Args:
        g: Graph with node ``xy`` (pixels) and edge ``length``.
        max_gap: Longest bridge, pixels; 0 disables.
        max_angle: Largest angle between the branch direction and the bridge, degrees.
        look_back: Branch length used for the direction, pixels.

    Returns:
        ``g`` with bridge edges (``length`` = their Euclidean length, ``bridge=True``).
    """
    ends = [n for n in g.nodes if g.degree(n) == 1]
    if max_gap <= 0 or not ends:
        return g
    nodes = list(g.nodes)
    xy = np.array([g.nodes[n]["xy"] for n in nodes], float)
    tree = cKDTree(xy)
    cos_min = math.cos(math.radians(max_angle))
    bridges = []
    for e in ends:
        prev, cur, walked = None, e, 0.0
        while walked < look_back:
            nxt = [m for m in g.neighbors(cur) if m != prev]
            if len(nxt) != 1:
                break
            walked += g.edges[cur, nxt[0]]["length"]
            prev, cur = cur, nxt[0]
        exy = np.asarray(g.nodes[e]["xy"], float)
        d = exy - np.asarray(g.nodes[cur]["xy"], float)
        norm = float(np.hypot(*d))
        if norm == 0:
            continue
        d /= norm
        own = nx.single_source_dijkstra_path_length(g, e, cutoff=2 * max_gap + look_back, weight="length")
        best, best_d = None, math.inf
        for i in tree.query_ball_point(exy, max_gap):
            n = nodes[i]
            if n in own:
                continue
            v = xy[i] - exy
            dist = float(np.hypot(*v))
            if 0 < dist < best_d and float(v @ d) / dist >= cos_min:
                best, best_d = n, dist
        if best is not None:
            bridges.append((e, best, best_d))
    for a, b, dist in bridges:
        if not g.has_edge(a, b):
            g.add_edge(a, b, length=dist, bridge=True)
    return g


def graph_from_mask(
    mask: np.ndarray, spacing: float = 20.0, min_length: float = 5.0, min_spur: float = 0.0
) -> nx.Graph:
    """Road graph from a binary road mask via its skeleton.

    Nodes are skeleton pixels (``xy`` = (col, row) in pixels), 8-connected, edges weighted by
    Euclidean step length. Control nodes (``control=True``): pixels with degree != 2
    (intersections, end points) plus one pixel per ``spacing`` x ``spacing`` cell.
    Connected components shorter than ``min_length`` pixels (spurs of noise) are dropped, and
    terminal branches shorter than ``min_spur`` pixels pruned (:func:`prune_spurs`).

    Args:
        mask: ``(H, W)`` {0, 1}.
        spacing: Control point spacing, pixels.
        min_length: Minimum component length, pixels.
        min_spur: Minimum terminal-branch length, pixels (0 keeps every branch).

    Returns:
        ``networkx.Graph``.
    """
    sk = skeletonize(np.asarray(mask, bool))
    rr, cc = np.nonzero(sk)
    g = nx.Graph()
    idx = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(rr, cc))}
    for (r, c), i in idx.items():
        g.add_node(i, xy=(c + 0.5, r + 0.5), control=False)
    for (r, c), i in idx.items():
        for dr, dc in _NEIGHBOURS:
            j = idx.get((r + dr, c + dc))
            if j is not None and j > i:
                g.add_edge(i, j, length=math.hypot(dr, dc))
    for comp in list(nx.connected_components(g)):
        if g.subgraph(comp).size(weight="length") < min_length:
            g.remove_nodes_from(comp)
    prune_spurs(g, min_spur)
    seen: set[tuple[int, int]] = set()
    for n, d in g.nodes(data=True):
        x, y = d["xy"]
        cell = (int(y // spacing), int(x // spacing))
        if g.degree(n) != 2 or cell not in seen:
            d["control"] = True
            seen.add(cell)
    return g


def graph_from_lines(
    lines: Iterable[shapely.Geometry], spacing: float = 20.0, snap: float = 1e-6, node_spacing: float | None = None
) -> nx.Graph:
    """Road graph from line geometries (shapely LineString / MultiLineString, one CRS).

    Lines are densified with nodes at most ``node_spacing`` apart (default ``spacing / 4``), so
    control points of the other graph snap onto roads, not only onto sparse vertices (APLS
    inserts snapped points into edges to the same effect). Control nodes are the line vertices
    plus one node every ``spacing`` along each segment. Vertices closer than ``snap`` are merged
    (shared intersections).

    Returns:
        ``networkx.Graph`` with node ``xy`` and ``control``, edge ``length``.
    """
    g = nx.Graph()
    index: dict[tuple[int, int], int] = {}
    step = node_spacing or spacing / 4.0

    def node(x: float, y: float, control: bool) -> int:
        key = (round(x / snap), round(y / snap))
        if key not in index:
            index[key] = len(index)
            g.add_node(index[key], xy=(x, y), control=control)
        elif control:
            g.nodes[index[key]]["control"] = True
        return index[key]

    for geom in lines:
        parts = getattr(geom, "geoms", [geom])
        for line in parts:
            coords = list(line.coords)
            for (x0, y0, *_), (x1, y1, *_) in zip(coords, coords[1:]):
                seg = math.hypot(x1 - x0, y1 - y0)
                k = max(1, int(math.ceil(seg / step)))
                every = max(1, int(round(spacing / (seg / k)))) if seg > 0 else 1
                prev = node(x0, y0, True)
                for s_ in range(1, k + 1):
                    cur = node(x0 + (x1 - x0) * s_ / k, y0 + (y1 - y0) * s_ / k, s_ == k or s_ % every == 0)
                    if cur != prev:
                        g.add_edge(prev, cur, length=seg / k)
                    prev = cur
    return g


def mask_graphs(
    pred: np.ndarray,
    target: np.ndarray,
    spacing: float,
    min_spur: float,
    clean: bool,
    closing_px: int,
    bridge_px: float,
    bridge_angle: float,
) -> tuple[nx.Graph, nx.Graph]:
    """``(g_gt, g_prop)`` skeleton graphs of a ground-truth and a predicted road mask (arguments as in
    :func:`rsviz.metrics.roads.apls_from_masks`)."""
    p = clean_road_mask(pred, closing_px=closing_px) if clean else pred
    g_prop = bridge_gaps(graph_from_mask(p, spacing, min_spur=min_spur), bridge_px, max_angle=bridge_angle)
    return graph_from_mask(target, spacing, min_spur=min_spur), g_prop


def road_graphs(
    prob: np.ndarray, target: np.ndarray, params: RoadGraphSettings | Mapping[str, Any]
) -> tuple[nx.Graph, nx.Graph]:
    """Ground-truth and proposal graphs as :func:`road_graph_apls` scores them (pixel coordinates).

    Args:
        prob: ``(H, W)`` float road probability in [0, 1] (a {0, 1} mask works with threshold <= 1).
        target: ``(H, W)`` {0, 1} ground-truth road mask.
        params: :class:`RoadGraphSettings`, or a card's ``extra.road_graph`` dict (missing keys: the defaults).

    Returns:
        ``(g_gt, g_prop)``; proposal bridge edges carry ``bridge=True``.
    """
    q = params if isinstance(params, RoadGraphSettings) else RoadGraphSettings.from_dict(params)
    return mask_graphs(
        np.asarray(prob) >= q.threshold, target, 20.0, q.min_spur, True, int(q.closing_px), q.bridge_px, q.bridge_angle
    )


def graph_lines(g: nx.Graph) -> list[tuple[list[tuple[float, float]], bool]]:
    """The graph as polylines: chains of degree-2 nodes between end points / junctions (pixel ``xy``).

    Returns:
        ``[(coords, is_bridge)]``; a bridge edge is its own two-point line.
    """
    lines, seen = [], set()
    for a, b, d in g.edges(data=True):
        if d.get("bridge"):
            lines.append(([g.nodes[a]["xy"], g.nodes[b]["xy"]], True))
            seen.add(frozenset((a, b)))
    plain = [n for n in g.nodes if g.degree(n) != 2 or any(g.edges[n, m].get("bridge") for m in g.neighbors(n))]
    starts = plain + list(g.nodes)  # loops without an end point start anywhere
    for s in starts:
        for m in g.neighbors(s):
            if frozenset((s, m)) in seen:
                continue
            path, prev, cur = [s, m], s, m
            seen.add(frozenset((s, m)))
            while g.degree(cur) == 2 and not any(g.edges[cur, k].get("bridge") for k in g.neighbors(cur)):
                nxt = next(k for k in g.neighbors(cur) if k != prev)
                if frozenset((cur, nxt)) in seen:
                    break
                seen.add(frozenset((cur, nxt)))
                path.append(nxt)
                prev, cur = cur, nxt
            lines.append(([g.nodes[n]["xy"] for n in path], False))
    return lines


# --------------------------------------------------------------------------- road vectors


@dataclass(frozen=True)
class RoadLines:
    """Road centre lines in metres of a projected CRS (what APLS scores).

    Attributes:
        lines: ``(N, 2)`` float arrays of ``(x, y)`` vertices, metres in ``crs``.
        crs: The projected CRS (metres) of the coordinates.
        source: Where they came from (a file path, or ``mask`` for a raster's skeleton).
        duplicates: What APLS's graph does with a segment given twice, as the reference's reader of this
            format does (:func:`rsviz.metrics.apls_core.graph_from_polylines`): ``"drop"`` for GeoJSON,
            ``"keep"`` for SpaceNet's WKT CSV and mask skeletons.
    """

    lines: tuple[np.ndarray, ...]
    crs: CRS
    source: str
    duplicates: Literal["drop", "keep"] = "keep"


def metric_crs(crs: CRS | str | int, x: float, y: float) -> CRS:
    """The CRS in which APLS measures lengths around ``(x, y)`` (coordinates in ``crs``).

    ``crs`` itself when it is projected in metres (web mercator excepted: its metres are not ground
    metres), else the UTM zone of the point (the reference projects both graphs to UTM).

    Raises:
        CRSError: ``crs`` is not a CRS.
    """
    from pyproj import Transformer

    from rsviz.geo import WEB_MERCATOR, WGS84, to_crs

    c = to_crs(crs)
    if c.is_projected and c != WEB_MERCATOR and (c.linear_units or "").lower() in ("metre", "meter", "m"):
        return c
    lon, lat = Transformer.from_crs(c, WGS84, always_xy=True).transform(x, y)
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return to_crs(f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}")


def _to_metric(parts: Sequence[np.ndarray], src: CRS, dst: CRS) -> tuple[np.ndarray, ...]:
    from pyproj import Transformer

    if src == dst:
        return tuple(np.asarray(p, float) for p in parts)
    tr = Transformer.from_crs(src, dst, always_xy=True)
    return tuple(np.column_stack(tr.transform(p[:, 0], p[:, 1])) for p in parts)


def _line_parts(geom: Mapping[str, Any], where: str) -> list[np.ndarray]:
    from rsviz.errors import GeometryTypeError

    kind = geom.get("type")
    coords = geom.get("coordinates") or []
    if kind == "LineString":
        parts = [coords]
    elif kind == "MultiLineString":
        parts = list(coords)
    else:
        raise GeometryTypeError(f"{where} is a {kind}; road vectors must be LineString or MultiLineString centre lines")
    out = []
    for p in parts:
        a = np.asarray(p, float).reshape(-1, np.asarray(p).shape[-1] if len(p) else 2)[:, :2]
        if len(a) >= 2:
            out.append(a)
    return out


def read_road_lines(
    path: str | Path,
    *,
    transform: Affine | None = None,
    crs: CRS | None = None,
    metric: CRS | None = None,
    image_id: str | None = None,
    image_name: str | None = None,
) -> RoadLines:
    """Read road centre lines from GeoJSON or a SpaceNet WKT CSV, in metres.

    * **GeoJSON** (``.geojson`` / ``.json``): a FeatureCollection of LineString / MultiLineString features
      in the file's CRS (RFC 7946: lon/lat unless a legacy ``crs`` member says otherwise).
    * **SpaceNet CSV** (``.csv``): columns ``ImageId`` and ``WKT_Pix``, one LINESTRING per row in pixel
      coordinates (column, row) of the image they were drawn on (``transform`` and ``crs`` give its grid);
      ``LINESTRING EMPTY`` rows (an image without roads) are allowed. Rows of ``image_id`` are read; without
      it, the only ImageId of the file, or the one that ends the image's file name.

    Args:
        path: The file.
        transform: Pixel-to-CRS transform of the image (pixel coordinates only).
        crs: CRS of that image.
        metric: The projected CRS to return (None: :func:`metric_crs` of the first vertex).
        image_id: SpaceNet ImageId of the rows to read (CSV only).
        image_name: File name of the image, whose stem ends with its ImageId in SpaceNet
            (``RGB-PanSharpen_AOI_2_Vegas_img0.tif``: ``AOI_2_Vegas_img0``).

    Returns:
        :class:`RoadLines` (possibly without lines).

    Raises:
        RsvizError: The file cannot be read, has no usable columns, a WKT cannot be parsed, or pixel
            coordinates come without an image grid; the message names the file and what to fix.
        GeometryTypeError: A geometry is not a line.
    """
    from rsviz.errors import RsvizError

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".geojson", ".json"):
        from rsviz.labels import read_geojson_features

        feats, src = read_geojson_features(p)
        parts: list[np.ndarray] = []
        for i, f in enumerate(feats):
            parts += _line_parts(f["geometry"], f"{p}: feature {i}")
    elif suffix == ".csv":
        if transform is None or crs is None:
            raise RsvizError(
                f"{p} holds pixel coordinates (WKT_Pix); pass --image RASTER, the georeferenced image they were "
                "drawn on, to place them"
            )
        parts = [transform_pixels(a, transform) for a in _read_wkt_csv(p, image_id, image_name)]
        src = crs
    else:
        raise RsvizError(
            f"{p}: road vectors must be GeoJSON (.geojson) LineStrings or a SpaceNet CSV (.csv with ImageId, "
            "WKT_Pix); rename or convert the file"
        )
    if metric is None:
        if not parts:
            raise RsvizError(f"{p} has no road lines to place; pass --image RASTER to give the metric CRS")
        metric = metric_crs(src, *parts[0][0])
    # the reference's GeoJSON reader loses segments two lines share, its WKT reader keeps one copy
    return RoadLines(_to_metric(parts, src, metric), metric, str(p), "keep" if suffix == ".csv" else "drop")


def transform_pixels(xy: np.ndarray, transform: Affine) -> np.ndarray:
    """``(N, 2)`` pixel ``(column, row)`` coordinates to CRS coordinates of ``transform`` (pixel corners)."""
    xs, ys = transform * (xy[:, 0], xy[:, 1])  # type: ignore[operator]  # affine maps arrays too
    return np.column_stack([xs, ys]).astype(float)


def _read_wkt_csv(p: Path, image_id: str | None, image_name: str | None) -> list[np.ndarray]:
    import csv

    import shapely
    import shapely.wkt
    from shapely.errors import GEOSException

    from rsviz.errors import RsvizError

    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            if "ImageId" not in cols or "WKT_Pix" not in cols:
                raise RsvizError(
                    f"{p} has columns {cols}; a SpaceNet road CSV needs ImageId and WKT_Pix (pixel coordinates)"
                )
            rows = [(n, r["ImageId"], r["WKT_Pix"]) for n, r in enumerate(reader, start=2)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RsvizError(f"cannot read {p}: {exc}; expected a CSV with ImageId and WKT_Pix columns") from exc
    ids = sorted({i for _, i, _ in rows})
    if image_id is None and len(ids) > 1:
        image_id = next((i for i in ids if image_name and Path(image_name).stem.endswith(i)), None)
        if image_id is None:
            raise RsvizError(
                f"{p} holds {len(ids)} images ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''}) and none "
                "ends the image's file name; pass --image-id to pick one"
            )
    if image_id is not None and image_id not in ids and rows:
        raise RsvizError(f"{p} has no rows of ImageId {image_id!r}; it has {', '.join(ids[:5])}")
    out = []
    for n, i, text in rows:
        if image_id is not None and i != image_id:
            continue
        try:
            geom = shapely.wkt.loads(text)
        except (GEOSException, ValueError, TypeError) as exc:
            raise RsvizError(
                f"{p} line {n}: cannot read WKT_Pix {text[:40]!r} ({exc}); expected LINESTRING (x y, ...)"
            ) from exc
        if geom.is_empty:
            continue
        out += _line_parts(shapely.geometry.mapping(geom), f"{p} line {n}")
    return out


def graph_road_lines(g: nx.Graph, transform: Affine, crs: CRS, metric: CRS | None = None) -> RoadLines:
    """A pixel graph (node ``xy`` = (column, row), e.g. a mask skeleton) as :class:`RoadLines`.

    Args:
        g: The graph; its polylines (:func:`graph_lines`) become the lines.
        transform: Pixel-to-CRS transform of its raster.
        crs: CRS of that raster.
        metric: The projected CRS to return (None: :func:`metric_crs` of the raster's origin).
    """
    parts = [transform_pixels(np.asarray(c, float), transform) for c, _ in graph_lines(g)]
    if metric is None:
        metric = metric_crs(crs, transform.c, transform.f)
    return RoadLines(_to_metric(parts, crs, metric), metric, "mask")
