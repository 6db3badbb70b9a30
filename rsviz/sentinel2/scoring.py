"""Patch-grid predictions scored against reference labels placed on the same grid.

Metrics follow the BigEarthNet benchmarks (Sumbul et al., "BigEarthNet-MM", IEEE GRSM 2021) through
:func:`rsviz.metrics.multilabel.multilabel_metrics`: per-label precision / recall / F1 at a threshold,
micro and macro F1, and mAP (macro average precision over labels with a positive). The **majority
baseline** predicts, for every patch, the :data:`BASELINE_K` labels most frequent in the training split
(probability 1, others 0), the usual floor of a multi-label classifier.

Reference labels come from the BigEarthNet patches placed by their georeferencing
(:func:`reference_from_patches`), or from a user's GeoJSON grid of polygons with a ``labels`` list
(:func:`reference_from_geojson`, e.g. an edited :func:`rsviz.sentinel2.export.grid_geojson`), each placed at
the patch holding the polygon's centre.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rsviz.errors import ExtentError, ModelInputError
from rsviz.sentinel2.patches import PatchPrediction
from rsviz.sentinel2.sample import ReferencePatch

#: Labels predicted by the majority baseline.
BASELINE_K = 3


@dataclass(frozen=True)
class LabelScore:
    """One label's scores (NaN where undefined: no positive and no prediction)."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Scores:
    """Scores of one model (or of the baseline) over the referenced patches of a grid.

    Attributes:
        model: Model name, or ``"majority baseline"``.
        per_label: One :class:`LabelScore` per label, in label order.
        micro_f1: Micro-averaged F1, 0-1.
        macro_f1: Mean F1 of the defined labels, 0-1.
        map: Mean average precision over labels with a positive, 0-1 (NaN without positives).
        patches: Patches scored (predicted and referenced).
        threshold: Decision threshold.
    """

    model: str
    per_label: tuple[LabelScore, ...]
    micro_f1: float
    macro_f1: float
    map: float
    patches: int
    threshold: float


def place_reference(grid: PatchPrediction, items: Sequence[tuple[float, float, object, np.ndarray]]) -> np.ndarray:
    """Reference multi-hot labels on a grid.

    Args:
        grid: Any prediction of the grid (its transform / CRS / shape are used).
        items: ``(x, y, crs, labels (L,) {0,1})``: a point inside each reference patch (its centre) in ``crs``.

    Returns:
        ``(rows, cols, L)`` int16: 0 / 1 where referenced, -1 elsewhere.
    """
    n = len(grid.labels)
    ref = np.full((*grid.shape, n), -1, np.int16)
    for x, y, crs, lab in items:
        cell = grid.cell_of(x, y, crs)
        if cell is not None:
            ref[cell] = np.asarray(lab, np.int16)[:n]
    return ref


def reference_from_patches(grid: PatchPrediction, patches: Sequence[ReferencePatch]) -> np.ndarray:
    """Reference labels of :class:`rsviz.sentinel2.sample.ReferencePatch` es, placed at their centres."""
    return place_reference(
        grid,
        [((p.bounds[0] + p.bounds[2]) / 2, (p.bounds[1] + p.bounds[3]) / 2, p.crs, p.labels19) for p in patches],
    )


