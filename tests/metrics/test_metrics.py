import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from shapely.geometry import box
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_cohen_kappa,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_jaccard_index,
    multiclass_precision,
    multiclass_recall,
)

from rsviz.metrics import (
    ConfusionMatrix,
    binary_error_map,
    boundary_f1,
    height_metrics,
    match_polygons,
    object_f1,
    reconstruction_metrics,
    relaxed_precision_recall,
)
from rsviz.metrics.multilabel import multilabel_metrics


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pixel_metrics_equal_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    k = 5
    t = rng.integers(0, k, (64, 80))
    p = np.where(rng.random((64, 80)) < 0.6, t, rng.integers(0, k, (64, 80)))
    r = ConfusionMatrix(k).update(p, t).compute()
    P, T = torch.from_numpy(p).flatten(), torch.from_numpy(t).flatten()
    np.testing.assert_array_equal(r["confusion_matrix"], multiclass_confusion_matrix(P, T, k).numpy())
    for key, fn in [
        ("iou", multiclass_jaccard_index),
        ("precision", multiclass_precision),
        ("recall", multiclass_recall),
        ("f1", multiclass_f1_score),
    ]:
        ref = fn(P, T, k, average="none").numpy()
        np.testing.assert_allclose([c[key] for c in r["per_class"]], ref, rtol=1e-6, err_msg=key)
        np.testing.assert_allclose(r["macro"][key], fn(P, T, k, average="macro").item(), rtol=1e-6)
        np.testing.assert_allclose(r["weighted"][key], fn(P, T, k, average="weighted").item(), rtol=1e-6)
    assert r["overall_accuracy"] == pytest.approx(multiclass_accuracy(P, T, k, average="micro").item(), rel=1e-6)
    assert r["kappa"] == pytest.approx(multiclass_cohen_kappa(P, T, k).item(), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_ignore_index_matches_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 4, (50, 50))
    p = rng.integers(0, 3, (50, 50))
    r = ConfusionMatrix(4, ignore_index=3).update(p, t).compute()
    ref = multiclass_jaccard_index(
        torch.from_numpy(p).flatten(), torch.from_numpy(t).flatten(), 4, average="none", ignore_index=3
    ).numpy()
    np.testing.assert_allclose([c["iou"] for c in r["per_class"]], ref[:3], rtol=1e-6)
    assert [c["id"] for c in r["per_class"]] == [0, 1, 2]


def test_absent_class_is_nan_and_excluded_from_macro():
    t = np.array([[0, 0, 1, 1]])
    p = np.array([[0, 1, 1, 1]])
    r = ConfusionMatrix(3).update(p, t).compute()
    assert np.isnan(r["per_class"][2]["iou"])
    assert r["macro"]["iou"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_kappa_on_textbook_matrix():
    """Cohen's kappa textbook example (Wikipedia, "Cohen's kappa", worked example):
    rater agreement table [[20, 5], [10, 15]] -> p_o = 0.7, p_e = 0.5, kappa = 0.4."""
    cm = ConfusionMatrix(2)
    cm.matrix[:] = [[20, 5], [10, 15]]
    r = cm.compute()
    assert r["overall_accuracy"] == pytest.approx(0.7)
    assert r["kappa"] == pytest.approx(0.4)


def test_object_f1_iou_just_above_and_below_half():
    gt = [box(0, 0, 10, 10), box(30, 0, 40, 10)]
    above = box(3, 0, 13, 10)  # IoU 70/130 = 0.538
    below = box(34, 0, 44, 10)  # IoU 60/140 = 0.429
    m = match_polygons([above, below], gt, 0.5)
    s = m.scores()
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert m.tp[0][2] == pytest.approx(70 / 130)
    assert s["f1"] == pytest.approx(0.5)
    h = match_polygons([above, below], gt, 0.5, matching="hungarian").scores()
    assert (h["tp"], h["fp"], h["fn"]) == (1, 1, 1)


def test_greedy_matching_removes_matched_ground_truth():
    gt = [box(0, 0, 10, 10)]
    props = [box(0, 0, 10, 10), box(1, 0, 11, 10)]  # both overlap the same building
    s = match_polygons(props, gt).scores()
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 0)


