"""Metrics by windows over an extent of any size: :func:`evaluate_windows`, :func:`evaluate_rasters`.

:func:`~rsviz.evaluation.evaluate_sample` needs the whole extent in memory; a 20,000 x 20,000 px scene
does not fit. :func:`evaluate_windows` reads the extent block by block (block-aligned windows of
``block`` x ``block`` px, each read with a ``halo``) and gives the same :class:`EvalResult` as
:func:`~rsviz.evaluation.evaluate_sample` on the whole extent: same keys, same statistics (so it pools
with :func:`~rsviz.evaluation.pool` like any image result), ``images == 1``.

How each measure is accumulated (the *core* of a block is the block itself, clipped to the extent):

* **pixel metrics**: the confusion matrix of each core, summed (exact). Multiclass legends get a row
  for every id seen in the data, as in :func:`~rsviz.evaluation.evaluate`.
* **boundary F1** (and the road **relaxed F1**): the counts behind the figure (boundary pixels of the
  prediction and of the ground truth in the core, and those within the tolerance of the other side)
  are summed and the extent's F1 computed from them once (exact: boundary extraction looks 1 px
  around a pixel and the tolerance ``t`` px further, so a halo of ``ceil(t) + 1`` px makes each core's
  counts those of the whole extent).
* **edge-head boundary F1**: as boundary F1, but the edge map is thinned (:func:`skimage.morphology.thin`),
  which is not local: the thinning of a pixel depends on its whole 8-connected edge component. Each
  edge component within the tolerance of a core must therefore lie inside the window; where one
  crosses the window's inner edge, the window is grown to hold it (exact).
* **object F1** (buildings): an *object cluster* is an 8-connected component of the union of the
  post-processing's footprint mask (probability >= the card's instance threshold, or the class map)
  and the ground-truth objects, joined across ground-truth instance ids seen in several parts. The
  card's instance post-processing of a component depends only on that component, and a proposal and
  a footprint that overlap or touch are in one cluster, so each cluster is post-processed, vectorised
  and matched on its own. Rule: a cluster is **owned** by the block whose core holds its first pixel
  in raster order, and is counted only there, once that block's window holds it whole (no pixel
  within 2 px of an inner edge of the window). A cluster that meets the window's inner edge is never
  dropped: unless it has a pixel above the core (then another block owns it), the window is grown to
  the cluster's bounding box plus the halo (doubled at each further growth) and read again, as often
  as needed; a cluster as large as the extent means reading the extent. Matching cluster by cluster
  gives the whole extent's TP / FP / FN for IoU thresholds >= 0.5 (a proposal then matches at most one
  footprint and greedy matching does not depend on proposal order), so lower thresholds are refused.
  Assumption: a ground-truth instance id whose parts lie farther apart than a window counts as one
  object per window holding a part (ids of rasterised footprints are connected).
* **height errors**, **reconstruction** MAE / PSNR / SSIM: sums over the cores (SSIM: of the 7 x 7 SSIM
  map, read with a halo of at least 3 px, over the extent's interior as scikit-image crops it).
  These are float sums added in another order than one NumPy sum over the extent, so they equal the
  whole-extent figures to rounding (relative ~1e-12), not bit for bit; every count is exact.
* **APLS** (roads) is global to the road graph: the binary proposal mask (probability >= the card's
  road-graph threshold, nodata as background) and the ground-truth road mask are assembled over the
  extent, 1 byte per pixel each (2 bytes per pixel together: 0.8 GB for 20,000 x 20,000 px), and the
  graphs are extracted and scored once (their skeletonisation takes several times that again while
  it runs). Exact.

Halo rule: ``halo`` defaults to ``max(64, ceil(boundary tolerance) + 1, ceil(rho), 3 if SSIM)`` px; a
smaller explicit halo than the local measures need raises ``ValueError``. Objects and edge components
larger than the halo are handled by growing the window (above), never dropped; the 64 px default
keeps such re-reads rare for buildings.

Typical use::

    from rsviz.evaluation import evaluate_windows
    r = evaluate_windows(card, lambda w: read_heads(w), lambda w: read_sample(w), 20000, 20000, block=1024)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from rasterio.windows import Window
from scipy import ndimage

from rsviz.evaluation.evaluate import _config, _result, check_params, target_spec
from rsviz.evaluation.measures import (
    APLS,
    BoundaryF1,
    EdgeHeadBoundaryF1,
    HeightErrors,
    Measure,
    ObjectF1,
    PixelMetrics,
    Reconstruction,
    RelaxedF1,
    _false_positives_off_labels,
)
from rsviz.evaluation.results import Artifacts, EvalResult
from rsviz.evaluation.tasks import EvalConfig, TaskSpec, task_spec
from rsviz.types import NODATA_CLASS, ClassInfo, Task

#: Smallest default halo, pixels: room for most buildings without growing the window.
DEFAULT_OBJECT_HALO = 64

_EIGHT = np.ones((3, 3), bool)

#: An object cluster this close to the window's inner edge is read again with more context: 1 px would do
#: for connectivity, 2 px also keeps the footprint distance transform (``distance`` instances) exact.
_OBJECT_MARGIN = 2


@dataclass(frozen=True)
class _Box:
    """A pixel rectangle of the extent: rows ``[r0, r1)``, columns ``[c0, c1)``."""

    r0: int
    r1: int
    c0: int
    c1: int

    def grow(self, px: int, height: int, width: int) -> _Box:
        return _Box(max(self.r0 - px, 0), min(self.r1 + px, height), max(self.c0 - px, 0), min(self.c1 + px, width))

    def union(self, o: _Box) -> _Box:
        return _Box(min(self.r0, o.r0), max(self.r1, o.r1), min(self.c0, o.c0), max(self.c1, o.c1))

    def window(self) -> Window:
        return Window(self.c0, self.r0, self.c1 - self.c0, self.r1 - self.r0)

    def within(self, outer: _Box) -> tuple[slice, slice]:
        """This box's slices in an array of ``outer``."""
        return slice(self.r0 - outer.r0, self.r1 - outer.r0), slice(self.c0 - outer.c0, self.c1 - outer.c0)


