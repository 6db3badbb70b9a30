"""Tiles rendered by rsviz.tiles against rio-tiler's own pipeline and the source pixels."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject
from rio_tiler.io import Reader

from rsviz.geo import tile_bounds_3857
from rsviz.tiles import (
    FN_RGBA,
    FP_RGBA,
    TP_RGBA,
    Layer,
    LayerKind,
    TileRegistry,
    default_rgb_bands,
    imagery_rescale,
    layer_info,
    max_zoom_for_gsd,
    readers,
    render_tile,
)
from tests.tiles.rasters import (
    UTM,
    UTM_ORIGIN,
    decode,
    lonlat_to_tile_pixel,
    mercator_tile_transform,
    utm_pixel_lonlat,
    write_cog,
)

GRID = Affine(0.5, 0, UTM_ORIGIN[0], 0, -0.5, UTM_ORIGIN[1])
CENTRE = utm_pixel_lonlat(512, 512, GRID)
CLASS_COLOURS = ((0, (10, 20, 30, 255)), (1, (200, 0, 0, 255)), (2, (0, 0, 200, 255)))


@pytest.fixture(scope="module")
def rgb_utm(tmp_path_factory):
    """1024 x 1024 3-band uint8 noise, UTM 33N at 0.5 m, COG with averaged overviews."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (3, 1024, 1024), dtype=np.uint8)
    return write_cog(tmp_path_factory.mktemp("rgb") / "rgb.tif", arr)