def test_object_f1_from_masks_with_min_area():
    gt = np.zeros((40, 40), np.uint8)
    gt[5:15, 5:15] = 1
    pred = gt.copy()
    pred[30:32, 30:32] = 1  # 4 px speck, dropped by min_area
    s, m = object_f1(pred, gt, min_area=10)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 0)
    s2, _ = object_f1(pred, gt, min_area=0)
    assert s2["fp"] == 1


def _square(shift):
    m = np.zeros((64, 64), bool)
    m[20:40, 20 + shift : 40 + shift] = True
    return m


@pytest.mark.parametrize("shift, expected", [(0, 1.0), (1, 1.0), (2, 1.0), (5, 0.5)])
def test_boundary_f1_on_shifted_square(shift, expected):
    """20x20 square, tolerance 2 px. Shift 5 (hand-worked): of the 76 inner-boundary pixels,
    2x(15+2) horizontal + 4 vertical lie within 2 px of the other boundary -> P = R = 38/76."""
    r = boundary_f1(_square(shift), _square(0), tolerance=2)
    assert r["f1"] == pytest.approx(expected)


def test_boundary_f1_tolerance_in_metres():
    r = boundary_f1(_square(2), _square(0), tolerance_m=0.5, gsd=0.5)  # 1 px
    assert r["tolerance_px"] == 1 and r["f1"] < 1
    with pytest.raises(ValueError):
        boundary_f1(_square(0), _square(0), tolerance_m=1)


def test_relaxed_precision_recall():
    t = np.zeros((50, 50), bool)
    t[25, :] = True
    p = np.zeros((50, 50), bool)
    p[27, :] = True  # 2 px off
    assert relaxed_precision_recall(p, t, rho=3)["f1"] == 1.0
    assert relaxed_precision_recall(p, t, rho=1)["f1"] == 0.0


def test_height_metrics():
    t = np.array([[1.0, 2.0, 4.0, 10.0]])
    p = np.array([[1.0, 2.5, 3.0, 10.0]])
    r = height_metrics(p, t)
    assert r["mae"] == pytest.approx(0.375) and r["bias"] == pytest.approx(-0.125)
    assert r["rmse"] == pytest.approx(np.sqrt((0.25 + 1) / 4))
    assert r["delta_1.25"] == pytest.approx(0.5)  # 2.5/2 = 1.25 is not < 1.25; 4/3 > 1.25


def test_reconstruction_metrics_with_skimage():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 200, (3, 32, 32)).astype(np.float32)  # +10 stays below 255 (no clipping)
    with np.errstate(divide="ignore"):
        r = reconstruction_metrics(x, x)
    assert r["ssim"] == pytest.approx(1.0) and np.isinf(r["psnr_db"])
    n = reconstruction_metrics(x + 10, x)
    assert n["psnr_db"] == pytest.approx(10 * np.log10(255**2 / 100), rel=1e-3)


def test_multilabel_map_with_one_label_present_is_that_labels_average_precision():
    """A small extent often has positives of one label only (torchmetrics' multilabel AP needs two)."""
    probs = np.array([[0.9, 0.1, 0.2], [0.3, 0.2, 0.1], [0.6, 0.4, 0.0]], np.float32)
    tgt = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    assert multilabel_metrics(probs, tgt, ["a", "b", "c"])["map"] == pytest.approx(1.0)  # its positive ranks first
    tgt[:, 0] = [0, 1, 0]  # the positive now ranks last of three: precision 1/3 at full recall
    assert multilabel_metrics(probs, tgt, ["a", "b", "c"])["map"] == pytest.approx(1 / 3)
    assert np.isnan(multilabel_metrics(probs, np.zeros_like(tgt), ["a", "b", "c"])["map"])


