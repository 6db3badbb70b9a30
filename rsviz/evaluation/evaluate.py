"""Task-level evaluation of a prediction against ground truth, and its export.

``evaluate(pred, gt, task=...)`` combines the metrics of :mod:`rsviz.metrics` for one of
four tasks:

* ``segmentation``: multiclass confusion matrix metrics and per-class boundary F1;
* ``buildings``: binary pixel metrics, boundary F1, SpaceNet object F1 at IoU 0.5;
* ``roads``: binary pixel metrics, relaxed precision / recall / F1 (rho = 3 px), APLS;
* ``height``: RMSE, MAE, bias, delta < 1.25.

The JSON layout follows raster-vision's ``eval.json`` (``overall``: one item per class
with counts, metrics and confusion-matrix row, then an ``average`` item; ``per_scene``:
the same per scene), with rsviz's task-specific summaries under ``summary``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from rsviz.metrics import (
    ConfusionMatrix,
    apls,
    boundary_f1,
    height_metrics,
    object_f1,
    relaxed_precision_recall,
)
from rsviz.metrics.roads import SPACENET_BUFFER_M, spacenet_buffer_px
from rsviz.postprocess import road_graphs
from rsviz.types import ClassInfo

TASKS = ("segmentation", "buildings", "roads", "height")

#: APLS snapping buffer, pixels, for images without a GSD (4 m at 1 m/px).
APLS_BUFFER_PX_NO_GSD = 4.0


def _clean(x):
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def evaluate(pred: np.ndarray, gt: np.ndarray, task: str, *, classes: Sequence[ClassInfo] | None = None,
             valid: np.ndarray | None = None, ignore_index: int | None = None, gsd: float | None = None,
             boundary_tolerance_px: float = 2.0, iou_threshold: float = 0.5, min_area_px: float = 10.0,
             rho: float = 3.0, with_polygons: bool = False, pred_instances: np.ndarray | None = None,
             gt_instances: np.ndarray | None = None, road_prob: np.ndarray | None = None,
             road_graph: dict | None = None) -> dict:
    """Evaluate one prediction.

    Args:
        pred: ``(H, W)`` class ids (segmentation / buildings / roads; 255 = nodata) or heights.
        gt: ``(H, W)`` ground truth on the same grid.
        task: One of :data:`TASKS`.
        classes: Class legend (ids and names); binary tasks default to background / positive.
        valid: ``(H, W)`` bool evaluated pixels (nodata excluded); pred == 255 is also excluded.
        ignore_index: Ground-truth id not evaluated.
        gsd: Metres per pixel: reported with the boundary tolerance, and the APLS snapping buffer is
            the SpaceNet definition's 4 m in pixels of it (without a GSD: :data:`APLS_BUFFER_PX_NO_GSD`).
        boundary_tolerance_px: BF-score tolerance, pixels.
        iou_threshold: Object matching IoU (buildings).
        min_area_px: Minimum object area in pixels (buildings).
        rho: Relaxed road metric slack, pixels.
        with_polygons: Also return the object :class:`~rsviz.metrics.objects.ObjectMatch` (buildings)
            under ``"_match"``, or the APLS ``(ground truth, proposal)`` road graphs (roads, pixel
            coordinates of the extent) under ``"_graphs"`` (neither is JSON-able; :func:`to_eval_json`
            leaves them out).
        pred_instances: Optional ``(H, W)`` int predicted building instances
            (:func:`~rsviz.metrics.objects.split_instances`); connected components otherwise.
        gt_instances: Optional ``(H, W)`` int ground-truth instances (one id per footprint).
        road_prob: Optional ``(H, W)`` float road probability in [0, 1] (roads): the APLS graph is then
            extracted from it with ``road_graph`` (a card's ``extra.road_graph``, see
            :func:`~rsviz.metrics.roads.road_graph_apls`); otherwise from ``pred == 1`` with the defaults.
        road_graph: Road-graph parameters (threshold, closing_px, min_spur, bridge_px, bridge_angle).

    Returns:
        ``{"task", "pixel": ConfusionMatrix.compute() | None, "summary": {...}, ...}``.

    Raises:
        ValueError: Unknown task or shape mismatch.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    v = np.ones(gt.shape, bool) if valid is None else np.asarray(valid, bool).copy()
    if task == "height":
        return {"task": task, "pixel": None, "summary": height_metrics(pred, gt, v)}
    v &= pred != 255
    if task in ("buildings", "roads"):
        classes = list(classes) if classes else [ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, task, (255, 0, 0))]
        p, t = (pred == 1), (gt > 0)
        cm = ConfusionMatrix(2, None, [c.name for c in classes[:2]]).update(p.astype(np.uint8), t.astype(np.uint8), v)
        pix = cm.compute()
        pos = pix["per_class"][1]
        summary = {"iou": pos["iou"], "precision": pos["precision"], "recall": pos["recall"], "f1": pos["f1"],
                   "overall_accuracy": pix["overall_accuracy"], "kappa": pix["kappa"]}
        bf = boundary_f1(p & v, t & v, boundary_tolerance_px, valid=v)
        summary["boundary_f1"] = bf["f1"]
        summary["boundary_tolerance_px"] = boundary_tolerance_px
        if gsd:
            summary["boundary_tolerance_m"] = boundary_tolerance_px * gsd
        out = {"task": task, "pixel": pix, "summary": summary}
        if task == "buildings":
            scores, match = object_f1(p, t, valid=v, iou_threshold=iou_threshold, min_area=min_area_px,
                                      pred_instances=pred_instances, gt_instances=gt_instances)
            summary.update({f"object_{k}": val for k, val in scores.items()})
            summary["object_iou_threshold"] = iou_threshold
            if with_polygons:
                out["_match"] = match
        else:
            rel = relaxed_precision_recall(p, t, rho, valid=v)
            summary.update({f"relaxed_{k}": val for k, val in rel.items()})
            if road_prob is None:  # graphs from the class map, extracted with the defaults
                road_prob, road_graph = p.astype(np.float32), None
            graphs = road_graphs(np.where(v, road_prob, 0.0), t & v, road_graph or {})
            buffer = spacenet_buffer_px(gsd) if gsd else APLS_BUFFER_PX_NO_GSD
            summary.update(apls(*graphs, buffer=buffer))
            summary["apls_buffer_px"] = buffer
            if gsd:
                summary["apls_buffer_m"] = SPACENET_BUFFER_M
            if with_polygons:
                out["_graphs"] = graphs
        return out
    n = max(int(gt[v].max(initial=0)), int(pred[v].max(initial=0))) + 1
    if classes:
        n = max(n, max(c.id for c in classes) + 1)
    names = [str(i) for i in range(n)]
    for c in classes or []:
        names[c.id] = c.name
    cm = ConfusionMatrix(n, ignore_index, names).update(pred, gt, v)
    pix = cm.compute()
    eval_mask = v if ignore_index is None else v & (gt != ignore_index)
    for item in pix["per_class"]:
        c = item["id"]
        item["boundary_f1"] = boundary_f1((pred == c) & eval_mask, (gt == c) & eval_mask, boundary_tolerance_px,
                                          valid=eval_mask)["f1"]
    summary = {"miou": pix["macro"]["iou"], "mean_f1": pix["macro"]["f1"], "overall_accuracy": pix["overall_accuracy"],
               "kappa": pix["kappa"], "boundary_tolerance_px": boundary_tolerance_px}
    return {"task": task, "pixel": pix, "summary": summary}


