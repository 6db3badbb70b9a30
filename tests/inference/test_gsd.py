"""Inputs at the model's scale (rsviz.inference.gsd): a real Banepa chip shown to the model at twice its GSD
resolution is resampled back to the card's GSD, and its prediction returns onto the native grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

CHIP = "banepa-buildings/data/sample/train/oam/OAM-386695-220246-19.tif"  # a test chip (its folder holds every split)


def test_target_gsd_is_the_centre_of_the_range_only_outside_it():
    from rsviz.inference.gsd import GSD_TOLERANCE, target_gsd

    centre = math.sqrt(0.1 * 0.2)
    assert target_gsd(0.15, (0.1, 0.2)) is None
    assert target_gsd(0.1 / GSD_TOLERANCE, (0.1, 0.2)) is None  # the tolerance is inclusive
    assert target_gsd(0.2 * GSD_TOLERANCE * 1.01, (0.1, 0.2)) == pytest.approx(centre)
    assert target_gsd(0.077, (0.1, 0.2)) == pytest.approx(centre)
    assert target_gsd(None, (0.1, 0.2)) is None and target_gsd(float("nan"), (0.1, 0.2)) is None


def test_resample_heads_keeps_class_ids_and_interpolates_probabilities():
    from rsviz.inference.gsd import resample_heads

    cls = np.array([[0, 1], [255, 1]], np.uint8)
    probs = np.array([[[0.0, 1.0], [0.0, 1.0]]], np.float32)
    heads, valid = resample_heads({"classes": cls, "probs": probs}, cls != 255, (4, 4))
    assert set(np.unique(heads["classes"]).tolist()) == {0, 1, 255}
    np.testing.assert_array_equal(heads["classes"][2:, :2], 255)
    assert not valid[2:, :2].any() and valid[:2].all()
    p = heads["probs"][0, 0]
    assert p.dtype == np.float32 and 0 < p[1] < p[2] < 1  # bilinear between the two columns


@pytest.fixture(scope="module")
def enlarged(mirror, tmp_path_factory):
    """The chip upsampled 2x (bilinear) with a transform of half its pixel size: the same ground at 0.07 m."""
    with rasterio.open(mirror / CHIP) as ds:
        data = ds.read(out_shape=(ds.count, ds.height * 2, ds.width * 2), resampling=Resampling.bilinear)
        prof = ds.profile | {
            "height": ds.height * 2,
            "width": ds.width * 2,
            "transform": ds.transform * rasterio.Affine.scale(0.5),
        }
        for k in ("blockxsize", "blockysize", "tiled"):
            prof.pop(k, None)
    path = tmp_path_factory.mktemp("gsd") / "enlarged.tif"
    with rasterio.open(path, "w", **prof) as out:
        out.write(data)
    return path


def test_a_chip_at_half_its_gsd_is_predicted_at_the_models(mirror, enlarged, tmp_path):
    from rsviz.geo import gsd_metres
    from rsviz.inference import predict
    from rsviz.inference.export import read_prediction
    from rsviz.models.api import load_model

    lm = load_model("building-seg", "cpu")
    native = predict(lm, mirror / CHIP, tta=False)
    assert "gsd" not in native.options  # 0.13 m: inside the card's 0.1-0.2 m
    with rasterio.open(enlarged) as ds:
        g = gsd_metres(ds.transform, ds.crs, ds.height, ds.width)
    assert g < 0.1 / 1.25
    as_is = predict(lm, enlarged, tta=False, match_gsd=False)
    resampled = predict(lm, enlarged, tta=False)
    assert resampled.options["gsd"] == f"{g:.3f} m -> {math.sqrt(0.02):.3f} m"
    assert resampled.heads["classes"].shape == (1024, 1024) and resampled.transform == as_is.transform
    # what the model says of the chip at its own GSD, seen on the enlarged grid
    ref = np.kron(native.heads["classes"], np.ones((2, 2), np.uint8))

    def iou(a):
        return ((a == 1) & (ref == 1)).sum() / max(((a == 1) | (ref == 1)).sum(), 1)

    assert iou(resampled.heads["classes"]) > 0.85
    assert iou(resampled.heads["classes"]) > iou(as_is.heads["classes"])
    # the file output goes the same way, block by block, to the same class ids
    out = predict(lm, enlarged, tta=False, output=tmp_path / "pred.tif")
    assert out.options["gsd"] == resampled.options["gsd"] and sorted(p.name for p in tmp_path.iterdir()) == ["pred.tif"]
    back = read_prediction(tmp_path / "pred.tif")
    with rasterio.open(tmp_path / "pred.tif") as ds:
        assert ds.transform == as_is.transform and ds.overviews(1)  # a COG on the enlarged grid
    agree = (back.heads["classes"] == resampled.heads["classes"]).mean()
    assert agree > 0.999, agree