@dataclass
class _View:
    """One read window: heads, sample and the task's arrays on the window's grid."""

    box: _Box
    heads: Mapping[str, np.ndarray]
    sample: Any
    pred: np.ndarray
    gt: np.ndarray
    valid: np.ndarray
    gt_instances: np.ndarray | None


def _inner_edge_labels(lab: np.ndarray, box: _Box, height: int, width: int, margin: int = 1) -> set[int]:
    """Labels within ``margin`` px of the window's edges that are not the extent's edges (objects that may go
    on outside, or whose distance transform may see past the window)."""
    parts = []
    if box.r0 > 0:
        parts.append(lab[:margin].ravel())
    if box.r1 < height:
        parts.append(lab[-margin:].ravel())
    if box.c0 > 0:
        parts.append(lab[:, :margin].ravel())
    if box.c1 < width:
        parts.append(lab[:, -margin:].ravel())
    if not parts:
        return set()
    return {int(i) for i in np.unique(np.concatenate(parts))} - {0}


def _label_boxes(objs: Sequence[tuple[slice, slice] | None], labels: set[int], box: _Box) -> list[_Box]:
    """Extent boxes of some labels, from :func:`scipy.ndimage.find_objects` of a label image of ``box``."""
    out = []
    for i in sorted(labels):
        sl = objs[i - 1]
        if sl is not None:
            out.append(_Box(box.r0 + sl[0].start, box.r0 + sl[0].stop, box.c0 + sl[1].start, box.c0 + sl[1].stop))
    return out


@dataclass
class _Clusters:
    """Object clusters of a window (see the module docstring)."""

    labels: np.ndarray
    owned: set[int]
    grow: list[_Box]


def _object_clusters(v: _View, core: _Box, fg: np.ndarray, height: int, width: int) -> _Clusters:
    gt_obj = v.gt_instances > 0 if v.gt_instances is not None else v.gt > 0
    lab, n = ndimage.label(fg | gt_obj, structure=_EIGHT)
    lab = lab.astype(np.int64)
    if n and v.gt_instances is not None:  # one ground-truth id in several parts: one cluster
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        key = np.unique(v.gt_instances[gt_obj].astype(np.int64) * (n + 1) + lab[gt_obj])
        gid, part = key // (n + 1), key % (n + 1)
        same = gid[1:] == gid[:-1]
        a, b = part[:-1][same], part[1:][same]
        if a.size:
            g = coo_matrix((np.ones(a.size), (a, b)), shape=(n + 1, n + 1))
            _, comp = connected_components(g, directed=False)
            lut = np.zeros(n + 1, np.int64)
            lut[1:] = comp[1:] + 1  # node 0 (background) is alone in component 0
            lab = lut[lab]
    cs = core.within(v.box)
    in_core = {int(i) for i in np.unique(lab[cs])} - {0}
    above = {int(i) for i in np.unique(lab[: core.r0 - v.box.r0])} - {0}  # first pixel above the core
    edge = _inner_edge_labels(lab, v.box, height, width, _OBJECT_MARGIN)
    objs = ndimage.find_objects(lab)
    grow = _label_boxes(objs, (in_core & edge) - above, v.box)
    owned = set()
    for i in in_core - edge - above:
        rows, cols = objs[i - 1]  # the first pixel in raster order is on the cluster's first row
        r = v.box.r0 + rows.start
        c = v.box.c0 + cols.start + int(np.argmax(lab[rows.start, cols] == i))
        if core.r0 <= r < core.r1 and core.c0 <= c < core.c1:
            owned.add(i)
    return _Clusters(lab, owned, grow)


def _edge_grow(v: _View, core: _Box, reach: int, height: int, width: int) -> list[_Box]:
    """Boxes of edge components within ``reach`` of the core that cross the window's inner edge."""
    lab, n = ndimage.label(np.asarray(v.heads["edge"]) >= 0.5, structure=_EIGHT)
    if not n:
        return []
    near = core.grow(reach, height, width).within(v.box)
    need = ({int(i) for i in np.unique(lab[near])} - {0}) & _inner_edge_labels(lab, v.box, height, width)
    return _label_boxes(ndimage.find_objects(lab), need, v.box) if need else []