@pytest.fixture(scope="module")
def classes_utm(tmp_path_factory):
    """Class ids: 0/2 checkerboard of 4 px blocks (no 1 anywhere), a 255 strip on the west; nearest overviews."""
    rows, cols = np.indices((1024, 1024))
    arr = np.where(((rows // 4) + (cols // 4)) % 2 == 0, 0, 2).astype(np.uint8)
    arr[:, :128] = 255
    return write_cog(tmp_path_factory.mktemp("cls") / "classes.tif", arr, overview_resampling="NEAREST")


def _tile_at(lon, lat, z):
    tx, ty, col, row = lonlat_to_tile_pixel(lon, lat, z)
    return (tx, ty), (row, col)


def test_imagery_tile_equals_rio_tiler_pipeline(rgb_utm):
    layer = Layer(LayerKind.IMAGERY, rgb_utm, bands=(1, 2, 3), rescale=((20.0, 220.0),))
    (tx, ty), _ = _tile_at(*CENTRE, 15)
    ours = decode(render_tile(layer, 15, tx, ty))
    with Reader(str(rgb_utm)) as src:
        img = src.tile(tx, ty, 15, indexes=(1, 2, 3), resampling_method="bilinear", reproject_method="bilinear")
        theirs = decode(img.rescale(in_range=((20.0, 220.0),) * 3).render(img_format="PNG"))
    assert ours.shape == (256, 256, 4)
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < (ours[..., 3] == 255).mean() < 1  # part of the tile is outside the raster: transparent


def test_native_zoom_tile_is_the_source_pixels(tmp_path):
    """A raster on the tile grid of z=16: the tile is exactly the source window, not an overview."""
    z, x0, y0 = 16, 34_000, 21_000
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (3, 512, 512), dtype=np.uint8)
    path = write_cog(tmp_path / "merc.tif", arr, crs="EPSG:3857", transform=mercator_tile_transform(x0, y0, z))
    layer = Layer(LayerKind.IMAGERY, path, bands=(1, 2, 3))
    assert layer_info(layer).native_zoom == z
    for dx, dy in ((0, 0), (1, 1)):
        tile = decode(render_tile(layer, z, x0 + dx, y0 + dy))
        src = arr[:, dy * 256 : (dy + 1) * 256, dx * 256 : (dx + 1) * 256]
        np.testing.assert_array_equal(np.moveaxis(tile[..., :3], -1, 0), src)
        assert (tile[..., 3] == 255).all()
    # one zoom out, the tile is decimated (bilinear / the overview): not the same pixels
    low = decode(render_tile(layer, z - 1, x0 // 2, y0 // 2))
    assert np.abs(low[:128, :128, :3].astype(int) - np.moveaxis(arr[:, :256:2, :256:2], 0, -1)).mean() > 20


def test_native_zoom_utm_tile_matches_full_resolution_warp(rgb_utm):
    """UTM source at native zoom: the tile is the full-resolution pixels warped (bilinear), not an overview."""
    layer = Layer(LayerKind.IMAGERY, rgb_utm, bands=(1, 2, 3))
    z = layer_info(layer).native_zoom
    (tx, ty), _ = _tile_at(*CENTRE, z)
    tile = decode(render_tile(layer, z, tx, ty))
    w, s, e, n = tile_bounds_3857(tx, ty, z)
    dst = np.zeros((3, 256, 256), np.uint8)
    with rasterio.open(rgb_utm) as ds:
        reproject(
            ds.read(),
            dst,
            src_transform=ds.transform,
            src_crs=ds.crs,
            dst_transform=Affine((e - w) / 256, 0, w, 0, -(n - s) / 256, n),
            dst_crs="EPSG:3857",
            resampling=Resampling.bilinear,
        )
        overview = ds.read(out_shape=(3, 512, 512), resampling=Resampling.average)
    diff = np.abs(np.moveaxis(tile[..., :3], -1, 0).astype(int) - dst.astype(int))
    assert diff.mean() < 2.0
    # an overview-based tile would be far off: its noise is averaged away
    assert overview.std() < 0.75 * dst.std()


def test_class_tiles_only_hold_colormap_colours_at_every_zoom(classes_utm):
    layer = Layer(LayerKind.CLASSES, classes_utm, colormap=CLASS_COLOURS)
    allowed = {c for _, c in CLASS_COLOURS} | {(0, 0, 0, 0)}
    for z in (13, 14, 15, 17, 18):
        (tx, ty), _ = _tile_at(*CENTRE, z)
        rgba = decode(render_tile(layer, z, tx, ty))
        colours = {tuple(int(v) for v in c) for c in np.unique(rgba.reshape(-1, 4), axis=0)}
        assert colours <= allowed, z
        # class 1 exists nowhere in the raster: an interpolated 0/2 edge would make it appear
        assert (200, 0, 0, 255) not in colours, z
        assert (10, 20, 30, 255) in colours and (0, 0, 200, 255) in colours, z
    # the 255 strip (not in the colormap) is transparent
    (tx, ty), (row, col) = _tile_at(*utm_pixel_lonlat(60, 512, GRID), 18)
    assert decode(render_tile(layer, 18, tx, ty))[row, col, 3] == 0


def test_error_tile_colours(tmp_path):
    pred = np.zeros((1024, 1024), np.uint8)
    pred[:512] = 1
    pred[896:] = 1  # positive where the ground truth has no data: not scored
    gt = np.zeros((768, 1024), np.uint8)  # covers only the top 768 rows of the prediction
    gt[:, :512] = 1
    gt[:64] = 255  # ignored
    pp = write_cog(tmp_path / "pred.tif", pred, overview_resampling="NEAREST")
    gp = write_cog(tmp_path / "gt.tif", gt, overview_resampling="NEAREST")
    layer = Layer(LayerKind.ERRORS, pp, reference=gp)
    expect = {
        (256, 256): TP_RGBA,
        (256, 768): FP_RGBA,
        (640, 256): FN_RGBA,
        (640, 768): (0, 0, 0, 0),  # TN
        (960, 256): (0, 0, 0, 0),  # outside the ground truth
        (32, 256): (0, 0, 0, 0),  # ignored id 255
    }
    z = 18
    for (r, c), colour in expect.items():
        (tx, ty), (row, col) = _tile_at(*utm_pixel_lonlat(c, r, GRID), z)
        assert tuple(decode(render_tile(layer, z, tx, ty))[row, col]) == colour, (r, c)

    multi = Layer(LayerKind.ERRORS, pp, reference=gp, binary=False)
    for (r, c), colour in {(256, 256): (0, 0, 0, 0), (256, 768): FP_RGBA, (640, 256): FP_RGBA}.items():
        (tx, ty), (row, col) = _tile_at(*utm_pixel_lonlat(c, r, GRID), z)
        assert tuple(decode(render_tile(multi, z, tx, ty))[row, col]) == colour, (r, c)


def test_tile_outside_the_raster_is_transparent(rgb_utm, classes_utm, tmp_path):
    for layer in (
        Layer(LayerKind.IMAGERY, rgb_utm, bands=(1, 2, 3)),
        Layer(LayerKind.CLASSES, classes_utm, colormap=CLASS_COLOURS),
        Layer(LayerKind.ERRORS, classes_utm, reference=classes_utm),
    ):
        for fmt in ("png", "jpg"):
            body = render_tile(layer, 12, 0, 0, fmt=fmt)
            assert body.startswith(b"\x89PNG")
            rgba = decode(body)
            assert rgba.shape == (256, 256, 4) and (rgba[..., 3] == 0).all()


def test_formats(rgb_utm):
    layer = Layer(LayerKind.IMAGERY, rgb_utm, bands=(1, 2, 3))
    (tx, ty), _ = _tile_at(*CENTRE, 17)
    assert render_tile(layer, 17, tx, ty, fmt="jpg").startswith(b"\xff\xd8")
    assert render_tile(layer, 17, tx, ty, fmt="webp")[8:12] == b"WEBP"
    with pytest.raises(ValueError, match="format"):
        render_tile(layer, 17, tx, ty, fmt="gif")
    with pytest.raises(ValueError):
        render_tile(layer, 3, 8, 0)


def test_continuous_and_difference_colours(tmp_path):
    a = np.full((256, 256), 10.0, np.float32)
    a[:, 128:] = 20.0
    b = np.full((256, 256), 15.0, np.float32)
    pa = write_cog(tmp_path / "a.tif", a, nodata=-9999.0)
    pb = write_cog(tmp_path / "b.tif", b, nodata=-9999.0)
    cont = Layer(LayerKind.CONTINUOUS, pa, rescale=((10.0, 20.0),), cmap="viridis")
    diff = Layer(LayerKind.DIFFERENCE, pa, reference=pb, rescale=((-5.0, 5.0),))
    assert diff.effective_cmap == "rdbu"
    z = 19
    from rio_tiler.colormap import cmap

    vir, rdbu = cmap.get("viridis"), cmap.get("rdbu")
    for c, lo_or_hi in ((40, 0), (216, 255)):
        (tx, ty), (row, col) = _tile_at(*utm_pixel_lonlat(c, 128, GRID), z)
        assert tuple(decode(render_tile(cont, z, tx, ty))[row, col]) == tuple(vir[lo_or_hi])
        assert tuple(decode(render_tile(diff, z, tx, ty))[row, col]) == tuple(rdbu[lo_or_hi])
    # without a rescale, the difference stretch is symmetric around zero
    auto = Layer(LayerKind.DIFFERENCE, pa, reference=pb)
    (tx, ty), (row, col) = _tile_at(*utm_pixel_lonlat(40, 128, GRID), z)
    assert tuple(decode(render_tile(auto, z, tx, ty))[row, col]) == tuple(rdbu[0])


def test_id_changes_when_the_file_is_rewritten(classes_utm, tmp_path):
    path = tmp_path / "c.tif"
    path.write_bytes(classes_utm.read_bytes())
    layer = Layer(LayerKind.CLASSES, path, colormap=CLASS_COLOURS)
    first = layer.id()
    assert len(first) == 16 and all(ch in "0123456789abcdef" for ch in first)
    assert first == Layer(LayerKind.CLASSES, path, colormap=CLASS_COLOURS).id()
    assert first != Layer(LayerKind.CLASSES, path, colormap=CLASS_COLOURS[:2]).id()
    path.write_bytes(classes_utm.read_bytes())  # same bytes, new mtime
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert layer.id() != first


def test_registry(classes_utm):
    reg = TileRegistry()
    layer = Layer(LayerKind.CLASSES, classes_utm, colormap=CLASS_COLOURS)
    lid = reg.register(layer)
    assert reg.register(layer) == lid == layer.id() and len(reg) == 1
    assert lid in reg and reg.get(lid) is layer
    with pytest.raises(KeyError):
        reg.get("0" * 16)
    assert "0" * 16 not in reg


def test_sentinel2_bands_and_stretch(tmp_path):
    rng = np.random.default_rng(2)
    arr = np.stack([rng.normal(500 + 300 * b, 50, (512, 512)) for b in range(12)]).clip(0, 10000).astype(np.uint16)
    plain = write_cog(tmp_path / "s2.tif", arr)
    assert default_rgb_bands(plain) == (4, 3, 2)
    names = ("B02", "B03", "B04", "B08", "B01", "B05", "B06", "B07", "B8A", "B09", "B11", "B12")
    named = write_cog(tmp_path / "s2n.tif", arr, descriptions=names)
    assert default_rgb_bands(named) == (3, 2, 1)
    stretch = imagery_rescale(plain, (4, 3, 2))
    assert len(stretch) == 3
    for (lo, hi), b in zip(stretch, (4, 3, 2)):
        band = arr[b - 1]
        assert band.min() <= lo < hi <= band.max()
        assert abs(lo - np.percentile(band, 2)) < 25 and abs(hi - np.percentile(band, 98)) < 25
    rgb = write_cog(tmp_path / "rgb.tif", arr[:3].astype(np.uint8))
    assert default_rgb_bands(rgb) == (1, 2, 3)
    assert imagery_rescale(rgb, (1, 2, 3)) == ((0.0, 255.0),) * 3
    one = write_cog(tmp_path / "one.tif", arr[:1])
    assert default_rgb_bands(one) == (1,)


def test_imagery_rescale_reads_the_overview_not_full_resolution(tmp_path):
    """Full resolution holds 1000 everywhere, the (external) overview 5000: the stretch sees 5000."""
    full = np.full((1, 2048, 2048), 1000, np.uint16)
    path = tmp_path / "big.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=2048, height=2048, count=1, dtype="uint16", crs=UTM, transform=GRID, tiled=True
    ) as ds:
        ds.write(full)
    with rasterio.open(
        str(path) + ".ovr", "w", driver="GTiff", width=256, height=256, count=1, dtype="uint16", tiled=True
    ) as ov:
        ov.write(np.full((1, 256, 256), 5000, np.uint16))
    with rasterio.open(path) as ds:
        assert ds.overviews(1) == [8]
    assert imagery_rescale(path, (1,), max_size=128) == ((5000.0, 5001.0),)


def test_max_zoom_for_gsd():
    assert max_zoom_for_gsd(0.3, 0.0, beyond=0) == 19  # 156543 / 2**19 = 0.299 m
    assert max_zoom_for_gsd(0.3, 0.0) == 21
    assert max_zoom_for_gsd(10.0, 0.0, beyond=0) == 14  # Sentinel-2
    assert max_zoom_for_gsd(0.3, 60.0, beyond=0) == 18  # pixels shrink with cos(lat)
    assert max_zoom_for_gsd(1e-6, 0.0) == 30
    with pytest.raises(ValueError):
        max_zoom_for_gsd(0.0, 0.0)


def test_layer_info(rgb_utm):
    info = layer_info(Layer(LayerKind.IMAGERY, rgb_utm, bands=(1, 2, 3)))
    w, s, e, n = info.bounds
    assert w < CENTRE[0] < e and s < CENTRE[1] < n and 14.9 < w < 15.1 and 51.9 < s < 52.1
    assert info.native_zoom == 18 and info.maxzoom == 20 and info.minzoom < info.native_zoom


def test_readers_are_per_thread_and_reused(rgb_utm):
    mine = readers.reader_for(rgb_utm)
    assert readers.reader_for(rgb_utm) is mine
    other: list = []
    t = threading.Thread(target=lambda: other.append(readers.reader_for(rgb_utm)))
    t.start()
    t.join()
    assert other[0] is not mine


def test_concurrent_tiles_equal_sequential(rgb_utm, classes_utm):
    layers = [
        Layer(LayerKind.IMAGERY, rgb_utm, bands=(1, 2, 3)),
        Layer(LayerKind.CLASSES, classes_utm, colormap=CLASS_COLOURS),
    ]
    jobs = []
    for z in (16, 17):
        (tx, ty), _ = _tile_at(*CENTRE, z)
        jobs += [(layer, z, tx + dx, ty + dy) for layer in layers for dx in (-1, 0) for dy in (-1, 0)]
    sequential = [render_tile(*j) for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda j: render_tile(*j), jobs * 3))
    assert parallel == sequential * 3


def test_layer_validation(rgb_utm):
    with pytest.raises(ValueError):
        Layer(LayerKind.IMAGERY, rgb_utm, bands=(1, 2))
    with pytest.raises(ValueError):
        Layer(LayerKind.ERRORS, rgb_utm)
    assert Layer("classes", str(rgb_utm)).kind is LayerKind.CLASSES
