"""The report's spatial-block bootstrap on synthetic blocks (no sample data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from rsviz.datasets.buildings import BUILDING_CLASSES
from rsviz.evaluation.measures import PixelMetrics
from rsviz.report.uncertainty import BlockStats, difference_intervals, interval_keys, intervals, trivial_baseline


def _blocks(seed: int, n: int = 64, p_hit: float = 0.8) -> BlockStats:
    rng = np.random.default_rng(seed)
    mats = []
    for _ in range(n):
        pos = rng.integers(50, 500)
        neg = 1000 - pos
        tp = rng.binomial(pos, p_hit)
        fp = rng.binomial(neg, 0.1)
        mats.append([[neg - fp, fp], [pos - tp, tp]])
    objects = rng.integers(0, 4, (n, 3))
    pixel = PixelMetrics(2, [c.name for c in BUILDING_CLASSES], binary=True)
    return BlockStats(32, np.array(mats, np.int64), objects, pixel)


def test_intervals_bracket_the_pooled_figures():
    bs = _blocks(0)
    values = dict(bs.pixel.values({"confusion": bs.confusion.sum(0)}))
    tp, fp, fn = bs.objects.sum(0)
    values["object_f1_iou50"] = 2 * tp / (2 * tp + fp + fn)
    keys = interval_keys(values, bs)
    assert keys["iou"] == "pixel" and keys["object_f1_iou50"] == "objects"
    ivs = intervals(bs, keys, n=400)
    for k in ("iou", "f1", "overall_accuracy", "kappa", "object_f1_iou50"):
        assert ivs[k].low < values[k] < ivs[k].high, k
        assert ivs[k].high - ivs[k].low < 0.3
    assert intervals(bs, keys, n=400) == ivs  # seeded


def test_difference_is_paired_on_the_same_blocks_and_has_the_right_sign():
    a, worse = _blocks(1), _blocks(1, p_hit=0.6)
    keys = {"iou": "pixel", "recall": "pixel"}
    same, paired = difference_intervals(a, a, keys, n=200)
    assert paired and same["iou"].low == same["iou"].high == 0.0
    ivs, paired = difference_intervals(a, worse, keys, n=200)
    assert paired and ivs["recall"].high < 0
    _, paired = difference_intervals(a, _blocks(2, n=49), keys, n=50)
    assert not paired


def test_trivial_baseline_is_the_best_constant_map():
    bs = _blocks(3)
    cm = bs.confusion.sum(0)
    base = trivial_baseline(
        bs, {"iou": "pixel", "overall_accuracy": "pixel", "kappa": "pixel", "object_f1_iou50": "objects"}
    )
    share_pos = cm[1].sum() / cm.sum()
    assert base["iou"] == (pytest.approx(share_pos), "all building")
    assert base["overall_accuracy"][0] == pytest.approx(max(share_pos, 1 - share_pos))
    assert base["kappa"] == (pytest.approx(0.0), "any constant")
    assert base["object_f1_iou50"] == (0.0, "no objects")