def test_multilabel_metrics_against_hand_values():
    probs = np.array([[0.9, 0.1, 0.2], [0.8, 0.7, 0.1], [0.2, 0.6, 0.1]])
    tgt = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    r = multilabel_metrics(probs, tgt, ["a", "b", "c"])
    a, b, c = r["per_label"]
    assert a["f1"] == 1.0 and b["precision"] == 0.5 and b["recall"] == 1.0
    assert np.isnan(c["f1"])  # never present, never predicted
    assert r["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 0))
    assert r["macro_f1"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert r["map"] == pytest.approx(1.0)


def test_error_map_codes():
    p = np.array([[1, 1, 0, 0]])
    t = np.array([[1, 0, 1, 0]])
    np.testing.assert_array_equal(binary_error_map(p, t), [[1, 2, 3, 0]])


def test_cli_evaluate_json_and_grid_mismatch(scene_dir, tmp_path):
    out = tmp_path / "eval.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "rsviz",
            "evaluate",
            "--pred",
            str(scene_dir / "gt.tif"),
            "--gt",
            str(scene_dir / "gt.tif"),
            "--task",
            "buildings",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["values"]["iou"] == 1.0 and doc["values"]["object_f1_iou50"] == 1.0
    assert doc["overall"][1]["class_name"] == "buildings" and doc["overall"][-1]["class_name"] == "average"
    assert out.with_suffix(".csv").read_text().startswith("class_id,class_name,iou")
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "rsviz",
            "evaluate",
            "--pred",
            str(scene_dir / "gt_shifted.tif"),
            "--gt",
            str(scene_dir / "gt.tif"),
            "--task",
            "buildings",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "transform" in bad.stderr and "Traceback" not in bad.stderr


def test_split_instances_separates_touching_buildings_along_edges():
    from rsviz.postprocess import split_instances

    prob = np.zeros((20, 40), np.float32)
    prob[5:15, 5:35] = 0.9  # three buildings touching at columns 15 and 25
    edge = np.zeros_like(prob)
    edge[5:15, 14:16] = 0.9
    edge[5:15, 24:26] = 0.9
    assert split_instances(prob).max() == 1
    inst = split_instances(prob, edge)
    assert len(np.unique(inst[inst > 0])) == 3
    assert (inst[5:15, 5:35] > 0).all()  # the footprint is fully covered again
    gt = np.zeros((20, 40), np.int32)
    gt[5:15, 5:15], gt[5:15, 15:25], gt[5:15, 25:35] = 1, 2, 3
    s, _ = object_f1(prob > 0.5, gt > 0, pred_instances=inst, gt_instances=gt)
    assert s["tp"] == 3 and s["f1"] == 1.0
    s1, _ = object_f1(prob > 0.5, gt > 0, gt_instances=gt)  # without the split: one merged blob
    assert s1["tp"] == 0


def test_size_filter_can_spare_instances_cut_by_the_image_edge():
    from rsviz.postprocess import split_instances

    prob = np.zeros((30, 30), np.float32)
    prob[10:14, 10:14] = 0.9  # a 16 px speck inside
    prob[0:3, 20:25] = 0.9  # a 15 px piece of a roof cut by the top edge
    prob[15:28, 5:25] = 0.9  # a building
    dropped = split_instances(prob, method="components", min_instance_px=20)
    assert len(np.unique(dropped[dropped > 0])) == 1
    kept = split_instances(prob, method="components", min_instance_px=20, keep_edge_instances=True)
    assert len(np.unique(kept[kept > 0])) == 2 and kept[0, 22] > 0 and kept[12, 12] == 0


def test_weak_boundaries_merge_and_strong_ones_stay():
    from rsviz.postprocess import merge_weak_boundaries, split_instances

    inst = np.zeros((20, 40), np.int32)
    inst[5:15, 5:15], inst[5:15, 15:25], inst[5:15, 25:35] = 3, 7, 9
    inst[0:3, 0:3] = 4  # an isolated instance
    edge = np.zeros((20, 40), np.float32)
    edge[5:15, 14:16] = 0.2  # a faint ridge between 3 and 7
    edge[5:15, 24:26] = 0.9  # a wall between 7 and 9
    out = merge_weak_boundaries(inst, edge, 0.5)
    assert out[10, 10] == out[10, 20] != out[10, 30]
    assert out[1, 1] not in (0, out[10, 10], out[10, 30])
    assert (out[inst == 0] == 0).all() and sorted(np.unique(out)) == [0, 1, 2, 3]
    assert len(np.unique(merge_weak_boundaries(inst, edge, 0.1))) == 5  # nothing below 0.1: unchanged
    prob = (inst > 0).astype(np.float32) * 0.9
    seeds_edge = edge.copy()
    seeds_edge[5:15, 14:16] = 0.6  # the edge head half-sees a ridge: seeds split, the merge rejoins
    assert len(np.unique(split_instances(prob, seeds_edge, edge_threshold=0.5, min_seed_px=1))) == 5
    assert len(np.unique(split_instances(prob, seeds_edge, edge_threshold=0.5, min_seed_px=1, merge_below=0.7))) == 4
    with pytest.raises(ValueError, match="shape"):
        merge_weak_boundaries(inst, edge[:10], 0.5)


def test_spur_pruning_and_mask_cleaning_for_road_graphs():
    from rsviz.metrics.roads import apls_from_masks
    from rsviz.postprocess import clean_road_mask, graph_from_mask

    m = np.zeros((80, 80), np.uint8)
    m[38:43, 5:75] = 1  # a horizontal road
    m[10:38, 30:35] = 1  # a side road up to the top
    m[43:50, 55:58] = 1  # a 7 px stub: a spur, not a road
    ends = lambda g: sum(1 for n in g.nodes if g.degree(n) == 1)  # noqa: E731
    assert ends(graph_from_mask(m)) == 4
    assert ends(graph_from_mask(m, min_spur=12)) == 3
    broken = m.copy()
    broken[38:43, 50] = 0  # a 1 px break
    assert clean_road_mask(broken)[39:42, 50].all()  # bridged
    assert apls_from_masks(m, m, clean=False)["apls"] == pytest.approx(1.0)
    assert apls_from_masks(broken, m)["apls"] > apls_from_masks(broken, m, clean=False)["apls"]


def test_bridge_gaps_joins_dead_ends_across_occlusions_only_where_they_point():
    from rsviz.metrics.roads import apls_from_masks, road_graph_apls
    from rsviz.postprocess import bridge_gaps, graph_from_mask

    road = np.zeros((60, 200), np.uint8)
    road[28:33, 5:195] = 1
    broken = road.copy()
    broken[28:33, 90:110] = 0  # a 20 px gap: a tree over the road
    g = graph_from_mask(broken)
    assert nx_components(g) == 2
    assert nx_components(bridge_gaps(graph_from_mask(broken), 15.0)) == 2  # gap longer than allowed
    bridged = bridge_gaps(graph_from_mask(broken), 30.0)
    assert nx_components(bridged) == 1
    assert any(d.get("bridge") for *_, d in bridged.edges(data=True))
    # a road ending beside another, pointing away from it, is not joined to it
    side = np.zeros((60, 200), np.uint8)
    side[10:14, 5:100] = 1  # ends at x = 100 heading east
    side[28:32, 60:195] = 1  # runs 18 px south of that end, at right angles to its heading
    assert nx_components(bridge_gaps(graph_from_mask(side), 25.0)) == 2
    assert nx_components(bridge_gaps(graph_from_mask(side), 25.0, max_angle=100.0)) == 1
    before = apls_from_masks(broken, road)["apls"]
    after = apls_from_masks(broken, road, bridge_px=30.0)["apls"]
    assert after > before + 0.2
    prob = broken * 0.4  # under the default threshold there is no road at all
    assert road_graph_apls(prob, road, {})["apls"] == 0.0
    assert road_graph_apls(prob, road, {"threshold": 0.3, "bridge_px": 30.0})["apls"] == pytest.approx(after)


def nx_components(g) -> int:
    import networkx as nx

    return nx.number_connected_components(g)


def test_evaluate_roads_uses_the_cards_road_graph_on_probabilities():
    from rsviz.evaluation import evaluate

    road = np.zeros((60, 200), np.uint8)
    road[28:33, 5:195] = 1
    prob = road * 0.9
    prob[28:33, 90:110] = 0.35  # weak under an occlusion
    pred = (prob >= 0.5).astype(np.uint8)
    from rsviz.models.card import PostprocessSpec
    from rsviz.postprocess import RoadGraphSettings

    plain = evaluate(pred, road, "roads")
    graph = evaluate(
        pred,
        road,
        "roads",
        heads={"probs": prob[None]},
        postprocess=PostprocessSpec(road_graph=RoadGraphSettings(threshold=0.3)),
    )
    assert plain["iou"] == graph["iou"]  # pixel metrics keep the class map
    assert graph["apls_4px"] == pytest.approx(1.0, abs=0.05) and plain["apls_4px"] < 0.8


def test_road_graphs_come_back_for_display_with_every_edge_drawn_once():
    from matplotlib.figure import Figure

    from rsviz.evaluation import evaluate, to_eval_json
    from rsviz.figures import road_graph_figure
    from rsviz.postprocess import graph_lines

    road = np.zeros((60, 200), np.uint8)
    road[28:33, 5:195] = 1
    road[5:28, 100:104] = 1  # a T junction
    broken = road.copy()
    broken[28:33, 140:160] = 0
    from rsviz.models.card import PostprocessSpec
    from rsviz.postprocess import RoadGraphSettings

    res = evaluate(
        broken,
        road,
        "roads",
        with_artifacts=True,
        heads={"probs": (broken * 0.9)[None]},
        postprocess=PostprocessSpec(road_graph=RoadGraphSettings(bridge_px=30.0)),
    )
    g_gt, g_prop = res.artifacts.graphs
    for g in (g_gt, g_prop):
        lines = graph_lines(g)
        assert sum(len(c) - 1 for c, _ in lines) == g.number_of_edges()
    assert [len(c) for c, b in graph_lines(g_prop) if b] == [2]  # the one bridged gap
    assert "graphs" not in json.dumps(to_eval_json(res)) and "graphs" not in json.dumps(res.to_json())
    fig = road_graph_figure(np.zeros((60, 200, 3), np.uint8), g_gt, g_prop)
    assert isinstance(fig, Figure) and len(fig.axes[0].collections) == 4


def test_metric_labels_use_the_field_terms_and_state_their_parameters():
    from rsviz.evaluation import evaluate, metric_label

    gt = np.zeros((32, 32), np.uint8)
    gt[8:24, 8:24] = 1
    res = evaluate(gt, gt, "buildings")
    assert {"iou", "overall_accuracy", "object_f1_iou50", "boundary_f1_2px"} <= set(res.values)
    assert metric_label("iou")[0] == "IoU" and metric_label("overall_accuracy")[0] == "OA"
    assert metric_label("object_f1_iou50")[0] == "object F1 @ IoU 0.5"
    assert metric_label("boundary_f1_2px")[0] == "boundary F1 (2 px)"
    assert metric_label("apls_4m")[0] == "APLS (4 m buffer)" and metric_label("apls_4px")[0] == "APLS (4 px buffer)"
    assert metric_label("relaxed_f1_3px")[0] == "relaxed F1 (ρ 3 px)" and metric_label("delta_1.25")[0] == "δ < 1.25"
    assert metric_label("iou")[1] and metric_label("no_such_key") == ("no such key", "")


def test_per_class_rows_carry_the_binary_boundary_f1_on_the_positive_class():
    from rsviz.evaluation import evaluate, per_class_rows

    gt = np.zeros((32, 32), np.uint8)
    gt[8:24, 8:24] = 1
    pred = np.roll(gt, 3, axis=1)
    res = evaluate(pred, gt, "buildings")
    rows = per_class_rows(res)
    assert [r["class"] for r in rows] == ["background", "buildings"]
    assert rows[0]["boundary F1"] is None and rows[1]["boundary F1"] == res["boundary_f1_2px"]
    assert rows[1]["support"] == 256
    seg = evaluate(np.array([[0, 1], [2, 2]], np.uint8), np.array([[0, 1], [2, 1]], np.uint8), "segmentation")
    assert all("boundary F1" in r for r in per_class_rows(seg))
    with pytest.raises(ValueError, match="per-class"):
        per_class_rows(evaluate(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32), "height"))