# --------------------------------------------------------------------------- counts -> figures


def _boundary_counts(bp: np.ndarray, bg: np.ndarray, tol: float, cs: tuple[slice, slice]) -> np.ndarray:
    """``[|B_p|, B_p within tol of B_g, |B_g|, B_g within tol of B_p]`` of the core ``cs`` (window arrays)."""
    p, g = bp[cs], bg[cs]
    hp = int((ndimage.distance_transform_edt(~bg)[cs][p] <= tol).sum()) if p.any() and bg.any() else 0
    hg = int((ndimage.distance_transform_edt(~bp)[cs][g] <= tol).sum()) if g.any() and bp.any() else 0
    return np.array([int(p.sum()), hp, int(g.sum()), hg], np.int64)


def _bf_from_counts(c: np.ndarray) -> float:
    """:func:`rsviz.metrics.boundary.boundary_f1`'s ``f1`` from :func:`_boundary_counts` of the extent."""
    npred, hp, ngt, hg = (int(x) for x in c)
    if npred == 0 and ngt == 0:
        return float("nan")
    if npred == 0 or ngt == 0:
        return 0.0
    p, r = hp / npred, hg / ngt
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _relaxed_from_counts(c: np.ndarray) -> dict[str, float]:
    """:func:`rsviz.metrics.roads.relaxed_precision_recall` from counts of the extent (same branches)."""
    npred, hp, ngt, hg = (int(x) for x in c)
    prec = hp / npred if npred and ngt else (0.0 if npred else float("nan"))
    rec = hg / ngt if ngt and npred else (0.0 if ngt else float("nan"))
    f1 = (
        2 * prec * rec / (prec + rec)
        if (prec + rec) > 0
        else (0.0 if not (math.isnan(prec) or math.isnan(rec)) else float("nan"))
    )
    return {"precision": prec, "recall": rec, "f1": f1}


def _boundary(mask: np.ndarray) -> np.ndarray:
    from rsviz.metrics.boundary import _boundary as inner_boundary  # the BF score's own definition

    return inner_boundary(mask)


# --------------------------------------------------------------------------- accumulation


@dataclass
class _Acc:
    """Running statistics of an extent."""

    confusion: np.ndarray = field(default_factory=lambda: np.zeros((2, 2), np.int64))
    max_id: int = 0
    boundary: dict[int, np.ndarray] = field(default_factory=dict)
    edge: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))
    relaxed: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))
    height: list[dict[str, float | int]] = field(default_factory=list)
    recon_sse: float = 0.0
    recon_abs: float = 0.0
    recon_n: int = 0
    ssim_sum: list[float] = field(default_factory=list)
    ssim_n: int = 0
    objects: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))
    match: Any = None
    road_pred: np.ndarray | None = None
    road_gt: np.ndarray | None = None
    road_probs: bool = False
    has_edge: bool = False
    has_recon: bool = False

    def add_confusion(self, t: np.ndarray, p: np.ndarray) -> None:
        k = max(int(t.max(initial=0)), int(p.max(initial=0))) + 1
        if k > self.confusion.shape[0]:
            m = np.zeros((k, k), np.int64)
            n = self.confusion.shape[0]
            m[:n, :n] = self.confusion
            self.confusion = m
        k = self.confusion.shape[0]
        self.confusion += np.bincount(t.astype(np.int64) * k + p.astype(np.int64), minlength=k * k).reshape(k, k)

    def add_boundary(self, cid: int, c: np.ndarray) -> None:
        self.boundary[cid] = self.boundary.get(cid, np.zeros(4, np.int64)) + c


def _instances(v: _View, postprocess: Any) -> np.ndarray:
    """Predicted instance ids of a window as :class:`ObjectF1` makes them."""
    if "probs" in v.heads:
        from rsviz.postprocess import instances_for

        return instances_for(v.heads, getattr(postprocess, "instances", None))
    lab, _ = ndimage.label((v.pred == 1) & v.valid)  # mask_to_polygons' 4-connected components
    return lab.astype(np.int32)


def _footprint_mask(v: _View, postprocess: Any) -> np.ndarray:
    """The mask the instance post-processing splits (its components are independent)."""
    if "probs" in v.heads:
        from rsviz.postprocess import InstanceSettings

        s = getattr(postprocess, "instances", None)
        s = s if isinstance(s, InstanceSettings) else InstanceSettings.from_dict(s)
        return np.asarray(v.heads["probs"][0]) >= s.threshold
    return v.pred == 1