def reference_from_geojson(grid: PatchPrediction, path: str | Path) -> np.ndarray:
    """Reference labels from a GeoJSON (EPSG:4326) of polygons whose ``labels`` property lists label names.

    Raises:
        ModelInputError: Not GeoJSON, no feature with a ``labels`` list, or label names the model lacks.
    """
    try:
        gj = json.loads(Path(path).read_text(encoding="utf-8"))
        feats = gj["features"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelInputError(f"{Path(path).name} is not a GeoJSON FeatureCollection ({exc})") from exc
    items, unknown = [], set()
    for f in feats:
        labels = (f.get("properties") or {}).get("labels")
        geom = f.get("geometry") or {}
        if not isinstance(labels, list) or geom.get("type") != "Polygon":
            continue
        ring = np.asarray(geom["coordinates"][0], float)
        v = np.zeros(len(grid.labels), np.uint8)
        for lab in labels:
            if lab in grid.labels:
                v[grid.labels.index(lab)] = 1
            else:
                unknown.add(str(lab))
        items.append((float(ring[:-1, 0].mean()), float(ring[:-1, 1].mean()), "EPSG:4326", v))
    if unknown:
        raise ModelInputError(
            f"labels {', '.join(sorted(unknown))} are not among the model's: {', '.join(grid.labels)}"
        )
    if not items:
        raise ModelInputError(f"{Path(path).name} has no polygon with a 'labels' list")
    return place_reference(grid, items)


@functools.lru_cache(maxsize=1)
def training_label_counts() -> tuple[int, ...]:
    """How many training patches carry each BigEarthNet-19 label (the bundled models' training split)."""
    from rsviz.datasets.bigearthnet import patches_by_split

    train = patches_by_split()["train"]
    return tuple(int(v) for v in np.sum([lab for _, _, lab in train], axis=0))


def majority_labels(k: int = BASELINE_K, counts: Sequence[int] | None = None) -> tuple[int, ...]:
    """Indexes of the ``k`` most frequent training labels (ties: lower index first)."""
    c = np.asarray(counts if counts is not None else training_label_counts())
    return tuple(int(i) for i in np.argsort(-c, kind="stable")[:k])


def _scores(name: str, probs: np.ndarray, ref: np.ndarray, labels: Sequence[str], threshold: float) -> Scores:
    """Scores as :func:`rsviz.metrics.multilabel.multilabel_metrics` defines them (precision / recall 0 when
    their denominator is; NaN for a label without positives or predictions), computed here so that a single
    label with positives (a small extent) still gets its mAP (the mean of one binary AP)."""
    import torch
    from torchmetrics.functional.classification import binary_average_precision

    pred = probs >= threshold
    t = ref.astype(bool)
    tp, fp, fn = (pred & t).sum(0), (pred & ~t).sum(0), (~pred & t).sum(0)
    per = []
    for i, lab in enumerate(labels):
        if tp[i] + fn[i] == 0 and tp[i] + fp[i] == 0:
            per.append(LabelScore(lab, math.nan, math.nan, math.nan, 0))
            continue
        prec = tp[i] / (tp[i] + fp[i]) if tp[i] + fp[i] else 0.0
        rec = tp[i] / (tp[i] + fn[i]) if tp[i] + fn[i] else 0.0
        f1 = 2 * tp[i] / (2 * tp[i] + fp[i] + fn[i])
        per.append(LabelScore(lab, float(prec), float(rec), float(f1), int(tp[i] + fn[i])))
    den = 2 * tp.sum() + fp.sum() + fn.sum()
    f1s = np.array([x.f1 for x in per], float)
    aps = [
        float(binary_average_precision(torch.as_tensor(probs[:, i], dtype=torch.float32), torch.as_tensor(ref[:, i])))
        for i in range(len(labels))
        if t[:, i].any()
    ]
    return Scores(
        name,
        tuple(per),
        float(2 * tp.sum() / den) if den else math.nan,
        float(np.nanmean(f1s)) if np.isfinite(f1s).any() else math.nan,
        float(np.mean(aps)) if aps else math.nan,
        int(len(probs)),
        threshold,
    )


def score(
    pred: PatchPrediction, reference: np.ndarray, threshold: float = 0.5, baseline: Sequence[int] | None = None
) -> tuple[Scores, Scores]:
    """Score a prediction and the majority baseline on the patches that are both predicted and referenced.

    Args:
        pred: The prediction.
        reference: ``(rows, cols, L)`` from :func:`place_reference` (-1: no reference).
        threshold: Decision threshold, 0-1.
        baseline: Label indexes the baseline predicts (default: :func:`majority_labels`).

    Returns:
        ``(model scores, baseline scores)``.

    Raises:
        ExtentError: No predicted patch has a reference label inside the extent.
    """
    if reference.shape != pred.probs.shape:
        raise ValueError(f"reference {reference.shape} is not on the prediction's grid {pred.probs.shape}")
    sel = pred.predicted & (reference >= 0).all(-1)
    if not sel.any():
        raise ExtentError("no predicted patch of the extent has reference labels; draw the extent over them")
    p, t = pred.probs[sel], reference[sel].astype(np.int64)
    base = np.zeros_like(p)
    base[:, list(baseline if baseline is not None else majority_labels())] = 1.0
    return _scores(pred.model, p, t, pred.labels, threshold), _scores(
        "majority baseline", base, t, pred.labels, threshold
    )


def score_rows(s: Scores) -> list[dict[str, object]]:
    """Table rows of the per-label scores with a support or a prediction (undefined labels left out)."""
    return [
        {"label": x.name, "precision": x.precision, "recall": x.recall, "f1": x.f1, "support": x.support}
        for x in s.per_label
        if x.support or not math.isnan(x.f1)
    ]
