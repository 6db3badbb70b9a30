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
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import shapely
from affine import Affine
from shapely.strtree import STRtree

from rsviz.postprocess.vectorize import instances_to_polygons, mask_to_polygons

if TYPE_CHECKING:
    from rasterio.crs import CRS


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

    def scores(self) -> dict[str, float]:
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


def match_polygons(
    proposals: Sequence[shapely.Geometry],
    ground_truth: Sequence[shapely.Geometry],
    iou_threshold: float = 0.5,
    *,
    min_area: float = 0.0,
    matching: str = "greedy",
) -> ObjectMatch:
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


def object_f1(
    pred_mask: np.ndarray,
    gt_mask: np.ndarray,
    *,
    transform: Affine | None = None,
    iou_threshold: float = 0.5,
    min_area: float = 0.0,
    valid: np.ndarray | None = None,
    matching: str = "greedy",
    pred_instances: np.ndarray | None = None,
    gt_instances: np.ndarray | None = None,
) -> tuple[dict[str, float], ObjectMatch]:
    """SpaceNet object F1 between two binary masks on the same grid.

    Objects are the 4-connected components of each mask, or the given instance maps
    (e.g. ground-truth footprints rasterized one id per polygon, and predictions split
    with :func:`split_instances`).

    Returns:
        ``(scores, match)``: :meth:`ObjectMatch.scores` and the polygons (in ``transform``
        coordinates) for display.
    """
    p = (
        instances_to_polygons(pred_instances, transform, valid=valid)
        if pred_instances is not None
        else mask_to_polygons(pred_mask, transform, valid=valid)
    )
    g = (
        instances_to_polygons(gt_instances, transform, valid=valid)
        if gt_instances is not None
        else mask_to_polygons(gt_mask, transform, valid=valid)
    )
    m = match_polygons(p, g, iou_threshold, min_area=min_area, matching=matching)
    return m.scores(), m


def match_to_geojson(match: ObjectMatch, src_crs: CRS | str | None = None) -> dict[str, Any]:
    """GeoJSON FeatureCollection (EPSG:4326 when ``src_crs`` is given) of TP/FP/FN polygons.

    Each feature has ``properties.kind`` in {``tp``, ``fp``, ``fn``} and ``iou`` for TPs
    (the proposal polygon is used for TPs).
    """
    from rasterio.warp import transform_geom

    feats: list[dict[str, Any]] = []

    def add(geom: shapely.Geometry, kind: str, iou: float | None = None) -> None:
        g = shapely.geometry.mapping(geom)
        if src_crs is not None:
            g = transform_geom(src_crs, "EPSG:4326", g)
        props: dict[str, str | float] = {"kind": kind}
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
