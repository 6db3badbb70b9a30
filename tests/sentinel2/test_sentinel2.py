"""Sentinel-2 scenes, the patch grid of the BigEarthNet-19 models, export and scoring (rsviz.sentinel2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from rsviz.errors import BandCountError, ExtentError
from rsviz.sentinel2.bands import L2A_ORDER, L2AScaling, band_indexes, band_name, parse_baseline

VARIANTS = ("s2-resize", "s2-intermediate", "s2-late")


def test_band_names_and_order_checked():
    assert band_name("T29UPU_20220301T113321_B8A_20m.jp2") == "B8A"
    assert band_name("b2") == "B02" and band_name("S2A_MSIL2A_20170617T113321_36_85_B11") == "B11"
    assert band_name("TCI_10m") is None
    assert band_indexes(("B03", "B02", "B04"), ("B04", "B03", "B02")) == (2, 0, 1)
    with pytest.raises(BandCountError, match="no band B8A"):
        band_indexes(("B02", "B03"), ("B02", "B8A"))
    with pytest.raises(BandCountError, match="B02 more than once"):
        band_indexes(("B02", "B02"), ("B02",))


def test_l2a_scaling_offset_from_baseline_0400():
    assert parse_baseline("S2B_MSIL2A_20220301T113319_N0400_R080_T29UPU_20220301T140000.SAFE") == 4.0
    assert parse_baseline("04.00") == 4.0 and parse_baseline("N9999_x") is None
    dn = np.array([0, 500, 1000, 1500], np.uint16)
    new = L2AScaling.for_baseline(5.09)
    assert new.offset == -1000
    np.testing.assert_array_equal(new.to_model_units(dn), [0, 0, 0, 500])
    np.testing.assert_allclose(new.reflectance(dn), [-0.1, -0.05, 0.0, 0.05], atol=1e-7)
    np.testing.assert_array_equal(L2AScaling.for_baseline(2.08).to_model_units(dn), dn)


@pytest.fixture(scope="module")
def sample(mirror):
    from rsviz.sentinel2.sample import bigearthnet_scene

    return bigearthnet_scene()


@pytest.fixture(scope="module")
def patches(mirror):
    from rsviz.datasets.bigearthnet import bigearthnet_scenes

    return {r.id: r.load() for r in bigearthnet_scenes()}


def _window_around(scene, p):
    col, row = ~scene.transform * (p.bounds[0], p.bounds[3])
    return Window(round(col) - 120 if col >= 120 else round(col), round(row), 240, 120)


def test_patch_grid_equals_classify_patch_and_folder_equals_stack(sample, patches):
    from rsviz.inference.classify import classify_patch
    from rsviz.sentinel2 import open_s2, predict_variants

    stack, folder = open_s2(sample.stack), open_s2(sample.folder)
    assert stack.bands == folder.bands == L2A_ORDER and folder.layout == "folder"
    assert (stack.width, stack.height, stack.transform) == (folder.width, folder.height, folder.transform)
    assert len(sample.patches) == 4
    for i, rp in enumerate(sample.patches):
        win = _window_around(stack, rp)
        with stack.open() as ds, folder.open() as fs:  # the VRT's 20 / 60 m bands: exact pixel replication
            np.testing.assert_array_equal(stack.read_dn(ds, win, L2A_ORDER)[0], folder.read_dn(fs, win, L2A_ORDER)[0])
        a = predict_variants(stack, VARIANTS, window=win)
        b = predict_variants(folder, VARIANTS, window=win) if i == 0 else a
        for name in VARIANTS:
            pa, pb = a[name], b[name]
            assert pa.probs.shape == (1, 2, 19) and pa.probs.dtype == np.float32
            cell = pa.cell_of((rp.bounds[0] + rp.bounds[2]) / 2, (rp.bounds[1] + rp.bounds[3]) / 2, rp.crs)
            assert cell is not None and pa.predicted.sum() == 1 and pa.predicted[cell]  # the other patch: nodata
            np.testing.assert_allclose(pa.probs[cell], classify_patch(name, patches[rp.id]), atol=1e-5)
            np.testing.assert_array_equal(pa.probs, pb.probs)


def test_offset_baseline_and_band_order_of_a_stack(patches, tmp_path):
    from rsviz.datasets.bigearthnet import BANDS
    from rsviz.inference.classify import classify_patch
    from rsviz.sentinel2 import open_s2, predict_patches

    s = next(iter(patches.values()))
    order = list(reversed(L2A_ORDER))  # descriptions name the bands: any order is read right
    img = np.stack([s.image[BANDS.index(b)] for b in order]).astype(np.uint16) + 1000  # baseline >= 04.00 DNs
    prof = dict(driver="GTiff", width=120, height=120, count=12, dtype="uint16", crs=s.crs, transform=s.transform)
    p = tmp_path / "S2B_MSIL2A_20230301T113319_N0509_R080_T29UPU_x.tif"
    with rasterio.open(p, "w", **prof) as ds:
        ds.write(img)
        ds.descriptions = order
    sc = open_s2(p)
    assert sc.scaling.offset == -1000 and sc.scaling.source == "product name"
    got = predict_patches(sc, "s2-resize")
    np.testing.assert_allclose(got.probs[0, 0], classify_patch("s2-resize", s), atol=1e-5)
    with rasterio.open(tmp_path / "eleven.tif", "w", **{**prof, "count": 11}) as ds:
        ds.write(img[[i for i, b in enumerate(order) if b != "B8A"]])
        ds.descriptions = [b for b in order if b != "B8A"]
    with pytest.raises(BandCountError, match="no band B8A"):
        predict_patches(open_s2(tmp_path / "eleven.tif"), "s2-resize")
    with pytest.raises(ExtentError, match="no whole 120"):
        predict_patches(sc, "s2-resize", window=Window(130, 0, 10, 10))


def test_export_and_scores_against_placed_reference(sample, tmp_path):
    from rsviz.metrics.multilabel import multilabel_metrics
    from rsviz.sentinel2 import open_s2, predict_variants
    from rsviz.sentinel2.export import grid_geojson, map_rasters, write_geotiff
    from rsviz.sentinel2.scoring import majority_labels, reference_from_patches, score

    sc = open_s2(sample.stack)
    rp = sample.patches[1]
    preds = predict_variants(sc, ("s2-resize", "s2-late"), window=_window_around(sc, rp), cache=True)
    p = preds["s2-resize"]
    out = write_geotiff(p, tmp_path / "probs.tif")
    with rasterio.open(out) as ds:
        assert ds.count == 19 and ds.descriptions == p.labels and ds.crs == sc.crs
        np.testing.assert_array_equal(np.moveaxis(ds.read(), 0, -1), p.probs)  # NaN where not predicted
        assert ds.transform.a == 1200.0
    gj = grid_geojson(p)
    assert len(gj["features"]) == 1
    f = gj["features"][0]["properties"]
    assert f["labels"] == [lab for lab, q in sorted(f["probabilities"].items(), key=lambda x: -x[1]) if q >= 0.5]
    json.dumps(gj)
    ref = reference_from_patches(p, sample.patches)
    assert (ref >= 0).all(-1).sum() == 1
    # the scores of the whole sample set (several labels) equal the repository's multilabel metrics
    rng = np.random.default_rng(0)
    probs, truth = rng.random((12, 19)).astype(np.float32), (rng.random((12, 19)) < 0.3).astype(np.int16)
    from rsviz.sentinel2.scoring import _scores

    mine, want = _scores("m", probs, truth, p.labels, 0.5), multilabel_metrics(probs, truth, p.labels)
    assert mine.micro_f1 == pytest.approx(want["micro_f1"]) and mine.map == pytest.approx(want["map"], abs=1e-6)
    assert mine.macro_f1 == pytest.approx(want["macro_f1"])
    model, base = score(p, ref)
    sel = p.predicted
    assert model.patches == 1 and 0 <= model.micro_f1 <= 1 and np.isfinite(model.map)
    top3 = majority_labels()
    assert len(top3) == 3 and base.model == "majority baseline"
    assert sum(x.support for x in base.per_label) == int(ref[sel].sum())
    layers = map_rasters(list(preds.values()), tmp_path / "maps", up=4)
    with rasterio.open(layers["disagreement"]) as ds:
        d = ds.read(1)
        assert ds.width == 8 and (d == 255).sum() == 16 and d[d != 255].max() <= 19  # one patch is nodata
    again = predict_variants(sc, ("s2-resize",), window=_window_around(sc, rp), cache=True)["s2-resize"]
    np.testing.assert_array_equal(again.probs, p.probs)


def test_rsviz_predict_with_an_s2_model_writes_the_patch_grid(sample, patches, tmp_path, capsys):
    """``rsviz predict s2-resize SCENE OUT.tif`` runs the patch grid (it refused S2 scenes before #24)."""
    from rsviz.cli import main
    from rsviz.inference.classify import classify_patch

    out = tmp_path / "labels.tif"
    assert main(["predict", "s2-resize", str(sample.folder), str(out)]) == 0
    assert "patches of 120 px" in capsys.readouterr().out
    rp = sample.patches[0]
    with rasterio.open(out) as ds:
        assert ds.count == 19 and ds.dtypes[0] == "float32" and ds.crs == rp.crs
        row, col = ds.index((rp.bounds[0] + rp.bounds[2]) / 2, (rp.bounds[1] + rp.bounds[3]) / 2)
        got = ds.read(window=Window(col, row, 1, 1))[:, 0, 0]
    np.testing.assert_allclose(got, classify_patch("s2-resize", patches[rp.id]), atol=1e-5)
    grid = json.loads(out.with_suffix(".geojson").read_text())
    assert grid["type"] == "FeatureCollection" and grid["features"]
    assert main(["predict", "s2-resize", str(sample.folder), str(out)]) == 2  # exists, no --overwrite
    assert "exists" in capsys.readouterr().err
