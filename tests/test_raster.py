import numpy as np
import pytest

from rsviz.errors import CRSError, ExtentError, GridMismatchError, RasterReadError
from rsviz.geo import reproject_bounds
from rsviz.raster import check_same_grid, read_raster


def test_read_full_raster_with_nodata_mask(scene_dir):
    r = read_raster(scene_dir / "image.tif")
    assert r.array.shape == (3, 96, 160) and r.array.dtype == np.uint8
    assert r.band_names == ("band1", "band2", "band3") or len(r.band_names) == 3
    assert not r.valid[:8, :8].any() and r.valid[8:, 8:].all()
    assert r.crs.to_epsg() == 32633
    assert r.bounds == pytest.approx((500000.0, 5000000.0 - 48.0, 500080.0, 5000000.0))


def test_read_by_lonlat_bounds_returns_that_window(scene_dir):
    full = read_raster(scene_dir / "image.tif")
    # a 10 m x 5 m box inside the raster, expressed in EPSG:4326
    box = (500020.0, 4999980.0, 500030.0, 4999985.0)
    ll = reproject_bounds(box, "EPSG:32633", "EPSG:4326")
    r = read_raster(scene_dir / "image.tif", bounds=ll)
    assert 10 <= r.shape[0] <= 42 and 20 <= r.shape[1] <= 24  # lon/lat box encloses the UTM box
    col, row = ~full.transform * (r.transform.c, r.transform.f)
    np.testing.assert_array_equal(
        r.array, full.array[:, int(row) : int(row) + r.shape[0], int(col) : int(col) + r.shape[1]]
    )


def test_extent_outside_raster_is_a_clear_error(scene_dir):
    with pytest.raises(ExtentError, match="does not overlap"):
        read_raster(scene_dir / "image.tif", bounds=(0.0, 0.0, 0.001, 0.001))


def test_unreadable_and_missing_files(scene_dir):
    with pytest.raises(RasterReadError, match="not a raster"):
        read_raster(scene_dir / "not_a_raster.tif")
    with pytest.raises(RasterReadError, match="not found"):
        read_raster(scene_dir / "missing.tif")


def test_bounds_on_raster_without_crs(scene_dir):
    with pytest.raises(CRSError):
        read_raster(scene_dir / "no_crs.tif", bounds=(0, 0, 1, 1))


def test_grid_mismatch(scene_dir):
    a = read_raster(scene_dir / "image.tif")
    check_same_grid(a, read_raster(scene_dir / "gt.tif"))
    with pytest.raises(GridMismatchError, match="transform"):
        check_same_grid(a, read_raster(scene_dir / "gt_shifted.tif"))
    with pytest.raises(GridMismatchError, match="px"):
        check_same_grid(a, read_raster(scene_dir / "no_crs.tif"))