def _class_items(pix: dict) -> list[dict]:
    items = []
    cm = np.array(pix["confusion_matrix"])
    for c in pix["per_class"]:
        i = c["id"]
        items.append({"class_id": i, "class_name": c["name"], "gt_count": int(cm[i].sum()), "pred_count": int(cm[:, i].sum()),
                      "count_error": int(abs(cm[:, i].sum() - cm[i].sum())),
                      "metrics": {k: c[k] for k in ("iou", "precision", "recall", "f1", "boundary_f1") if k in c},
                      "conf_mat": cm[i].tolist()})
    items.append({"class_name": "average", "metrics": pix["macro"], "weighted": pix["weighted"], "micro": pix["micro"]})
    return items


def to_eval_json(result: dict, per_scene: dict[str, dict] | None = None, meta: dict | None = None) -> dict:
    """raster-vision style ``eval.json`` content (NaN -> null)."""
    doc = {"task": result["task"], "overall": _class_items(result["pixel"]) if result.get("pixel") else [],
           "summary": result["summary"],
           "confusion_matrix": result["pixel"]["confusion_matrix"] if result.get("pixel") else None,
           "class_names": result["pixel"]["class_names"] if result.get("pixel") else None,
           "per_scene": {k: {"overall": _class_items(r["pixel"]) if r.get("pixel") else [], "summary": r["summary"]}
                         for k, r in (per_scene or {}).items()}}
    if meta:
        doc["meta"] = meta
    return _clean(doc)


