"""evaluate_windows equals evaluate_sample on the whole extent (real bundled cards, seeded synthetic heads)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from scipy import ndimage

from rsviz.datasets.base import Sample
from rsviz.evaluation import evaluate_sample, evaluate_windows, pool
from rsviz.models.api import get_model_card

H, W = 260, 300
T = Affine(0.5, 0, 500000, 0, -0.5, 4000000)


def _sample(image: np.ndarray, valid: np.ndarray, targets: dict[str, np.ndarray]) -> Sample:
    return Sample(
        "synthetic",
        "synthetic",
        "test",
        image,
        ("red", "green", "blue"),
        (0.0, 255.0),
        T,
        CRS.from_epsg(32633),
        valid,
        targets,
    )


def _readers(heads: Mapping[str, np.ndarray], sample: Sample) -> tuple[Any, Any]:
    def cut(a: np.ndarray, w: Window) -> np.ndarray:
        r0, c0, h, wd = int(w.row_off), int(w.col_off), int(w.height), int(w.width)
        return a[..., r0 : r0 + h, c0 : c0 + wd]

    def read_heads(w: Window) -> dict[str, np.ndarray]:
        return {k: cut(v, w) for k, v in heads.items()}

    def read_sample(w: Window) -> Sample:
        assert sample.valid is not None
        return Sample(
            sample.id,
            sample.dataset,
            sample.split,
            cut(sample.image, w),
            sample.band_names,
            sample.scale,
            window_transform(w, sample.transform),
            sample.crs,
            cut(sample.valid, w),
            {k: cut(v, w) for k, v in sample.targets.items()},
        )

    return read_heads, read_sample


def _same(a: Any, b: Any, rel: float = 0.0) -> None:
    assert a is not None and b is not None
    ja, jb = a.to_json(), b.to_json()
    if rel:
        va, vb = ja.pop("values"), jb.pop("values")
        assert va.keys() == vb.keys()
        for k in va:
            assert (va[k] is None and vb[k] is None) or va[k] == pytest.approx(vb[k], rel=rel, abs=1e-12), k
    assert ja == jb


def _buildings_scene(seed: int = 0) -> tuple[dict[str, np.ndarray], Sample]:
    rng = np.random.default_rng(seed)
    inst = np.zeros((H, W), np.int32)
    n = 0
    boxes = [(20, 60, 30, 230), (150, 250, 200, 240)]  # one long building across many blocks, one tall
    for _ in range(60):
        h, w = rng.integers(14, 55, 2)
        r, c = rng.integers(0, H - h), rng.integers(0, W - w)
        boxes.append((r, r + h, c, c + w))
    for r0, r1, c0, c1 in boxes:
        if (inst[r0:r1, c0:c1] == 0).all():
            n += 1
            inst[r0:r1, c0:c1] = n
    # two touching footprints (a shared wall)
    if (inst[100:140, 10:90] == 0).all():
        inst[100:140, 10:50], inst[100:140, 50:90] = n + 1, n + 2
        n += 2
    gt = (inst > 0).astype(np.uint8)
    pm = ndimage.shift(gt.astype(float), (rng.integers(-2, 3), rng.integers(-2, 3)), order=0) > 0.5
    drop = rng.choice(np.arange(1, n + 1), size=4, replace=False)
    pm &= ~np.isin(inst, drop)
    pm[200:230, 20:70] = True  # a false positive
    prob = np.clip(ndimage.gaussian_filter(pm.astype(np.float32), 1.5) + rng.normal(0, 0.05, (H, W)), 0, 1)
    prob = prob.astype(np.float32)
    edge = ndimage.morphological_gradient(inst, size=3) > 0
    edge = np.clip(ndimage.gaussian_filter(edge.astype(np.float32), 1.0) * 2 + rng.normal(0, 0.05, (H, W)), 0, 1)
    image = rng.integers(0, 256, (3, H, W)).astype(np.uint8)
    recon = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.float32)
    valid = np.ones((H, W), bool)
    valid[:30, 260:] = False
    classes = (prob >= 0.5).astype(np.uint8)
    classes[240:, :40] = 255
    heads = {"classes": classes, "probs": prob[None], "edge": edge.astype(np.float32), "recon": recon}
    return heads, _sample(image, valid, {"buildings": gt, "instances": inst})


@pytest.mark.parametrize("block", [64, 100, 1024])
def test_buildings_mtl_equals_whole_extent(block: int) -> None:
    card = get_model_card("building-mtl")
    heads, sample = _buildings_scene()
    full = evaluate_sample(card, heads, sample)
    assert full is not None and full["object_tp"] and full["object_fp"] and full["object_fn"]
    seen: list[tuple[int, int]] = []
    win = evaluate_windows(
        card,
        *_readers(heads, sample),
        H,
        W,
        block=block,
        halo=None if block != 64 else 16,
        progress=lambda d, t: seen.append((d, t)),
    )
    _same(win, full, rel=1e-9)  # reconstruction figures are float sums: equal to rounding
    assert win is not None
    for k in (
        "iou",
        "f1",
        "boundary_f1_2px",
        "object_f1_iou50",
        "object_tp",
        "object_fp",
        "object_fn",
        "edge_head_boundary_f1_2px",
        "object_fp_touching_no_label",
    ):
        assert win.values[k] == full.values[k] or (math.isnan(win.values[k]) and math.isnan(full.values[k])), k
    assert win.confusion == full.confusion and win.stats["objects"] == full.stats["objects"]
    assert seen[-1][0] == seen[-1][1] == math.ceil(H / block) * math.ceil(W / block)
    other_heads, other = _buildings_scene(seed=5)  # a split of two extents pools like two images
    other_full = evaluate_sample(card, other_heads, other)
    other_win = evaluate_windows(card, *_readers(other_heads, other), H, W, block=block)
    _same(pool([win, other_win]), pool([full, other_full]), rel=1e-9)


def test_building_seg_without_instances_and_artifacts() -> None:
    card = get_model_card("building-seg")
    heads, sample = _buildings_scene(seed=3)
    heads = {k: heads[k] for k in ("classes", "probs")}
    sample.targets.pop("instances")
    full = evaluate_sample(card, heads, sample, with_artifacts=True)
    win = evaluate_windows(card, *_readers(heads, sample), H, W, block=80, with_artifacts=True)
    _same(win, full)
    assert win is not None and full is not None
    assert len(win.artifacts.match.tp) == len(full.artifacts.match.tp)
    areas = sorted(round(p.area, 6) for p, _, _ in win.artifacts.match.tp)
    assert areas == sorted(round(p.area, 6) for p, _, _ in full.artifacts.match.tp)


def test_footprint_split_across_block_edge_counted_once() -> None:
    card = get_model_card("building-seg")
    inst = np.zeros((H, W), np.int32)
    inst[40:88, 70:130] = 1  # rows 40..87 cross the block edge at 64, columns cross 100
    prob = (inst > 0).astype(np.float32)[None]
    heads = {"classes": (inst > 0).astype(np.uint8), "probs": prob}
    sample = _sample(
        np.zeros((3, H, W), np.uint8),
        np.ones((H, W), bool),
        {"buildings": (inst > 0).astype(np.uint8), "instances": inst},
    )
    for block in (64, 100):
        r = evaluate_windows(card, *_readers(heads, sample), H, W, block=block, halo=8)
        assert r is not None
        assert (r["object_tp"], r["object_fp"], r["object_fn"]) == (1, 0, 0)
        assert r["object_f1_iou50"] == 1.0


def test_landcover_multiclass_equals_whole_extent() -> None:
    card = get_model_card("landcover-deeplabv3plus")
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 6, (14, 16))
    gt = np.kron(coarse, np.ones((20, 20), np.int64))[:H, :W].astype(np.uint8)
    pred = gt.copy()
    noise = ndimage.zoom(rng.integers(0, 5, (26, 30)), 10, order=0)[:H, :W].astype(np.uint8)
    flip = ndimage.zoom(rng.random((26, 30)), 10, order=0)[:H, :W] < 0.3
    pred[flip] = noise[flip]
    pred[5:9, 5:9] = 6  # an id beyond the legend gets its own row
    pred[250:, 100:150] = 255
    probs = np.zeros((5, H, W), np.float32)
    valid = np.ones((H, W), bool)
    valid[100:130, 200:260] = False
    sample = _sample(rng.integers(0, 256, (3, H, W)).astype(np.uint8), valid, {"classes": gt})
    heads = {"classes": pred, "probs": probs}
    full = evaluate_sample(card, heads, sample)
    for block in (64, 100):
        _same(evaluate_windows(card, *_readers(heads, sample), H, W, block=block), full)
    assert full is not None and "iou_6" in full.values


def test_height_equals_whole_extent() -> None:
    card = get_model_card("height-mtl")
    rng = np.random.default_rng(2)
    gt = ndimage.gaussian_filter(rng.random((H, W)) * 30, 5).astype(np.float32)
    pred = (gt + rng.normal(0, 1.5, (H, W))).astype(np.float32)
    valid = rng.random((H, W)) > 0.05
    sample = _sample(np.zeros((3, H, W), np.uint8), valid, {"height": gt})
    heads = {"classes": np.zeros((H, W), np.uint8), "height": pred}
    full = evaluate_sample(card, heads, sample)
    win = evaluate_windows(card, *_readers(heads, sample), H, W, block=64)
    _same(win, full, rel=1e-12)
    assert win is not None and full is not None
    assert win.stats["height"]["n"] == full.stats["height"]["n"]
    assert win.stats["height"]["delta_hits"] == full.stats["height"]["delta_hits"]
    # heights on a 1/8 m grid sum exactly: then the figures are bit-equal too
    q = {"height": np.round(gt * 8) / 8}
    hq = {"classes": heads["classes"], "height": np.round(pred * 8) / 8}
    sq = _sample(sample.image, valid, {k: v.astype(np.float32) for k, v in q.items()})
    _same(evaluate_windows(card, *_readers(hq, sq), H, W, block=100), evaluate_sample(card, hq, sq))


def _roads_scene() -> tuple[dict[str, np.ndarray], Sample]:
    rng = np.random.default_rng(4)
    gt = np.zeros((H, W), np.uint8)
    gt[60:66, :] = 1
    gt[:, 150:156] = 1
    gt[180:185, 20:280] = 1
    rr = np.arange(H)
    gt[rr, np.clip(rr + 10, 0, W - 1)] = 1
    gt = ndimage.binary_dilation(gt, iterations=1).astype(np.uint8)
    pm = ndimage.shift(gt.astype(float), (1, -1), order=0) > 0.5
    pm[180:185, 120:160] = False  # a gap
    prob = np.clip(ndimage.gaussian_filter(pm.astype(np.float32), 1.0) + rng.normal(0, 0.05, (H, W)), 0, 1)
    heads = {"classes": (prob >= 0.5).astype(np.uint8), "probs": prob.astype(np.float32)[None]}
    return heads, _sample(np.zeros((3, H, W), np.uint8), np.ones((H, W), bool), {"roads": gt})


def test_roads_equals_whole_extent() -> None:
    card = get_model_card("roads-pplinknet")
    heads, sample = _roads_scene()
    full = evaluate_sample(card, heads, sample, with_artifacts=True)
    assert full is not None and 0 < full["apls_4px"] < 1
    for block in (64, 100):
        win = evaluate_windows(card, *_readers(heads, sample), H, W, block=block, with_artifacts=True)
        _same(win, full)
        assert win is not None and win.artifacts.graphs is not None


def test_cancel_raises_and_bad_arguments() -> None:
    from rsviz.inference.engine import InferenceCancelled

    card = get_model_card("roads-pplinknet")
    heads, sample = _roads_scene()
    with pytest.raises(InferenceCancelled):
        evaluate_windows(card, *_readers(heads, sample), H, W, block=64, cancel=lambda: True)
    with pytest.raises(ValueError, match="halo"):
        evaluate_windows(card, *_readers(heads, sample), H, W, block=64, halo=1)
    with pytest.raises(ValueError, match="unknown evaluation parameter"):
        evaluate_windows(card, *_readers(heads, sample), H, W, bogus=1)
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_windows(card, *_readers(heads, sample), H, W, iou_threshold=0.3)


def test_no_ground_truth_gives_none() -> None:
    card = get_model_card("roads-pplinknet")
    heads, sample = _roads_scene()
    sample.targets.pop("roads")
    assert evaluate_windows(card, *_readers(heads, sample), H, W, block=100) is None


# --------------------------------------------------------------------------- rasters on disk


def _write(path: Any, bands: np.ndarray, **kw: Any) -> None:
    import rasterio

    bands = bands if bands.ndim == 3 else bands[None]
    prof = {
        "driver": "GTiff",
        "height": H,
        "width": W,
        "count": bands.shape[0],
        "dtype": bands.dtype.name,
        "transform": T,
        "crs": CRS.from_epsg(32633),
        **kw,
    }
    tags = prof.pop("tags", None)
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(bands)
        if tags:
            ds.update_tags(**tags)


def _dequantised(card: Any, heads: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The uint8 band stack predict(output=...) writes, and the heads evaluate_rasters reads back."""
    from rsviz.inference.sinks import output_band_layout

    def q(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)

    out, back = [], {"classes": heads["classes"]}
    recon = iter(heads["recon"])
    for name, _ in output_band_layout(card, False):
        if name == "classes":
            out.append(heads["classes"])
        elif name.startswith("prob:"):
            out.append(q(heads["probs"][0]))
        elif name == "edge":
            out.append(q(heads["edge"]))
        elif name == "entropy":
            out.append(np.zeros((H, W), np.uint8))
        elif name.startswith("recon:"):
            out.append(np.clip(next(recon), 0, 255).astype(np.uint8))
    stack = np.stack(out)
    names = [n for n, _ in output_band_layout(card, False)]
    back["probs"] = stack[[names.index(n) for n in names if n.startswith("prob:")]].astype(np.float32) / np.float32(255)
    back["edge"] = stack[names.index("edge")].astype(np.float32) / np.float32(255)
    back["recon"] = stack[[i for i, n in enumerate(names) if n.startswith("recon:")]].astype(np.float32)
    return stack, back


