"""Evaluation results as files and tables: ``eval.json`` (raster-vision layout), CSV, display names.

``eval.json`` follows raster-vision's layout: ``overall`` is one item per class with counts,
metrics and its confusion-matrix row, then an ``average`` item; ``per_scene`` the same per scene;
rsviz adds ``values`` (every figure under its parameterised key) and ``params``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rsviz.evaluation.results import EvalResult, clean


def _class_items(r: EvalResult) -> list[dict[str, Any]]:
    if r.confusion is None:
        return []
    cm = np.asarray(r.confusion)
    items: list[dict[str, Any]] = []
    for row in r.per_class:
        i = row.id
        items.append(
            {
                "class_id": i,
                "class_name": row.name,
                "gt_count": int(cm[i].sum()),
                "pred_count": int(cm[:, i].sum()),
                "count_error": int(abs(cm[:, i].sum() - cm[i].sum())),
                "metrics": {
                    "iou": row.iou,
                    "precision": row.precision,
                    "recall": row.recall,
                    "f1": row.f1,
                    "boundary_f1": row.boundary_f1,
                },
                "conf_mat": cm[i].tolist(),
            }
        )
    ious = [x.iou for x in r.per_class]
    f1s = [x.f1 for x in r.per_class]
    items.append(
        {
            "class_name": "average",
            "metrics": {
                "iou": float(np.nanmean(ious)) if ious else None,
                "f1": float(np.nanmean(f1s)) if f1s else None,
            },
        }
    )
    return items


def to_eval_json(
    result: EvalResult, per_scene: Mapping[str, EvalResult] | None = None, meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """raster-vision style ``eval.json`` content (NaN -> null).

    Keys: ``task``, ``images``, ``overall`` (class items + ``average``), ``values``, ``params``,
    ``confusion_matrix``, ``class_names``, ``per_scene`` (``{name: {"overall", "values"}}``), ``meta``.
    """
    doc: dict[str, Any] = {
        "task": result.task.value,
        "images": result.images,
        "overall": _class_items(result),
        "values": dict(result.values),
        "params": dict(result.params),
        "confusion_matrix": [list(x) for x in result.confusion] if result.confusion else None,
        "class_names": list(result.class_names) or None,
        "per_scene": {k: {"overall": _class_items(r), "values": dict(r.values)} for k, r in (per_scene or {}).items()},
    }
    if meta:
        doc["meta"] = dict(meta)
    return clean(doc)


def eval_csv(result: EvalResult) -> str:
    """CSV text: per-class rows (``class_id,class_name,iou,precision,recall,f1,boundary_f1,support``), a blank
    line, then ``metric,value`` rows."""
    buf = io.StringIO()
    w = csv.writer(buf)
    if result.per_class:
        w.writerow(["class_id", "class_name", "iou", "precision", "recall", "f1", "boundary_f1", "support"])
        for c in result.per_class:
            w.writerow(
                [c.id, c.name, *(fmt_csv(v) for v in (c.iou, c.precision, c.recall, c.f1, c.boundary_f1)), c.support]
            )
        w.writerow([])
    w.writerow(["metric", "value"])
    for k, val in result.values.items():
        w.writerow([k, fmt_csv(val)])
    return buf.getvalue()


def write_eval(
    result: EvalResult, json_path: str | Path, csv_path: str | Path | None = None, meta: Mapping[str, Any] | None = None
) -> None:
    """Write ``eval.json`` and, when ``csv_path`` is given, the CSV of :func:`eval_csv`."""
    Path(json_path).write_text(json.dumps(to_eval_json(result, meta=meta), indent=2) + "\n", encoding="utf-8")
    if csv_path is not None:
        Path(csv_path).write_text(eval_csv(result), encoding="utf-8")


def fmt_csv(v: Any) -> Any:
    """A figure for CSV: 6 decimals, empty for None / NaN, counts as they are."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6f}" if isinstance(v, float) else v


