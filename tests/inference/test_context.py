"""Context inference: mosaics of a chip's neighbours on the chip's grid, and predictions cropped back."""

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from rsviz.errors import CRSError
from rsviz.inference.context import context_mosaic, predict_with_context
from rsviz.models.api import load_model
from rsviz.raster import RasterData
from tests import toy_models

M3857 = CRS.from_epsg(3857)


def _raster(col0, row0, h=32, w=32, seed=0, crs=M3857):
    """A chip whose top-left pixel is ``(col0, row0)`` of a 1 m grid at (500000, 4000000)."""
    img = np.random.default_rng(seed).integers(1, 256, size=(3, h, w), dtype=np.uint8)
    t = Affine(1.0, 0, 500000.0 + col0, 0, -1.0, 4000000.0 - row0)
    return RasterData(img, t, crs, None, ("red", "green", "blue"))


def test_margin_is_filled_from_the_neighbours_on_the_center_grid():
    center, right, below = _raster(0, 0, seed=1), _raster(32, 0, seed=2), _raster(0, 32, seed=3)
    far = _raster(500, 500, seed=4)
    mosaic, win = context_mosaic(center, [right, below, far, center], 8)
    assert mosaic.array.shape == (3, 48, 48) and (win.col_off, win.row_off, win.width, win.height) == (8, 8, 32, 32)
    assert mosaic.transform == center.transform * Affine.translation(-8, -8)
    np.testing.assert_array_equal(mosaic.array[:, 8:40, 8:40], center.array)
    np.testing.assert_array_equal(mosaic.array[:, 8:40, 40:48], right.array[:, :, :8])
    np.testing.assert_array_equal(mosaic.array[:, 40:48, 8:40], below.array[:, :8, :])
    # left, top and the lower-right corner have no neighbour: zero and invalid
    assert not mosaic.valid[:, :8].any() and not mosaic.valid[:8].any() and not mosaic.valid[40:, 40:].any()
    assert (mosaic.array[:, :8] == 0).all()
    assert mosaic.valid[8:40, 8:48].all()


def test_zero_margin_is_the_center_alone_and_neighbour_nodata_stays_invalid():
    center, right = _raster(0, 0, seed=1), _raster(32, 0, seed=2)
    mosaic, win = context_mosaic(center, [right], 0)
    np.testing.assert_array_equal(mosaic.array, center.array)
    assert (win.col_off, win.width) == (0, 32)
    right.valid[:, :4] = False
    mosaic, _ = context_mosaic(center, [right], 8)
    assert not mosaic.valid[8:40, 40:44].any() and mosaic.valid[8:40, 44:48].all()


def test_neighbour_in_another_crs_is_reprojected():
    from rasterio.warp import transform_bounds

    center = _raster(0, 0, h=64, w=64, seed=1)
    right = _raster(64, 0, h=64, w=64, seed=2)
    right.array[:] = 200
    # the same neighbour stored in EPSG:4326
    w, s, e, n = transform_bounds(M3857, "EPSG:4326", 500064.0, 4000000.0 - 64, 500128.0, 4000000.0)
    geo = RasterData(right.array.copy(), Affine((e - w) / 64, 0, w, 0, -(n - s) / 64, n), CRS.from_epsg(4326))
    mosaic, _ = context_mosaic(center, [geo], 16)
    inner = mosaic.array[:, 18:78, 82:94]  # away from the reprojected chip's outer edge
    assert mosaic.valid[18:78, 82:94].all() and (inner == 200).all()


def test_bad_input_is_refused_with_what_to_fix():
    center = _raster(0, 0)
    with pytest.raises(CRSError, match="georeferenced"):
        context_mosaic(RasterData(center.array), [], 8)
    with pytest.raises(ValueError, match=">= 0"):
        context_mosaic(center, [], -1)
    two_bands = RasterData(center.array[:2], center.transform * Affine.translation(32, 0), M3857)
    with pytest.raises(ValueError, match="bands"):
        context_mosaic(center, [two_bands], 8)
    nocrs = RasterData(center.array, center.transform * Affine.translation(32, 0), None)
    with pytest.raises(CRSError, match="neighbour"):
        context_mosaic(center, [nocrs], 8)


@pytest.fixture(scope="module")
def pointwise(tmp_path_factory):
    toy_models.register(tmp_path_factory.mktemp("models"))
    return load_model("toy-pointwise", "cpu")


def test_prediction_is_cropped_back_to_the_center_grid(pointwise):
    center, right = _raster(0, 0, h=96, w=96, seed=1), _raster(96, 0, h=96, w=96, seed=2)
    p = predict_with_context(pointwise, center, [right], 32, precision="fp32")
    alone = predict_with_context(pointwise, center, [right], 0, precision="fp32")
    assert p.heads["probs"].shape == (1, 96, 96) and p.heads["recon"].shape == (3, 96, 96)
    assert p.transform == center.transform and p.valid.shape == (96, 96)
    assert p.options["context_px"] == 32 and alone.options["context_px"] == 0
    # a 1x1-conv model ignores its surroundings: context must not move a single output
    np.testing.assert_allclose(p.heads["probs"], alone.heads["probs"], atol=1e-5)
    np.testing.assert_allclose(p.heads["edge"], alone.heads["edge"], atol=1e-5)
    with pytest.raises(TypeError, match="window"):
        predict_with_context(pointwise, center, [right], 32, window=None)