def _measure_objects(
    v: _View, core: _Box, cl: _Clusters, obj: ObjectF1, postprocess: Any, acc: _Acc, keep: bool
) -> None:
    from rsviz.metrics.objects import match_polygons
    from rsviz.postprocess.vectorize import instance_polygons

    if not cl.owned:
        return
    inst = _instances(v, postprocess)
    if v.gt_instances is not None:
        gt_ids = np.asarray(v.gt_instances)
    else:
        gl, _ = ndimage.label((v.gt > 0) & v.valid)  # mask_to_polygons' components of the footprints
        gt_ids = gl

    def owned_polygons(ids: np.ndarray) -> list[Any]:
        polys = instance_polygons(ids, valid=v.valid)
        if not polys:
            return []
        keys = list(polys)  # every pixel of an object is in one cluster: its largest label is that cluster
        cluster = ndimage.maximum(cl.labels, labels=ids, index=keys)
        return [polys[i] for i, c in zip(keys, np.atleast_1d(cluster).tolist()) if int(c) in cl.owned]

    props, gts = owned_polygons(inst), owned_polygons(np.where(v.valid, gt_ids, 0))
    m = match_polygons(props, gts, obj.iou_threshold, min_area=obj.min_area_px)
    acc.objects += np.array([len(m.tp), len(m.fp), len(m.fn), _false_positives_off_labels(m)], np.int64)
    if keep:
        from shapely.affinity import translate

        from rsviz.metrics.objects import ObjectMatch

        def tr(g: Any) -> Any:
            return translate(g, xoff=v.box.c0, yoff=v.box.r0)

        if acc.match is None:
            acc.match = ObjectMatch()
        acc.match.tp += [(tr(p), tr(g), iou) for p, g, iou in m.tp]
        acc.match.fp += [tr(p) for p in m.fp]
        acc.match.fn += [tr(g) for g in m.fn]


def _measure_block(
    v: _View,
    core: _Box,
    extent: tuple[int, int],
    spec: TaskSpec,
    base: EvalConfig,
    card: Any,
    acc: _Acc,
    cl: _Clusters | None,
    keep: bool,
) -> None:
    """Add the statistics of one core (its window read with enough context) to ``acc``."""
    cs = core.within(v.box)
    pred, gt, valid = v.pred, v.gt, v.valid
    tol = base.boundary_tolerance_px
    vc = valid[cs]
    if spec.task is Task.HEIGHT:
        from rsviz.metrics.height import height_error_sums

        acc.height.append(height_error_sums(pred[cs], gt[cs], vc, HeightErrors().eps))
        return
    if spec.binary:
        p, t = pred == 1, gt > 0
        acc.add_confusion(t[cs][vc].astype(np.uint8), p[cs][vc].astype(np.uint8))
        pm, tm = p & valid, t & valid
        acc.add_boundary(1, _boundary_counts(_boundary(pm) & valid, _boundary(tm) & valid, tol, cs))
    else:
        ign = card.ignore_index
        acc.max_id = max(acc.max_id, int(gt[cs][vc].max(initial=0)), int(pred[cs][vc].max(initial=0)))
        keep_px = vc if ign is None else vc & (gt[cs] != ign)
        acc.add_confusion(gt[cs][keep_px], pred[cs][keep_px])
        m = valid if ign is None else valid & (gt != ign)
        mc = m[cs]
        present = set(np.unique(pred[cs][mc]).tolist()) | set(np.unique(gt[cs][mc]).tolist())
        for c in sorted(present):
            if ign is not None and c == ign:
                continue
            bp, bg = _boundary((pred == c) & m) & m, _boundary((gt == c) & m) & m
            acc.add_boundary(int(c), _boundary_counts(bp, bg, tol, cs))
    if "recon" in v.heads and v.sample.image is not None:
        _measure_recon(v, core, acc, *extent)
    if spec.task is Task.BUILDINGS:
        if "edge" in v.heads:
            acc.has_edge = True
            from skimage.morphology import thin

            bp = thin(np.asarray(v.heads["edge"]) >= 0.5) & valid
            bg = _boundary(gt > 0) & valid
            acc.edge += _boundary_counts(bp, bg, tol, cs)
        assert cl is not None
        obj = ObjectF1(base.iou_threshold, base.min_area_px)
        _measure_objects(v, core, cl, obj, card.postprocess, acc, keep)
    if spec.task is Task.ROADS:
        p, t = (pred == 1) & valid, (gt > 0) & valid
        rho = base.rho_px
        pc, tc = p[cs], t[cs]
        hp = int((ndimage.distance_transform_edt(~t)[cs][pc] <= rho).sum()) if pc.any() and t.any() else 0
        hg = int((ndimage.distance_transform_edt(~p)[cs][tc] <= rho).sum()) if tc.any() and p.any() else 0
        acc.relaxed += np.array([int(pc.sum()), hp, int(tc.sum()), hg], np.int64)
        from rsviz.postprocess.road_graph import RoadGraphSettings

        if "probs" in v.heads:
            prob = np.asarray(v.heads["probs"][-1])
            settings = getattr(card.postprocess, "road_graph", None)
        else:
            prob, settings = (pred == 1).astype(np.float32), None
        q = settings if isinstance(settings, RoadGraphSettings) else RoadGraphSettings.from_dict(settings or {})
        assert acc.road_pred is not None and acc.road_gt is not None
        gsl = (slice(core.r0, core.r1), slice(core.c0, core.c1))
        acc.road_pred[gsl] = (np.where(valid, prob, 0.0) >= q.threshold)[cs]
        acc.road_gt[gsl] = t[cs]


