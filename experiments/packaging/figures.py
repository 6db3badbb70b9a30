"""Intervals and trivial baselines beside a card's split figures (issue #23: figures that can tell a gain from noise).

Each figure of a split is recomputed by :func:`rsviz.evaluation.pool`, the evaluator's own pooling, over the
split's images drawn with replacement (a bootstrap over images, :data:`DRAWS` draws, seed :data:`SEED`; the
interval is the 2.5-97.5 percentile). Pooling is what the card's figure is, so pixel figures come from the
summed confusion matrices, object F1 from summed counts, and boundary F1 and APLS from image means.

The baseline beside each figure is the best constant map for that figure: every pixel background or every pixel
the class that scores best (:func:`rsviz.report.uncertainty.trivial_baseline` on the pooled confusion matrix). A
constant map has no objects, no boundaries and no road graph, so object F1, boundary F1, relaxed F1 and APLS are 0
for it. Height cards already carry the constant-training-mean baseline.

Keys written into ``card.metrics[split]``: ``{figure}_ci95`` (``[low, high]``) and ``constant_{figure}`` (the
baseline's value); ``card.extra["interval_method"]`` and ``["baseline_note"]`` say how.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rsviz.evaluation import pool

#: Bootstrap draws and seed.
DRAWS = 1000
SEED = 0
#: Figures given an interval and a baseline, by task.
HEADLINE = {
    "buildings": ("iou", "f1", "object_f1_iou50", "boundary_f1_2px"),
    "roads": ("iou", "f1", "relaxed_f1_3px", "apls_4m"),
    "landcover": ("miou", "mean_f1", "overall_accuracy", "kappa"),
    "height": ("rmse", "mae"),
}
#: Figures a constant map scores 0 on (it has no objects, boundaries or graph).
ZERO_FOR_CONSTANT = ("object_f1_iou50", "boundary_f1_2px", "relaxed_f1_3px", "apls_4m")
METHOD = (
    f"bootstrap over the split's images: {DRAWS} draws with replacement (seed {SEED}), each figure recomputed by "
    "rsviz.evaluation.pool (summed confusion matrices and object counts, image means for boundary F1, relaxed F1 "
    "and APLS); 95 % percentile interval"
)
BASELINE_NOTE = (
    "constant_*: the best constant map for that figure (every pixel background, or every pixel the best-scoring "
    "class, on the pooled confusion matrix); a constant map has no objects, boundaries or road graph, so it scores 0 "
    "on object F1, boundary F1, relaxed F1 and APLS"
)


def intervals(results: Sequence[Any], keys: Sequence[str], *, n: int = DRAWS, seed: int = SEED) -> dict[str, list]:
    """``{key: [low, high]}`` 95 % bootstrap intervals over the images of ``results`` (per-image EvalResults).

    The draws and percentiles are the QA report's (:mod:`rsviz.report.uncertainty`), with images as the blocks.
    Keys the pooled result lacks are left out; so are keys undefined in every draw.
    """
    from rsviz.report.uncertainty import _draw, _percentiles

    def figures(idx: np.ndarray) -> dict[str, float]:
        vals = pool([results[i] for i in idx]).values
        return {k: float(v) for k in keys if isinstance(v := vals.get(k), int | float)}

    found = _percentiles(_draw(len(results), figures, n, seed), {k: "" for k in keys})
    return {k: [round(iv.low, 4), round(iv.high, 4)] for k, iv in found.items()}


def constant_baseline(results: Sequence[Any], keys: Sequence[str]) -> dict[str, float]:
    """``{key: value}`` of the best constant map per figure of ``keys`` (see the module docstring)."""
    from rsviz.evaluation.tasks import task_spec
    from rsviz.report.uncertainty import BlockStats, trivial_baseline

    r = pool(list(results))
    spec = task_spec(r.task)
    pixel = next((m for m in spec.measures(r.config) if m.name == "pixel"), None)
    out: dict[str, float] = {k: 0.0 for k in keys if k in ZERO_FOR_CONSTANT and k in r.values}
    if pixel is None or r.confusion is None:
        return out
    cm = np.asarray(r.confusion, np.int64)[None]
    base = trivial_baseline(BlockStats(0, cm, None, pixel), {k: "pixel" for k in keys if k not in ZERO_FOR_CONSTANT})
    out.update({k: round(float(v), 4) for k, (v, _) in base.items()})
    return out


def card_figures(results: Sequence[Any], task: str) -> dict[str, Any]:
    """Interval and baseline keys for a split's card figures (``{figure}_ci95``, ``constant_{figure}``)."""
    keys = HEADLINE[task]
    out: dict[str, Any] = {f"{k}_ci95": v for k, v in intervals(results, keys).items()}
    if task != "height":
        out.update({f"constant_{k}": v for k, v in constant_baseline(results, keys).items()})
    return out