def fmt(v: Any, digits: int = 3) -> str:
    """A figure for display: ``digits`` decimals, ``—`` for None / NaN, anything else as text."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}"
    return str(v)


#: Display names and one-line definitions of figure families (field-standard abbreviations).
_METRIC_NAMES: dict[str, tuple[str, str]] = {
    "iou": ("IoU", "Intersection over union of the positive class, pixels in the extent"),
    "miou": ("mIoU", "Mean IoU over the classes present (ignore class excluded)"),
    "f1": ("F1", "Pixel F1 (Dice) of the positive class"),
    "precision": ("precision", "Share of predicted positive pixels that are positive"),
    "recall": ("recall", "Share of positive pixels that are predicted positive"),
    "mean_f1": ("mean F1", "Mean per-class pixel F1"),
    "overall_accuracy": ("OA", "Overall accuracy: share of evaluated pixels classified correctly"),
    "kappa": ("kappa", "Cohen's kappa: agreement beyond chance, from the confusion matrix"),
    "boundary_f1": ("boundary F1", "BF score (Csurka et al. 2013): boundary pixels matched within the tolerance"),
    "edge_head_boundary_f1": (
        "edge-head boundary F1",
        "BF score of the edge head (p >= 0.5) against the footprint boundaries",
    ),
    "object_f1": ("object F1", "Instances matched one-to-one at IoU >= the threshold; F1 of TP / FP / FN"),
    "object_precision": ("object precision", "TP / (TP + FP) of matched instances"),
    "object_recall": ("object recall", "TP / (TP + FN) of matched instances"),
    "relaxed_f1": ("relaxed F1", "Road pixels matched within rho pixels (Mnih & Hinton 2010)"),
    "relaxed_precision": ("relaxed precision", "Predicted road pixels within rho of a true road pixel"),
    "relaxed_recall": ("relaxed recall", "True road pixels within rho of a predicted road pixel"),
    "apls": ("APLS", "Average Path Length Similarity of the road graphs (Van Etten et al. 2018)"),
    "apls_gt_to_prop": ("APLS gt→prop", "APLS with the ground truth's control points inserted into the proposal"),
    "apls_prop_to_gt": ("APLS prop→gt", "APLS with the proposal's control points inserted into the ground truth"),
    "rmse": ("RMSE", "Root-mean-square height error, in the height units"),
    "mae": ("MAE", "Mean absolute height error, in the height units"),
    "bias": ("bias", "Mean of prediction minus ground truth, in the height units"),
    "delta": ("δ", "Share of pixels with max(pred/true, true/pred) below the threshold (Eigen et al. 2014)"),
    "micro_f1": ("micro F1", "F1 of all label decisions pooled (threshold 0.5)"),
    "macro_f1": ("macro F1", "Mean per-label F1 (threshold 0.5)"),
    "map": ("mAP", "Mean over labels of average precision"),
}

_PARAM = re.compile(r"^(?P<base>.+?)_(?:(?P<px>\d+(?:p\d+)?)px|(?P<m>\d+(?:p\d+)?)m|iou(?P<iou>\d+)|(?P<d>\d+\.\d+))$")


def metric_label(key: str) -> tuple[str, str]:
    """Display name and definition of a figure key: ``boundary_f1_2px`` -> ``("boundary F1 (2 px)", ...)``.

    Args:
        key: A key of :attr:`~rsviz.evaluation.results.EvalResult.values`; its parameter suffix
            (``_2px``, ``_4m``, ``_iou50``, ``_1.25``) becomes part of the name.

    Returns:
        ``(name, definition)``; unknown keys give the key with spaces and an empty definition.
    """
    m = _PARAM.match(key)
    base, suffix = key, ""
    if m and m.group("base") in _METRIC_NAMES:
        base = m.group("base")
        if m.group("px"):
            v = m.group("px").replace("p", ".")
            suffix = (
                f" (ρ {v} px)"
                if base.startswith("relaxed")
                else f" ({v} px buffer)"
                if base == "apls"
                else f" ({v} px)"
            )
        elif m.group("m"):
            suffix = f" ({m.group('m').replace('p', '.')} m buffer)"
        elif m.group("iou"):
            suffix = f" @ IoU {int(m.group('iou')) / 100:g}"
        elif m.group("d"):
            suffix = f" < {m.group('d')}"
    name, help_ = _METRIC_NAMES.get(base, (key.replace("_", " "), ""))
    return name + suffix, help_


def per_class_rows(result: EvalResult) -> list[dict[str, Any]]:
    """Per-class table of a result, one dict per class.

    Keys: ``class``, ``IoU``, ``precision``, ``recall``, ``F1``, ``boundary F1`` (when measured),
    ``support`` (pixels).

    Raises:
        ValueError: The result has no per-class pixel metrics (height and scene tasks).
    """
    if not result.per_class:
        raise ValueError(f"a {result.task.value} result has no per-class pixel metrics")
    has_bf = any(c.boundary_f1 is not None for c in result.per_class)
    rows = []
    for c in result.per_class:
        row: dict[str, Any] = {"class": c.name, "IoU": c.iou, "precision": c.precision, "recall": c.recall, "F1": c.f1}
        if has_bf:
            row["boundary F1"] = c.boundary_f1
        row["support"] = c.support
        rows.append(row)
    return rows


def multilabel_rows(result: EvalResult) -> list[dict[str, Any]]:
    """Per-label precision / recall / F1 / support of a pooled scene result, one dict per label.

    Raises:
        ValueError: Not a scene (multi-label) result.
    """
    from rsviz.evaluation.measures import MultiLabel

    if "multilabel" not in result.stats:
        raise ValueError(f"a {result.task.value} result has no per-label metrics")
    names = [c.name for c in result.config.classes]
    return list(MultiLabel(names).compute(result.stats["multilabel"])["per_label"])
