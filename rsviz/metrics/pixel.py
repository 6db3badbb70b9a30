"""Pixel-level metrics from a confusion matrix accumulated over all evaluated pixels.

Definitions (Congalton & Green, *Assessing the Accuracy of Remotely Sensed Data*, 3rd ed.,
2019; Cohen 1960). With confusion matrix ``M[t, p]`` (rows = ground truth, columns =
prediction) over the evaluated pixels:

* per class ``c``: ``TP = M[c,c]``, ``FP = sum_t M[t,c] - TP``, ``FN = sum_p M[c,p] - TP``;
  IoU ``= TP / (TP+FP+FN)``; precision (user's accuracy) ``= TP / (TP+FP)``; recall
  (producer's accuracy) ``= TP / (TP+FN)``; F1 ``= 2TP / (2TP+FP+FN)``; support ``= TP+FN``.
* overall accuracy ``OA = trace(M) / N``; Cohen's kappa ``= (OA - p_e) / (1 - p_e)`` with
  ``p_e = sum_c (row_c * col_c) / N^2``.
* means: *macro* = unweighted mean over classes with a defined value; *weighted* = mean
  weighted by support; *micro* = from pooled TP/FP/FN (for single-label multiclass, micro
  precision = recall = F1 = OA).

Policy: pixels whose ground truth equals ``ignore_index`` or that are invalid (nodata) are
not evaluated. A ratio with a zero denominator is NaN -- e.g. every metric of a class
absent from both ground truth and prediction -- and NaNs are excluded from macro and
weighted means (never counted as 0 or 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, SupportsFloat

import numpy as np


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


@dataclass
class ConfusionMatrix:
    """Accumulates a ``(num_classes, num_classes)`` int64 confusion matrix over batches.

    Args:
        num_classes: Number of classes (ids ``0..num_classes-1``).
        ignore_index: Ground-truth id excluded from evaluation, or None.
        class_names: Optional names for reports.
    """

    num_classes: int
    ignore_index: int | None = None
    class_names: Sequence[str] | None = None
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> ConfusionMatrix:
        """Add pixels.

        Args:
            pred: ``(...)`` integer predicted ids.
            target: Same shape, integer ground-truth ids.
            valid: Same shape bool; False pixels (nodata) are skipped.

        Raises:
            ValueError: On shape mismatch or ids outside ``[0, num_classes)``.
        """
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from ground truth {target.shape}")
        keep = np.ones(target.shape, bool) if valid is None else np.asarray(valid, bool).copy()
        if self.ignore_index is not None:
            keep &= target != self.ignore_index
        p, t = pred[keep].astype(np.int64), target[keep].astype(np.int64)
        k = self.num_classes
        if p.size and (p.min() < 0 or p.max() >= k or t.min() < 0 or t.max() >= k):
            raise ValueError(
                f"class ids must be in [0, {k}); got prediction {p.min()}..{p.max()}, ground truth {t.min()}..{t.max()}"
            )
        self.matrix += np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        return self

    def compute(self) -> dict[str, Any]:
        """All metrics as a JSON-able dict (see module docstring).

        Returns:
            ``{"per_class": [{"id", "name", "iou", "precision", "recall", "f1", "support",
            "users_accuracy", "producers_accuracy", "tp", "fp", "fn"}], "overall_accuracy", "kappa",
            "macro": {...}, "weighted": {...}, "micro": {...}, "pixels", "confusion_matrix"}``.
        """
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        fp = m.sum(0) - tp
        fn = m.sum(1) - tp
        n = m.sum()
        iou = _div(tp, tp + fp + fn)
        prec = _div(tp, tp + fp)
        rec = _div(tp, tp + fn)
        f1 = _div(2 * tp, 2 * tp + fp + fn)
        support = tp + fn
        oa = float(tp.sum() / n) if n else float("nan")
        pe = float((m.sum(0) * m.sum(1)).sum() / n**2) if n else float("nan")
        kappa = (oa - pe) / (1 - pe) if n and pe < 1 else float("nan")
        names = list(self.class_names) if self.class_names else [str(i) for i in range(self.num_classes)]
        per: list[dict[str, Any]] = []
        for c in range(self.num_classes):
            if self.ignore_index is not None and c == self.ignore_index:
                continue
            per.append(
                {
                    "id": c,
                    "name": names[c],
                    "iou": _f(iou[c]),
                    "precision": _f(prec[c]),
                    "recall": _f(rec[c]),
                    "f1": _f(f1[c]),
                    "support": int(support[c]),
                    "users_accuracy": _f(prec[c]),
                    "producers_accuracy": _f(rec[c]),
                    "tp": int(tp[c]),
                    "fp": int(fp[c]),
                    "fn": int(fn[c]),
                }
            )
        ids = [p["id"] for p in per]

        def macro(key: str) -> float:
            v = np.array([p[key] for p in per], float)
            return _f(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

        def weighted(key: str) -> float:
            v = np.array([p[key] for p in per], float)
            w = support[ids]
            ok = np.isfinite(v) & (w > 0)
            return _f((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")

        keys = ("iou", "precision", "recall", "f1")
        TP, FP, FN = tp[ids].sum(), fp[ids].sum(), fn[ids].sum()
        micro = {
            "iou": _f(_div(TP, TP + FP + FN)),
            "precision": _f(_div(TP, TP + FP)),
            "recall": _f(_div(TP, TP + FN)),
            "f1": _f(_div(2 * TP, 2 * TP + FP + FN)),
        }
        return {
            "per_class": per,
            "overall_accuracy": oa,
            "kappa": _f(kappa),
            "pixels": int(n),
            "macro": {k: macro(k) for k in keys},
            "weighted": {k: weighted(k) for k in keys},
            "micro": micro,
            "confusion_matrix": self.matrix.tolist(),
            "class_names": names,
            "ignore_index": self.ignore_index,
        }


def _f(x: SupportsFloat) -> float:
    return float(x)


def binary_metrics(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of the positive class of binary masks (IoU, precision, recall, F1, OA, kappa).

    Args:
        pred: ``(H, W)`` {0, 1} (or bool) prediction.
        target: ``(H, W)`` {0, 1} ground truth.
        valid: Optional ``(H, W)`` bool evaluated pixels.

    Returns:
        ``{"iou", "precision", "recall", "f1", "overall_accuracy", "kappa", "tp", "fp", "fn", "tn"}``.
    """
    cm = ConfusionMatrix(2).update(np.asarray(pred).astype(np.uint8), np.asarray(target).astype(np.uint8), valid)
    r = cm.compute()
    m = cm.matrix
    return {
        **positive_class_summary(r),
        "tp": int(m[1, 1]),
        "fp": int(m[0, 1]),
        "fn": int(m[1, 0]),
        "tn": int(m[0, 0]),
    }


def positive_class_summary(result: Mapping[str, Any]) -> dict[str, float]:
    """IoU, precision, recall, F1 of class 1 and OA, kappa of a binary :meth:`ConfusionMatrix.compute` result."""
    pos = result["per_class"][1]
    return {
        "iou": pos["iou"],
        "precision": pos["precision"],
        "recall": pos["recall"],
        "f1": pos["f1"],
        "overall_accuracy": result["overall_accuracy"],
        "kappa": result["kappa"],
    }