def _measure_recon(v: _View, core: _Box, acc: _Acc, h: int, w: int) -> None:
    """Sums of the reconstruction errors and of the SSIM map (scikit-image's, cropped 3 px at the extent's
    edges) over the core."""
    from skimage.metrics import structural_similarity

    acc.has_recon = True
    r = np.asarray(v.heads["recon"], np.float64)
    x = np.asarray(v.sample.image, np.float64)[: r.shape[0]]
    cs = core.within(v.box)
    rc, xc = r[:, cs[0], cs[1]], x[:, cs[0], cs[1]]
    acc.recon_sse += float(((xc - np.clip(rc, 0, 255.0)) ** 2).sum())
    acc.recon_abs += float(np.abs(rc - xc).sum())
    acc.recon_n += rc.size
    inner = _Box(max(core.r0, 3), min(core.r1, h - 3), max(core.c0, 3), min(core.c1, w - 3))
    if not acc.ssim_sum:
        acc.ssim_sum = [0.0] * r.shape[0]
    if inner.r1 <= inner.r0 or inner.c1 <= inner.c0:
        return
    ins = inner.within(v.box)
    for b in range(r.shape[0]):
        _, s_map = structural_similarity(x[b], r[b], data_range=255.0, full=True)
        acc.ssim_sum[b] += float(s_map[ins].sum())
    acc.ssim_n += (inner.r1 - inner.r0) * (inner.c1 - inner.c0)


# --------------------------------------------------------------------------- the evaluator


def _read(
    read_heads: Callable[[Window], Mapping[str, np.ndarray]],
    read_sample: Callable[[Window], Any],
    box: _Box,
) -> tuple[Mapping[str, np.ndarray], Any]:
    w = box.window()
    return read_heads(w), read_sample(w)


def _view(box: _Box, heads: Mapping[str, np.ndarray], sample: Any, spec: TaskSpec) -> _View:
    from rsviz.errors import GridMismatchError

    shape = (box.r1 - box.r0, box.c1 - box.c0)
    pred, gt = np.asarray(heads[spec.prediction]), np.asarray(sample.targets[spec.target])
    if pred.shape != shape or gt.shape != shape:
        raise GridMismatchError(
            f"window rows {box.r0}:{box.r1}, cols {box.c0}:{box.c1} is {shape}, but the readers gave a "
            f"prediction of {pred.shape} and ground truth of {gt.shape}; read exactly the window asked for"
        )
    valid = np.ones(shape, bool) if sample.valid is None else np.asarray(sample.valid, bool).copy()
    if spec.dense and spec.prediction == "classes":
        valid &= pred != NODATA_CLASS
    inst = sample.targets.get("instances") if spec.task is Task.BUILDINGS else None
    return _View(box, heads, sample, pred, gt, valid, None if inst is None else np.asarray(inst))


def _stats(
    meas: Measure, acc: _Acc, cfg: EvalConfig, card: Any, keep: bool, found: dict[str, Any]
) -> dict[str, Any] | None:
    """The statistics :meth:`Measure.measure` gives on the whole extent, from the accumulated counts
    (None where the measure does not apply)."""
    zero = np.zeros(4, np.int64)
    if isinstance(meas, PixelMetrics):
        k = meas.num_classes
        m = np.zeros((k, k), np.int64)
        n = min(k, acc.confusion.shape[0])
        m[:n, :n] = acc.confusion[:n, :n]
        return {"confusion": m}
    if isinstance(meas, BoundaryF1):
        if meas.binary:
            return {"f1": [_bf_from_counts(acc.boundary.get(1, zero))]}
        return {f"f1_{c}": [_bf_from_counts(acc.boundary.get(c, zero))] for c in meas.class_ids}
    if isinstance(meas, ObjectF1):
        tp, fp, fn, off = (int(x) for x in acc.objects)
        if keep:
            from rsviz.metrics.objects import ObjectMatch

            found["match"] = acc.match if acc.match is not None else ObjectMatch()
        return {"tp": tp, "fp": fp, "fn": fn, "fp_touching_no_label": off}
    if isinstance(meas, EdgeHeadBoundaryF1):
        return {"f1": [_bf_from_counts(acc.edge)]} if acc.has_edge else None
    if isinstance(meas, Reconstruction):
        if not acc.has_recon:
            return None
        mse = np.float64(acc.recon_sse / acc.recon_n)
        with np.errstate(divide="ignore"):
            psnr = float(10 * np.log10((255.0**2) / mse))
        ssim = float(np.mean([s / acc.ssim_n for s in acc.ssim_sum])) if acc.ssim_n else float("nan")
        return {"psnr_db": [psnr], "ssim": [ssim], "mae": [float(acc.recon_abs / acc.recon_n)]}
    if isinstance(meas, RelaxedF1):
        r = _relaxed_from_counts(acc.relaxed)
        return {k: [float(r[k])] for k in ("precision", "recall", "f1")}
    if isinstance(meas, APLS):
        from rsviz.postprocess import road_graphs

        assert acc.road_pred is not None and acc.road_gt is not None
        settings = getattr(card.postprocess, "road_graph", None) if acc.road_probs else None
        graphs = road_graphs(acc.road_pred, acc.road_gt, settings or {})
        if keep:
            found["graphs"] = graphs
        return meas.score(graphs)
    if isinstance(meas, HeightErrors):
        return dict(meas.combine(acc.height)) if acc.height else None
    raise ValueError(f"measure {type(meas).__name__} ({meas.name!r}) cannot be accumulated by windows")


