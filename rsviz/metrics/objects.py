"""Object-level building metrics: polygons from masks and SpaceNet F1 at an IoU threshold.

Follows the SpaceNet building evaluator (Van Etten et al., "SpaceNet: A Remote Sensing
Dataset and Challenge Series", 2018; ``solaris.eval``): each proposal polygon, in turn,
is matched to the still-unmatched ground-truth polygon with which it has the highest
IoU; if that IoU >= ``iou_threshold`` (0.5) the pair is a true positive and the
ground-truth polygon is removed, else the proposal is a false positive. Unmatched
ground-truth polygons are false negatives. ``F1 = 2TP / (2TP + FP + FN)``.
``matching="hungarian"`` instead maximises total IoU with
:func:`scipy.optimize.linear_sum_assignment` over pairs above the threshold.
Polygons smaller than ``min_area`` (pixels^2 in pixel coordinates, or CRS units^2) are
dropped from both sides first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from shapely.geometry import shape
from shapely.strtree import STRtree


def split_instances(prob: np.ndarray, edge_prob: np.ndarray | None = None, threshold: float = 0.5,
                    edge_threshold: float = 0.5, min_seed_px: int = 8, method: str = "auto",
                    min_distance: int = 10, min_instance_px: int = 0, merge_below: float = 0.0,
                    keep_edge_instances: bool = False) -> np.ndarray:
    """Building instances from a footprint probability map.

    Methods:

    * ``components``: 4-connected components of ``prob >= threshold``;
    * ``edge`` (needs ``edge_prob``): seeds are the components of ``footprint & ~edge`` (at least
      ``min_seed_px`` pixels), grown back over the footprint with a watershed on ``-prob``
      (:func:`skimage.segmentation.watershed`), so buildings that touch in the mask are separated
      where the edge head sees a wall -- the purpose of the edge head in Ekim & Sertel (IGARSS 2021);
    * ``distance``: seeds at local maxima of the footprint's Euclidean distance transform at
      least ``min_distance`` pixels apart (:func:`skimage.feature.peak_local_max`), watershed on
      the negated distance -- the classic split of touching blobs, no edge head needed;
    * ``auto``: ``edge`` when ``edge_prob`` is given, else ``components``.

    Args:
        prob: ``(H, W)`` footprint probability.
        edge_prob: Optional ``(H, W)`` boundary probability.
        threshold: Footprint threshold.
        edge_threshold: Edge threshold (``edge``).
        min_seed_px: Smallest seed kept (``edge``).
        method: See above.
        min_distance: Minimum seed spacing in pixels (``distance``).
        min_instance_px: Instances smaller than this many pixels are dropped (set to 0): slivers
            left between edges and specks are not buildings.
        merge_below: With ``edge_prob``, touching instances whose shared boundary has a mean edge
            probability below this are merged (:func:`merge_weak_boundaries`), which undoes splits
            along roof ridges and texture the edge head only half believes; 0 disables.
        keep_edge_instances: Exempt instances that touch the image edge (first/last row or column)
            from ``min_instance_px``: a building cut by a chip edge can be small inside the chip.

    Returns:
        ``(H, W)`` int32 instance ids (0 background); every footprint pixel belongs to an instance
        unless it was in an instance under ``min_instance_px``.

    Raises:
        ValueError: Unknown method, or ``edge`` without ``edge_prob``.
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.measure import label
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    fg = np.asarray(prob) >= threshold
    if method == "auto":
        method = "edge" if edge_prob is not None else "components"
    if method == "components":
        inst = label(fg, connectivity=1)
    elif method == "edge":
        if edge_prob is None:
            raise ValueError("method 'edge' needs an edge probability map")
        seeds = fg & (np.asarray(edge_prob) < edge_threshold)
        seeds = remove_small_objects(seeds, max_size=min_seed_px - 1) if seeds.any() else seeds
        markers = label(seeds, connectivity=1)
        inst = watershed(-np.asarray(prob, np.float32), markers, mask=fg)
    elif method == "distance":
        dist = ndimage.distance_transform_edt(fg)
        comps = label(fg, connectivity=1)
        peaks = peak_local_max(dist, min_distance=min_distance, labels=comps, exclude_border=False)
        markers = np.zeros(fg.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        inst = watershed(-dist, markers, mask=fg)
    else:
        raise ValueError(f"unknown method {method!r}; valid: auto, components, edge, distance")
    # footprint pixels no seed reached (thin parts cut off by edges) keep their own components
    rest = fg & (inst == 0)
    if rest.any():
        extra = label(rest, connectivity=1)
        inst = np.where(rest, extra + inst.max(), inst)
    inst = inst.astype(np.int32)
    if merge_below > 0 and edge_prob is not None:
        inst = merge_weak_boundaries(inst, edge_prob, merge_below)
    if min_instance_px > 0 and inst.any():
        small = np.bincount(inst.ravel()) < min_instance_px
        small[0] = False
        if keep_edge_instances:
            small[np.concatenate([inst[0], inst[-1], inst[:, 0], inst[:, -1]])] = False
        inst[small[inst]] = 0
    return inst


def merge_weak_boundaries(instances: np.ndarray, edge_prob: np.ndarray, threshold: float) -> np.ndarray:
    """Merge touching instances whose shared boundary is weak in the edge map.

    Builds the region adjacency graph of ``instances`` with the mean of ``edge_prob`` along
    each shared boundary as edge weight (:func:`skimage.graph.rag_boundary`), drops
    background and every boundary with weight ``>= threshold``, and gives each connected
    group of instances one id (a threshold cut of the RAG, as in
    :func:`skimage.graph.cut_threshold`, but keeping 0 for background).

    Args:
        instances: ``(H, W)`` int instance ids, 0 background.
        edge_prob: ``(H, W)`` boundary probability in [0, 1].
        threshold: Boundaries with a mean edge probability below this are merged.

    Returns:
        ``(H, W)`` int32 instance ids, consecutive from 1.

    Raises:
        ValueError: If the two arrays differ in shape.
    """
    import networkx as nx
    from skimage import graph

    inst = np.asarray(instances).astype(np.int32)
    if inst.shape != np.shape(edge_prob):
        raise ValueError(f"instances {inst.shape} and edge_prob {np.shape(edge_prob)} differ in shape")
    if inst.max() < 2:
        return inst
    rag = graph.rag_boundary(inst, np.asarray(edge_prob, np.float64), connectivity=1)
    if 0 in rag:
        rag.remove_node(0)
    rag.remove_edges_from([(a, b) for a, b, d in rag.edges(data=True) if d["weight"] >= threshold])
    lut = np.zeros(int(inst.max()) + 1, np.int32)
    for i, comp in enumerate(nx.connected_components(rag), start=1):
        lut[list(comp)] = i
    return lut[inst]


def instances_for(heads: dict, pp: dict) -> np.ndarray:
    """Building instances of a prediction's heads (``probs``, optional ``edge``) with post-processing
    parameters ``pp`` (keys of :func:`split_instances`: method, threshold, edge_threshold,
    min_seed_px, min_distance, min_instance_px, merge_below, keep_edge_instances), as stated in a model card."""
    return split_instances(heads["probs"][0], heads.get("edge"), pp["threshold"], pp["edge_threshold"],
                           pp["min_seed_px"], pp["method"], pp["min_distance"], int(pp.get("min_instance_px", 0)),
                           float(pp.get("merge_below", 0.0)), bool(pp.get("keep_edge_instances", False)))


def instance_polygons(instances: np.ndarray, transform: Affine | None = None, *, min_area: float = 0.0,
                      valid: np.ndarray | None = None) -> dict[int, shapely.Geometry]:
    """One (multi)polygon per instance id of an int32 instance map (0 = background), keyed by the id.

    Args:
        instances: ``(H, W)`` int instance ids.
        transform: Pixel-to-CRS transform; pixel coordinates by default.
        min_area: Drop instances smaller than this (output units squared).
        valid: Optional bool mask; invalid pixels count as background.

    Returns:
        ``{instance id: geometry}`` in increasing id order; invalid rings are repaired (``buffer(0)``).
    """
    inst = np.asarray(instances).astype(np.int32)
    if valid is not None:
        inst = np.where(valid, inst, 0)
    t = transform if transform is not None else Affine.identity()
    parts: dict[int, list] = {}
    for geom, val in shapes(inst, mask=inst > 0, transform=t, connectivity=4):
        parts.setdefault(int(val), []).append(shape(geom))
    out = {}
    for val, ps in sorted(parts.items()):
        g = ps[0] if len(ps) == 1 else shapely.union_all(ps)
        if not g.is_valid:
            g = g.buffer(0)
        if not g.is_empty and g.area >= min_area:
            out[val] = g
    return out


def instances_to_polygons(instances: np.ndarray, transform: Affine | None = None, *, min_area: float = 0.0,
                          valid: np.ndarray | None = None) -> list[shapely.Geometry]:
    """The geometries of :func:`instance_polygons` (same arguments), in increasing id order."""
    return list(instance_polygons(instances, transform, min_area=min_area, valid=valid).values())


def mask_to_polygons(mask: np.ndarray, transform: Affine | None = None, *, min_area: float = 0.0,
                     valid: np.ndarray | None = None) -> list[shapely.Polygon]:
    """Connected components (4-connected) of a binary mask as polygons.

    Args:
        mask: ``(H, W)`` {0, 1}.
        transform: Pixel-to-CRS transform; pixel coordinates (identity) by default.
        min_area: Drop polygons smaller than this (units of the output coordinates squared).
        valid: Optional ``(H, W)`` bool; pixels outside are treated as background.

    Returns:
        Valid shapely polygons (holes kept).
    """
    m = np.asarray(mask).astype(np.uint8)
    if valid is not None:
        m = m & np.asarray(valid, np.uint8)
    t = transform if transform is not None else Affine.identity()
    out = []
    for geom, val in shapes(m, mask=m > 0, transform=t, connectivity=4):
        if val != 1:
            continue
        p = shape(geom)
        if not p.is_valid:
            p = p.buffer(0)
        if p.area >= min_area and not p.is_empty:
            out.append(p)
    return out


@dataclass
class ObjectMatch:
    """Result of object matching.

    Attributes:
        tp: ``[(proposal, ground_truth, iou)]`` matched pairs.
        fp: Unmatched proposals.
        fn: Unmatched ground-truth polygons.
    """

    tp: list[tuple[shapely.Polygon, shapely.Polygon, float]] = field(default_factory=list)
    fp: list[shapely.Polygon] = field(default_factory=list)
    fn: list[shapely.Polygon] = field(default_factory=list)

    def scores(self) -> dict:
        """``{"precision", "recall", "f1", "tp", "fp", "fn", "mean_iou_tp"}``."""
        tp, fp, fn = len(self.tp), len(self.fp), len(self.fn)
        p = tp / (tp + fp) if tp + fp else float("nan")
        r = tp / (tp + fn) if tp + fn else float("nan")
        f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
        miou = float(np.mean([m[2] for m in self.tp])) if self.tp else float("nan")
        return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn, "mean_iou_tp": miou}


