"""Card intervals and baselines (experiments.packaging.figures): bootstrap over images through the evaluator's own
pooling, and the best constant map per figure."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.packaging.figures import card_figures, constant_baseline, intervals
from rsviz.evaluation import evaluate, pool


def _images(n=8, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        gt = np.zeros((64, 64), np.uint8)
        r, c = rng.integers(4, 40, 2)
        gt[r : r + 20, c : c + 20] = 1
        pred = np.where(rng.random(gt.shape) < noise, 1 - gt, gt).astype(np.uint8)
        out.append(evaluate(pred, gt, "buildings"))
    return out


def test_intervals_hold_the_pooled_figure_and_narrow_with_agreement():
    noisy, clean = _images(noise=0.2), _images(noise=0.02)
    iv = intervals(noisy, ("iou", "f1"), n=300)
    assert iv["iou"][0] <= pool(noisy).values["iou"] <= iv["iou"][1]
    assert intervals(clean, ("iou",), n=300)["iou"][1] > iv["iou"][1]
    same = intervals([noisy[0]] * 6, ("iou",), n=50)["iou"]  # one image repeated: no spread to draw
    assert same[0] == pytest.approx(same[1])


def test_the_constant_baseline_is_the_best_constant_map():
    res = _images(noise=0.0)
    positive = float(np.mean([r.confusion[1][0] + r.confusion[1][1] for r in res])) / (64 * 64)
    base = constant_baseline(res, ("iou", "f1", "object_f1_iou50"))
    assert base["iou"] == pytest.approx(positive, abs=1e-3)  # all-building: IoU = building share
    assert base["object_f1_iou50"] == 0.0
    keys = card_figures(res, "buildings")
    assert {"iou_ci95", "f1_ci95", "constant_iou", "constant_object_f1_iou50"} <= set(keys)
