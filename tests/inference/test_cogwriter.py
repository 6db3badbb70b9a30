"""Streamed COG output: overview levels decimated while writing, assembled by GDAL's COG driver."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from rsviz.errors import ModelInputError
from rsviz.inference.cogwriter import StreamedCOG, overview_levels, to_cog


def test_overview_levels_halve_until_one_block():
    assert overview_levels(512, 512) == []
    assert overview_levels(2048, 2048) == [(2, 1024, 1024), (4, 512, 512)]
    assert overview_levels(3000, 700) == [(2, 1500, 350), (4, 750, 175), (8, 375, 88)]
    assert overview_levels(513, 10) == [(2, 257, 5)]


def _write_in_blocks(cog: StreamedCOG, arr: np.ndarray, rows, cols) -> None:
    """Write ``arr`` in uneven blocks, right to left and bottom to top (any order must work)."""
    for r0, r1 in reversed(list(zip(rows, rows[1:]))):
        for c0, c1 in reversed(list(zip(cols, cols[1:]))):
            cog.write(arr[:, r0:r1, c0:c1], r0, c0)


def test_streamed_cog_holds_every_pixel_and_nearest_overviews(tmp_path):
    from rio_cogeo.cogeo import cog_validate

    H, W = 1300, 1100
    arr = np.random.default_rng(0).integers(0, 256, (2, H, W), dtype=np.uint8)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    t = from_origin(500000, 5000000, 0.25, 0.25)
    cog = StreamedCOG(
        scratch,
        H,
        W,
        2,
        "uint8",
        t,
        rasterio.crs.CRS.from_epsg(32633),
        descriptions=["class id", "probability x 255"],
        tags={"rsviz_model": "m"},
    )
    _write_in_blocks(cog, arr, [0, 97, 700, 701, H], [0, 333, 1024, W])
    out = cog.finish(tmp_path / "out.tif", "deflate")
    valid, errors, _ = cog_validate(str(out), quiet=True)
    assert valid, errors
    with rasterio.open(out) as ds:
        assert ds.compression.name.lower() == "deflate"
        assert ds.crs.to_epsg() == 32633 and ds.transform == t
        assert ds.descriptions == ("class id", "probability x 255") and ds.tags()["rsviz_model"] == "m"
        np.testing.assert_array_equal(ds.read(), arr)
        assert ds.overviews(1) == [f for f, _, _ in overview_levels(H, W)] == [2, 4]
    for k, (f, h, w) in enumerate(overview_levels(H, W)):
        with rasterio.open(out, OVERVIEW_LEVEL=k) as ov:
            assert (ov.height, ov.width) == (h, w)
            np.testing.assert_array_equal(ov.read(), arr[:, ::f, ::f])  # nearest: top-left of each footprint


def test_overviews_equal_gdal_nearest_on_power_of_two_sizes(tmp_path):
    H = W = 1024
    arr = np.random.default_rng(1).integers(0, 256, (1, H, W), dtype=np.uint8)
    (tmp_path / "s").mkdir()
    cog = StreamedCOG(tmp_path / "s", H, W, 1, "uint8", from_origin(0, 10, 1, 1), rasterio.crs.CRS.from_epsg(32633))
    _write_in_blocks(cog, arr, [0, 300, H], [0, 512, W])
    ours = cog.finish(tmp_path / "ours.tif", "zstd")
    plain = tmp_path / "plain.tif"
    with rasterio.open(
        plain,
        "w",
        driver="GTiff",
        height=H,
        width=W,
        count=1,
        dtype="uint8",
        tiled=True,
        blockxsize=512,
        blockysize=512,
        crs="EPSG:32633",
        transform=from_origin(0, 10, 1, 1),
    ) as ds:
        ds.write(arr)
    to_cog(plain, tmp_path / "gdal.tif", "zstd")
    with rasterio.open(ours, OVERVIEW_LEVEL=0) as a, rasterio.open(tmp_path / "gdal.tif", OVERVIEW_LEVEL=0) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_float_band_with_nan_nodata_and_plain_geotiff(tmp_path):
    H, W = 600, 520
    arr = np.random.default_rng(2).normal(size=(1, H, W)).astype(np.float32)
    arr[0, :10, :10] = np.nan
    for cog_out in (True, False):
        d = tmp_path / f"s{cog_out}"
        d.mkdir()
        cog = StreamedCOG(
            d,
            H,
            W,
            1,
            "float32",
            from_origin(0, 10, 1, 1),
            None,
            nodata=float("nan"),
            overviews=cog_out,
            compress="none" if cog_out else "lzw",
        )
        _write_in_blocks(cog, arr, [0, 256, H], [0, W])
        out = cog.finish(tmp_path / f"h{cog_out}.tif", "zstd", cog=cog_out)
        with rasterio.open(out) as ds:
            assert np.isnan(ds.nodata) and ds.dtypes[0] == "float32"
            assert ds.compression.name.lower() == ("zstd" if cog_out else "lzw")
            assert (ds.overviews(1) == [2]) is cog_out
            np.testing.assert_array_equal(ds.read(), arr)


def test_unknown_codec_names_the_valid_ones(tmp_path):
    with pytest.raises(ModelInputError, match="deflate, zstd"):
        StreamedCOG(tmp_path, 10, 10, 1, "uint8", from_origin(0, 10, 1, 1), None, compress="jpeg2000")
    with pytest.raises(ModelInputError, match="valid"):
        to_cog(tmp_path / "a.tif", tmp_path / "b.tif", "webp")