def evaluate_windows(
    card: Any,
    read_heads: Callable[[Window], Mapping[str, np.ndarray]],
    read_sample: Callable[[Window], Any],
    height: int,
    width: int,
    *,
    block: int = 1024,
    halo: int | None = None,
    task: Task | str | None = None,
    with_artifacts: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    **params: Any,
) -> EvalResult | None:
    """Evaluate a model's prediction of an extent of any size, block by block (see the module docstring).

    The result equals :func:`~rsviz.evaluation.evaluate_sample` ``(card, heads, sample)`` of the whole
    extent: counts and every count-based figure exactly; figures of float sums (height errors,
    reconstruction) to rounding. Blocks are read in raster order; each once with its halo, and again with
    a larger window where an object cluster or an edge component crosses the window's inner edge. Peak
    memory is that of a few haloed windows, plus 2 bytes per extent pixel for roads (APLS).

    Args:
        card: The model's :class:`~rsviz.models.card.ModelCard` (legend, ignore class, post-processing).
        read_heads: ``window -> heads`` of that window of the extent grid (rasterio
            :class:`~rasterio.windows.Window`, extent pixel offsets): ``classes`` ``(h, w)`` uint8 (255 =
            nodata), ``probs`` ``(C, h, w)`` float32 in [0, 1], ``edge`` ``(h, w)``, ``height`` ``(h, w)``
            float32, ``recon`` ``(bands, h, w)``, as the model has them.
        read_sample: ``window -> Sample`` (:class:`~rsviz.datasets.base.Sample`) of the same window:
            ``image``, ``valid``, ``targets`` (``buildings`` / ``roads`` / ``classes`` / ``height``,
            ``instances``), ``transform`` and ``crs`` of the window.
        height: Extent rows, pixels.
        width: Extent columns, pixels.
        block: Block side, pixels (blocks are aligned to the extent's origin).
        halo: Context read around each block, pixels; the default and the minimum are in the module
            docstring.
        task: Evaluate this task instead of the card's first with ground truth in the sample.
        with_artifacts: Keep the object matching (buildings; polygons in extent pixel coordinates) and the
            road graphs (roads) in ``result.artifacts``.
        progress: Called as ``progress(blocks done, blocks)`` after each block.
        cancel: Polled before each block; True stops the evaluation.
        **params: Fields of :class:`~rsviz.evaluation.tasks.EvalConfig`, as in
            :func:`~rsviz.evaluation.evaluate`.

    Returns:
        The :class:`EvalResult` (``images == 1``), or None when the extent has no ground truth this model
        can be scored on.

    Raises:
        ValueError: Non-positive sizes, a halo below what the measures need, an unknown parameter, a task
            that is not per pixel (scene), or an IoU threshold below 0.5 (matching by clusters is exact
            only from 0.5).
        GridMismatchError: A reader returned arrays of another shape than the window.
        InferenceCancelled: ``cancel()`` returned True.
        UnknownNameError: Unknown task.
    """
    check_params(params)
    fixed = sorted(set(params) & {"classes", "ignore_index", "gsd"})
    if fixed:
        raise ValueError(f"{fixed} come from the card and the samples in a windowed evaluation; leave them out")
    if height < 1 or width < 1 or block < 1:
        raise ValueError(f"extent {height} x {width} px and block {block} px must be positive")
    base = EvalConfig(**params)
    if base.iou_threshold < 0.5:
        raise ValueError(
            f"iou_threshold {base.iou_threshold} < 0.5: a proposal may then match several footprints and "
            "greedy matching depends on the whole extent's proposal order; evaluate by windows at >= 0.5"
        )
    need = math.ceil(base.boundary_tolerance_px) + 1
    need = max(need, math.ceil(base.rho_px), 3 if "recon" in card.heads else 0)
    if halo is None:
        halo = max(DEFAULT_OBJECT_HALO, need)
    elif halo < need:
        raise ValueError(f"halo {halo} px is too small for these measures; they need at least {need} px")
    rows, cols = range(0, height, block), range(0, width, block)
    total = len(rows) * len(cols)
    cores = [_Box(r, min(r + block, height), c, min(c + block, width)) for r in rows for c in cols]

    first = cores[0].grow(halo, height, width)
    heads0, sample0 = _read(read_heads, read_sample, first)
    spec = task_spec(task) if task is not None else target_spec(card, sample0.targets)
    if spec is None or spec.target not in sample0.targets:
        return None
    if not spec.dense:
        raise ValueError(f"the {spec.task.value} task is scored per patch, not by windows; use evaluate_patches")
    acc = _Acc()
    if spec.task is Task.ROADS:
        acc.road_pred = np.zeros((height, width), bool)
        acc.road_gt = np.zeros((height, width), bool)
        acc.road_probs = "probs" in heads0
    tol = base.boundary_tolerance_px
    extent = (height, width)
    for k, core in enumerate(cores):
        if cancel is not None and cancel():
            from rsviz.inference.sliding_window import InferenceCancelled

            raise InferenceCancelled(f"evaluation cancelled after {k} of {total} blocks")
        box = core.grow(halo, height, width)
        v = _view(box, heads0, sample0, spec) if k == 0 else _view(box, *_read(read_heads, read_sample, box), spec)
        step = max(halo, _OBJECT_MARGIN + 1)
        while True:
            cl, grow = None, []
            if spec.task is Task.BUILDINGS:
                cl = _object_clusters(v, core, _footprint_mask(v, card.postprocess), height, width)
                grow += cl.grow
                if "edge" in v.heads:
                    grow += _edge_grow(v, core, math.ceil(tol) + 1, height, width)
            if not grow:
                break
            bigger = box
            for g in grow:
                bigger = bigger.union(g.grow(step, height, width))
            if bigger == box:  # cannot happen: a box near an inner edge grows past it
                raise RuntimeError(f"window {box} did not grow for objects crossing its edge")
            step *= 2  # a long cluster is reached in a few reads, not one halo at a time
            box = bigger
            v = _view(box, *_read(read_heads, read_sample, box), spec)
        _measure_block(v, core, extent, spec, base, card, acc, cl, with_artifacts)
        if progress is not None:
            progress(k + 1, total)

    if sample0.crs is not None:
        from rsviz.geo import gsd_metres

        gsd = gsd_metres(sample0.transform, sample0.crs, height, width)
    else:
        gsd = sample0.extra.get("gsd_m")
    classes: Sequence[ClassInfo] | None = card.classes or None
    if spec.prediction == "classes" and not spec.binary:  # every id in the data gets a row
        n = max(acc.max_id, *(c.id for c in classes or ())) + 1
        named = {c.id: c for c in classes or ()}
        classes = [named.get(i, ClassInfo(i, str(i), (128, 128, 128))) for i in range(n)]
    cfg = _config(spec, classes, card.ignore_index, gsd, params)
    ms = spec.measures(cfg)
    stats: dict[str, dict[str, Any]] = {}
    found: dict[str, Any] = {}
    prm: dict[str, Any] = {"gsd_m": cfg.gsd} if cfg.gsd else {}
    for meas in ms:
        st = _stats(meas, acc, cfg, card, with_artifacts, found)
        if st is not None:
            stats[meas.name] = st
            prm.update(meas.params())
    return _result(spec, ms, stats, prm, 1, Artifacts(**found), cfg)


