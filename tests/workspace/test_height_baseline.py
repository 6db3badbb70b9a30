"""The constant-height baseline beside a height head's errors (Metrics page), on a real Potsdam patch."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

pytestmark = pytest.mark.realdata


def test_height_baseline_is_the_best_constant_read_block_by_block(mirror):
    from rsviz.datasets import scenes
    from rsviz.workspace import open_sample
    from rsviz.workspace.metrics import height_baseline

    scene = open_sample(scenes("potsdam-height", "test")[0])
    win = Window(10, 20, 150, 100)
    b = height_baseline(scene, win, block=64)  # 3 x 2 blocks, the last ones partial
    s = scene.read(win)
    h = s.targets["height"][s.valid].astype(np.float64)
    assert b is not None and b.pixels == h.size > 0
    assert b.mean == pytest.approx(h.mean()) and b.rmse == pytest.approx(h.std())
    assert b.mae == pytest.approx(np.abs(h - h.mean()).mean())
    for c in (h.mean() - 0.05, h.mean() + 0.05, np.median(h)):  # no other constant has a lower RMSE
        assert np.sqrt(((h - c) ** 2).mean()) > b.rmse
    assert height_baseline(open_sample(scenes("banepa-buildings", "test")[0]), win) is None