def test_evaluate_rasters_equals_sample_of_the_written_bands(tmp_path: Any) -> None:
    from rsviz.evaluation import evaluate_rasters
    from rsviz.inference.sinks import output_band_layout

    card = get_model_card("building-mtl")
    heads, sample = _buildings_scene()
    stack, back = _dequantised(card, heads)
    names = ",".join(n for n, _ in output_band_layout(card, False))
    _write(tmp_path / "pred.tif", stack, tags={"rsviz_bands": names})
    _write(tmp_path / "gt.tif", sample.targets["buildings"])
    _write(tmp_path / "inst.tif", sample.targets["instances"])
    _write(tmp_path / "image.tif", sample.image)
    gts = {"buildings": tmp_path / "gt.tif", "instances": tmp_path / "inst.tif"}
    got = evaluate_rasters(card, tmp_path / "pred.tif", gts, image_path=tmp_path / "image.tif", block=100)
    ones = _sample(sample.image, np.ones((H, W), bool), sample.targets)  # the rasters have no nodata
    _same(got, evaluate_sample(card, back, ones), rel=1e-9)
    # a window of the rasters is the same window of the arrays
    w = Window(40, 30, 200, 180)
    sub = evaluate_rasters(card, tmp_path / "pred.tif", gts, window=w, image_path=tmp_path / "image.tif", block=64)
    rh, rs = _readers(back, ones)
    _same(sub, evaluate_sample(card, rh(w), rs(w)), rel=1e-9)