def _iou(a: shapely.Polygon, b: shapely.Polygon) -> float:
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def match_polygons(proposals: list, ground_truth: list, iou_threshold: float = 0.5, *, min_area: float = 0.0,
                   matching: str = "greedy") -> ObjectMatch:
    """Match proposal polygons to ground-truth polygons (see module docstring).

    Args:
        proposals: Predicted polygons (in proposal order for greedy matching).
        ground_truth: Ground-truth polygons, same coordinates.
        iou_threshold: Minimum IoU of a true positive (SpaceNet: 0.5).
        min_area: Drop smaller polygons from both lists first.
        matching: ``greedy`` (SpaceNet) or ``hungarian``.

    Returns:
        :class:`ObjectMatch`.

    Raises:
        ValueError: Unknown ``matching``.
    """
    props = [p for p in proposals if p.area >= min_area]
    gts = [g for g in ground_truth if g.area >= min_area]
    res = ObjectMatch()
    if not gts:
        res.fp = props
        return res
    tree = STRtree(gts)
    if matching == "greedy":
        free = set(range(len(gts)))
        for p in props:
            best, best_i = 0.0, -1
            for i in tree.query(p):
                i = int(i)
                if i in free:
                    v = _iou(p, gts[i])
                    if v > best:
                        best, best_i = v, i
            if best_i >= 0 and best >= iou_threshold:
                res.tp.append((p, gts[best_i], best))
                free.discard(best_i)
            else:
                res.fp.append(p)
        res.fn = [gts[i] for i in sorted(free)]
        return res
    if matching != "hungarian":
        raise ValueError(f"unknown matching {matching!r}; valid: greedy, hungarian")
    from scipy.optimize import linear_sum_assignment

    iou = np.zeros((len(props), len(gts)))
    for j, p in enumerate(props):
        for i in tree.query(p):
            iou[j, int(i)] = _iou(p, gts[int(i)])
    rows, cols = linear_sum_assignment(-iou) if props else (np.array([], int), np.array([], int))
    matched_p, matched_g = set(), set()
    for r, c in zip(rows, cols):
        if iou[r, c] >= iou_threshold:
            res.tp.append((props[r], gts[c], float(iou[r, c])))
            matched_p.add(r)
            matched_g.add(c)
    res.fp = [p for j, p in enumerate(props) if j not in matched_p]
    res.fn = [g for i, g in enumerate(gts) if i not in matched_g]
    return res