def write_eval(result: dict, json_path: str | Path, csv_path: str | Path | None = None, meta: dict | None = None) -> None:
    """Write ``eval.json`` and (optionally) a CSV with one row per class plus summary rows."""
    doc = to_eval_json(result, meta=meta)
    Path(json_path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if csv_path is not None:
        Path(csv_path).write_text(eval_csv(result), encoding="utf-8")


def eval_csv(result: dict) -> str:
    """CSV text: per-class rows (``class_id,class_name,iou,precision,recall,f1,support``) then ``metric,value`` rows."""
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    if result.get("pixel"):
        w.writerow(["class_id", "class_name", "iou", "precision", "recall", "f1", "boundary_f1", "support"])
        for c in result["pixel"]["per_class"]:
            w.writerow([c["id"], c["name"], *(_fmt(c.get(k)) for k in ("iou", "precision", "recall", "f1", "boundary_f1")),
                        c["support"]])
        w.writerow([])
    w.writerow(["metric", "value"])
    for k, val in result["summary"].items():
        w.writerow([k, _fmt(val)])
    return buf.getvalue()


def _fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6f}" if isinstance(v, float) else v


#: Display names and one-line definitions of the summary keys (field-standard abbreviations).
_METRIC_NAMES: dict[str, tuple[str, str]] = {
    "iou": ("IoU", "Intersection over union of the positive class, pixels in the extent"),
    "miou": ("mIoU", "Mean IoU over the classes present (ignore class excluded)"),
    "f1": ("F1", "Pixel F1 (Dice) of the positive class"),
    "mean_f1": ("mean F1", "Mean per-class pixel F1"),
    "overall_accuracy": ("OA", "Overall accuracy: share of evaluated pixels classified correctly"),
    "kappa": ("kappa", "Cohen's kappa: agreement beyond chance, from the confusion matrix"),
    "boundary_f1": ("boundary F1", "BF score (Csurka et al. 2013): boundary pixels matched within the tolerance"),
    "object_f1": ("object F1", "Instances matched one-to-one at IoU >= the threshold; F1 of TP / FP / FN"),
    "relaxed_f1": ("relaxed F1", "Road pixels matched within rho pixels (Mnih & Hinton 2010)"),
    "apls": ("APLS", "Average Path Length Similarity of the road graphs (Van Etten et al. 2018)"),
    "rmse": ("RMSE", "Root-mean-square height error, in the height units"),
    "mae": ("MAE", "Mean absolute height error, in the height units"),
    "bias": ("bias", "Mean of prediction minus ground truth, in the height units"),
}


def metric_label(key: str, summary: dict | None = None) -> tuple[str, str]:
    """Display name and definition of a summary key of :func:`evaluate`.

    Args:
        key: Summary key, e.g. ``"iou"``, ``"object_f1"``, ``"apls"``.
        summary: The summary it belongs to; adds its parameters (boundary tolerance, object IoU
            threshold, relaxed slack) to the name.

    Returns:
        ``(name, definition)``; unknown keys give the key with spaces and an empty definition.
    """
    name, help_ = _METRIC_NAMES.get(key, (key.replace("_", " "), ""))
    s = summary or {}
    if key == "boundary_f1" and "boundary_tolerance_px" in s:
        name += f" ({s['boundary_tolerance_px']:g} px)"
    elif key == "object_f1" and "object_iou_threshold" in s:
        name += f" @ IoU {s['object_iou_threshold']:g}"
    elif key == "apls" and "apls_buffer_m" in s:
        name += f" ({s['apls_buffer_m']:g} m buffer)"
    elif key == "apls" and "apls_buffer_px" in s:
        name += f" ({s['apls_buffer_px']:g} px buffer)"
    elif key == "relaxed_f1" and "relaxed_rho_px" in s:
        name += f" (ρ {s['relaxed_rho_px']:g} px)"
    return name, help_


def per_class_rows(result: dict) -> list[dict]:
    """Per-class table of an :func:`evaluate` result, one dict per class.

    Keys: ``class``, ``IoU``, ``precision``, ``recall``, ``F1``, ``boundary F1`` (only when some class
    has it; for binary tasks the positive class takes the summary's boundary F1), ``support`` (pixels).

    Raises:
        ValueError: The result has no pixel metrics (height task).
    """
    if not result.get("pixel"):
        raise ValueError(f"a {result.get('task', 'height')} result has no per-class pixel metrics")
    per = result["pixel"]["per_class"]
    bf = [c.get("boundary_f1") for c in per]
    if result.get("task") in ("buildings", "roads") and len(per) == 2 and all(b is None for b in bf):
        bf = [None, result["summary"].get("boundary_f1")]
    rows = []
    for c, b in zip(per, bf):
        row = {"class": c["name"], "IoU": c["iou"], "precision": c["precision"], "recall": c["recall"], "F1": c["f1"]}
        if any(x is not None for x in bf):
            row["boundary F1"] = b
        row["support"] = c["support"]
        rows.append(row)
    return rows
