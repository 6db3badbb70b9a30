"""The task registry: a new metric or task is one module plus its registration."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rsviz.errors import UnknownNameError
from rsviz.evaluation import evaluate, pool, register_task, task_spec, to_eval_json
from rsviz.evaluation.measures import Measure, Measured
from rsviz.types import Task


class PositiveShare(Measure):
    """Toy metric: share of valid pixels predicted positive, pooled from counts."""

    name = "positive_share"

    def measure(self, x):
        return Measured({"pos": int(((x.pred == 1) & x.valid).sum()), "n": int(x.valid.sum())})

    def values(self, stats):
        return {"positive_share": stats["pos"] / stats["n"]}


@pytest.fixture
def toy_metric():
    spec = task_spec(Task.ROADS)
    register_task(replace(spec, measures=lambda cfg: [*spec.measures(cfg), PositiveShare()]), replace=True)
    yield
    register_task(spec, replace=True)


def test_a_toy_metric_is_one_class_plus_its_registration(toy_metric):
    a = np.zeros((20, 20), np.uint8)
    a[:, :5] = 1
    b = np.zeros((20, 20), np.uint8)
    b[:, :15] = 1
    ra, rb = evaluate(a, a, "roads"), evaluate(b, a, "roads")
    assert ra["positive_share"] == 0.25 and rb["positive_share"] == 0.75
    assert pool([ra, rb])["positive_share"] == 0.5  # pooled from counts
    assert to_eval_json(pool([ra, rb]))["values"]["positive_share"] == 0.5


def test_registering_a_task_twice_needs_replace_and_unknown_tasks_list_the_valid_ones():
    with pytest.raises(ValueError, match="registered already"):
        register_task(task_spec("roads"))
    with pytest.raises(UnknownNameError, match="buildings"):
        task_spec("no-such-task")
    assert task_spec("segmentation") is task_spec(Task.LANDCOVER)


def test_pooling_sums_counts_and_averages_per_image_figures():
    gt = np.zeros((40, 40), np.uint8)
    gt[10:30, 10:30] = 1
    one = evaluate(gt, gt, "buildings")
    half = evaluate(np.roll(gt, 10, axis=1), gt, "buildings")
    both = pool([one, half])
    cm = np.asarray(one.confusion) + np.asarray(half.confusion)
    assert both.confusion == tuple(map(tuple, cm.tolist())) and both.images == 2
    assert both["iou"] == pytest.approx(cm[1, 1] / (cm[1, 1] + cm[0, 1] + cm[1, 0]))
    assert both["boundary_f1_2px"] == pytest.approx((one["boundary_f1_2px"] + half["boundary_f1_2px"]) / 2)
    assert both["object_tp"] == one["object_tp"] + half["object_tp"]
    with pytest.raises(ValueError, match="different tasks"):
        pool([one, evaluate(gt, gt, "roads")])


def test_height_pooled_equals_height_of_all_pixels_at_once():
    rng = np.random.default_rng(0)
    p, t = rng.random((2, 16, 16)), rng.random((2, 16, 16))
    split = pool([evaluate(p[i], t[i], "height") for i in range(2)])
    whole = evaluate(p.reshape(32, 16), t.reshape(32, 16), "height")
    for k in ("rmse", "mae", "bias", "delta_1.25"):
        assert split[k] == pytest.approx(whole[k], rel=1e-12)