def object_f1(pred_mask: np.ndarray, gt_mask: np.ndarray, *, transform: Affine | None = None,
              iou_threshold: float = 0.5, min_area: float = 0.0, valid: np.ndarray | None = None,
              matching: str = "greedy", pred_instances: np.ndarray | None = None,
              gt_instances: np.ndarray | None = None) -> tuple[dict, ObjectMatch]:
    """SpaceNet object F1 between two binary masks on the same grid.

    Objects are the 4-connected components of each mask, or the given instance maps
    (e.g. ground-truth footprints rasterized one id per polygon, and predictions split
    with :func:`split_instances`).

    Returns:
        ``(scores, match)``: :meth:`ObjectMatch.scores` and the polygons (in ``transform``
        coordinates) for display.
    """
    p = (instances_to_polygons(pred_instances, transform, valid=valid) if pred_instances is not None
         else mask_to_polygons(pred_mask, transform, valid=valid))
    g = (instances_to_polygons(gt_instances, transform, valid=valid) if gt_instances is not None
         else mask_to_polygons(gt_mask, transform, valid=valid))
    m = match_polygons(p, g, iou_threshold, min_area=min_area, matching=matching)
    return m.scores(), m


def match_to_geojson(match: ObjectMatch, src_crs=None) -> dict:
    """GeoJSON FeatureCollection (EPSG:4326 when ``src_crs`` is given) of TP/FP/FN polygons.

    Each feature has ``properties.kind`` in {``tp``, ``fp``, ``fn``} and ``iou`` for TPs
    (the proposal polygon is used for TPs).
    """
    from rasterio.warp import transform_geom

    feats = []

    def add(geom, kind, iou=None):
        g = shapely.geometry.mapping(geom)
        if src_crs is not None:
            g = transform_geom(src_crs, "EPSG:4326", g)
        props = {"kind": kind}
        if iou is not None:
            props["iou"] = round(iou, 4)
        feats.append({"type": "Feature", "properties": props, "geometry": g})

    for p, _, v in match.tp:
        add(p, "tp", v)
    for p in match.fp:
        add(p, "fp")
    for g in match.fn:
        add(g, "fn")
    return {"type": "FeatureCollection", "features": feats}