@pytest.mark.realdata
@pytest.mark.slow
def test_real_model_prediction_on_a_mirror_chip(mirror: Any, tmp_path: Any) -> None:
    """building-mtl on a real Banepa chip (CPU): windows equal the whole chip, in memory and from its COG."""
    from rsviz.datasets import scenes
    from rsviz.evaluation import evaluate_rasters
    from rsviz.inference import predict
    from rsviz.models.api import load_model

    lm = load_model("building-mtl", "cpu")
    s = next(iter(scenes("banepa-buildings", "test"))).load()
    h, w = min(s.shape[0], 288), min(s.shape[1], 320)
    rh, rs = _readers({}, s)
    crop = rs(Window(0, 0, w, h))
    p = predict(lm, crop.raster_data(), tile=256, precision="fp32", tta=False)
    predict(lm, crop.raster_data(), tile=256, precision="fp32", tta=False, output=tmp_path / "pred.tif")
    full = evaluate_sample(lm.card, p.heads, crop)
    assert full is not None
    ph, ps = _readers(p.heads, crop)
    _same(evaluate_windows(lm.card, ph, ps, h, w, block=100), full, rel=1e-9)
    import rasterio

    with rasterio.open(tmp_path / "pred.tif") as ds:
        prof = {"driver": "GTiff", "height": h, "width": w, "count": 1, "transform": ds.transform, "crs": ds.crs}
    for k in ("buildings", "instances"):
        if k in crop.targets:
            a = crop.targets[k]
            with rasterio.open(tmp_path / f"{k}.tif", "w", dtype=a.dtype.name, **prof) as ds:
                ds.write(a[None])
    gts = {k: tmp_path / f"{k}.tif" for k in ("buildings", "instances") if k in crop.targets}
    disk = evaluate_rasters(lm.card, tmp_path / "pred.tif", gts, block=100)
    assert disk is not None
    # quantised probabilities (x 255): close to the in-memory figures, the class map exact
    assert disk.confusion is not None and full.confusion is not None
    assert abs(disk["iou"] - full["iou"]) < 0.02


def test_one_cluster_over_the_whole_extent_is_not_dropped() -> None:
    """Buildings joined by 1 px footprint bridges: one cluster larger than any window; building-seg's
    ``distance`` splitting needs all of it, so windows grow to the extent and still equal it."""
    card = get_model_card("building-seg")
    inst = np.zeros((H, W), np.int32)
    n = 0
    for r in range(10, H - 40, 50):
        for c in range(10, W - 40, 50):
            n += 1
            inst[r : r + 36, c : c + 36] = n
    pm = inst > 0
    pm[28, 10 : W - 20] = True  # bridges along the first row of buildings and down the first column
    pm[10 : H - 30, 28] = True
    prob = pm.astype(np.float32)[None]
    heads = {"classes": pm.astype(np.uint8), "probs": prob}
    sample = _sample(
        np.zeros((3, H, W), np.uint8),
        np.ones((H, W), bool),
        {"buildings": (inst > 0).astype(np.uint8), "instances": inst},
    )
    full = evaluate_sample(card, heads, sample)
    assert full is not None and full["object_tp"]
    _same(evaluate_windows(card, *_readers(heads, sample), H, W, block=64, halo=8), full)
