"""S2 card figures: intervals around the pooled figure and the majority-label baseline (issue #23)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.realdata


def test_scene_figures_have_intervals_and_the_majority_baseline(mirror):
    from experiments.packaging.s2 import MAJORITY_K, scene_figures
    from rsviz.datasets.bigearthnet import LABELS_19, patches_by_split
    from rsviz.models.api import load_model

    splits = patches_by_split()
    test, train = splits["test"][:4], splits["train"]
    out = scene_figures(load_model("s2-late", "cpu"), test, train)
    counts = np.sum([y.astype(int) for _, _, y in train], axis=0)
    top = [LABELS_19[i] for i in np.argsort(-counts, kind="stable")[:MAJORITY_K]]
    assert out["majority_labels"] == top and counts[LABELS_19.index(top[0])] == counts.max()
    pred = np.zeros(len(LABELS_19), bool)
    pred[[LABELS_19.index(t) for t in top]] = True
    tp = sum(int((y.astype(bool) & pred).sum()) for _, _, y in test)
    fp = sum(int((~y.astype(bool) & pred).sum()) for _, _, y in test)
    fn = sum(int((y.astype(bool) & ~pred).sum()) for _, _, y in test)
    assert out["majority_micro_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    for k in ("micro_f1", "macro_f1", "map"):
        lo, hi = out[f"{k}_ci95"]
        assert lo <= out[k] <= hi
    assert 0.0 <= out["p_model_above_baseline"] <= 1.0 and out["patches"] == 4