# --------------------------------------------------------------------------- rasters on disk


def _band_names(ds: Any, card: Any) -> list[str]:
    """Band names of a prediction written by :func:`rsviz.inference.predict` (its ``rsviz_bands`` tag)."""
    tag = ds.tags().get("rsviz_bands")
    if tag:
        return str(tag).split(",")
    from rsviz.inference.sinks import output_band_layout

    for tta in (False, True):
        names = [n for n, _ in output_band_layout(card, tta)]
        if len(names) == ds.count:
            return names
    from rsviz.errors import ModelInputError

    raise ModelInputError(
        f"{ds.name} has {ds.count} bands and no rsviz_bands tag; it is not a prediction of {card.name} "
        "written by rsviz.inference.predict(output=...)"
    )


def evaluate_rasters(
    card: Any,
    pred_path: str | Path,
    gt_paths: Mapping[str, str | Path],
    window: Window | None = None,
    *,
    image_path: str | Path | None = None,
    block: int = 1024,
    halo: int | None = None,
    task: Task | str | None = None,
    with_artifacts: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    **params: Any,
) -> EvalResult | None:
    """:func:`evaluate_windows` of a prediction raster written by :func:`rsviz.inference.predict` (``output=``)
    against ground-truth rasters on its grid, read block by block from disk.

    The prediction's bands follow :func:`rsviz.inference.sinks.output_band_layout` (uint8: class ids with
    255 = nodata, probabilities and edge x 255, reconstruction in input units); a height head is read from
    the float32 sidecar ``<stem>_height.tif``. Probabilities and the edge head are de-quantised as
    ``band / 255``, so post-processing thresholds see values rounded to 1/255: figures can differ slightly
    from an evaluation of the in-memory float heads (the class map itself is exact).

    Args:
        card: The model's :class:`~rsviz.models.card.ModelCard`.
        pred_path: The prediction GeoTIFF / COG.
        gt_paths: ``Sample.targets`` key -> single-band raster on the prediction's grid: ``buildings`` /
            ``roads`` (0 / 1), ``classes`` (class ids), ``height`` (float), ``instances`` (footprint ids).
            The ground truth's nodata mask (the task target's) marks the pixels that do not count.
        window: Pixel window of the prediction grid to evaluate (the whole raster by default).
        image_path: The input imagery on the same grid, to score a reconstruction head (else not scored).
        block: See :func:`evaluate_windows`.
        halo: See :func:`evaluate_windows`.
        task: See :func:`evaluate_windows`.
        with_artifacts: See :func:`evaluate_windows`.
        progress: See :func:`evaluate_windows`.
        cancel: See :func:`evaluate_windows`.
        **params: See :func:`evaluate_windows`.

    Returns:
        See :func:`evaluate_windows`.

    Raises:
        GridMismatchError: A ground-truth raster or the image is not on the prediction's grid.
        RasterReadError: A raster is missing, not a raster, or truncated (pixels unreadable).
        ModelInputError, ValueError: The prediction's bands are not a layout of this card, or see :func:`evaluate_windows`.
        InferenceCancelled: ``cancel()`` returned True.
    """
    from contextlib import ExitStack

    from rasterio.errors import RasterioIOError

    from rsviz.datasets.base import Sample
    from rsviz.errors import GridMismatchError
    from rsviz.inference.export import decode_prediction_bands
    from rsviz.raster import open_raster, read_failed

    pred_path = Path(pred_path)
    with ExitStack() as stack:
        pds = stack.enter_context(open_raster(pred_path))
        names = _band_names(pds, card)
        sidecar = pred_path.with_name(pred_path.stem + "_height.tif")
        hds = stack.enter_context(open_raster(sidecar)) if "height" in card.heads and sidecar.exists() else None
        gts = {k: stack.enter_context(open_raster(p)) for k, p in gt_paths.items()}
        ids = stack.enter_context(open_raster(image_path)) if image_path is not None else None
        for what, ds in [*gts.items(), ("height sidecar", hds), ("image", ids)]:
            if ds is not None and (ds.shape != pds.shape or ds.transform != pds.transform or ds.crs != pds.crs):
                raise GridMismatchError(
                    f"{what} raster {ds.name} ({ds.shape}, {ds.crs}) is not on the prediction's grid "
                    f"({pds.shape}, {pds.crs}, same transform); warp it onto the prediction first"
                )
        win = window if window is not None else Window(0, 0, pds.width, pds.height)
        win = win.intersection(Window(0, 0, pds.width, pds.height))
        r_off, c_off = int(win.row_off), int(win.col_off)
        target = (task_spec(task).target if task is not None else None) or next(
            (s.target for s in _card_specs(card) if s.target in gts), None
        )

        def file_window(w: Window) -> Window:
            return Window(c_off + int(w.col_off), r_off + int(w.row_off), int(w.width), int(w.height))

        def read_heads(w: Window) -> dict[str, np.ndarray]:
            fw = file_window(w)
            heads = decode_prediction_bands(names, pds.read(window=fw))
            if ids is None:
                heads.pop("recon", None)  # no imagery to score it against
            if hds is not None:
                heads["height"] = hds.read(1, window=fw).astype(np.float32)
            return heads

        def read_sample(w: Window) -> Any:
            fw = file_window(w)
            shape = (int(w.height), int(w.width))
            targets = {k: ds.read(1, window=fw) for k, ds in gts.items()}
            if "instances" in targets:
                targets["instances"] = targets["instances"].astype(np.int32)
            valid = gts[target].read_masks(1, window=fw) > 0 if target in gts else np.ones(shape, bool)
            image = ids.read(window=fw) if ids is not None else np.zeros((1, *shape), np.uint8)
            bands = tuple(ids.descriptions[i] or f"band{i + 1}" for i in range(ids.count)) if ids else ("none",)
            return Sample(
                pred_path.stem,
                "rasters",
                "test",
                image,
                bands,
                transform=pds.window_transform(fw),
                crs=pds.crs,
                valid=valid,
                targets=targets,
            )

        def guarded(read: Callable[[Window], Any]) -> Callable[[Window], Any]:
            def run(w: Window) -> Any:
                try:
                    return read(w)
                except RasterioIOError as exc:  # a truncated file: name the files read
                    files = ", ".join(str(p) for p in [pred_path, *gt_paths.values(), image_path] if p is not None)
                    raise read_failed(f"one of {files}", exc) from exc

            return run

        return evaluate_windows(
            card,
            guarded(read_heads),
            guarded(read_sample),
            int(win.height),
            int(win.width),
            block=block,
            halo=halo,
            task=task,
            with_artifacts=with_artifacts,
            progress=progress,
            cancel=cancel,
            **params,
        )


def _card_specs(card: Any) -> list[TaskSpec]:
    from rsviz.evaluation.tasks import specs_for_card

    return specs_for_card(card)
