"""Render XYZ web-map tiles of a :class:`~rsviz.tiles.layers.Layer` with rio-tiler.

Tiles follow the XYZ ("slippy map") scheme of the OGC ``WebMercatorQuad`` tile matrix set:
EPSG:3857, 256 x 256 px, ``x`` from the west and ``y`` from the north, ``0 <= x, y < 2**z``. Each tile
is read by :meth:`rio_tiler.io.Reader.tile`, which warps the source (any CRS) onto the tile through
a GDAL ``WarpedVRT`` and picks the overview level that matches the zoom. Class ids (``CLASSES``,
``ERRORS``) are read with nearest-neighbour resampling, both when decimating (overviews, rasterio
``resampling_method``) and when warping (``reproject_method``), so ids are never interpolated;
imagery and continuous values use bilinear. Transparency comes from the raster's nodata, mask or
alpha band (rio-tiler's ``ImageData.mask``).
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rio_tiler.colormap import cmap as rio_cmaps
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.utils import render as encode

from rsviz.geo import WGS84, gsd_metres, reproject_bounds
from rsviz.tiles.layers import Layer, LayerInfo, LayerKind
from rsviz.tiles.readers import dataset_for, reader_for

#: Web-mercator ground resolution at zoom 0 on the equator, metres per pixel of a 256 px tile
#: (2 * pi * 6378137 / 256).
EQUATOR_RES_Z0 = 2 * math.pi * 6378137.0 / 256
#: Highest zoom :func:`max_zoom_for_gsd` returns (the XYZ routes accept 0..30).
MAX_ZOOM = 30
#: RGBA of the ``ERRORS`` outcomes (binary: TP, FP, FN; multiclass: disagreement = FP colour).
TP_RGBA = (26, 152, 80, 255)
FP_RGBA = (215, 48, 39, 255)
FN_RGBA = (49, 104, 204, 255)
#: Formats :func:`render_tile` writes: URL suffix -> GDAL driver.
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
#: GDAL creation options per driver: zlib level 1 encodes a 256 px RGBA tile of aerial imagery ~3x
#: faster than GDAL's default 6, for ~5 % more bytes (tiles are cached as immutable anyway).
CREATION_OPTIONS: dict[str, dict[str, Any]] = {
    "PNG": {"ZLEVEL": "1"},
    "JPEG": {"QUALITY": "85"},
    "WEBP": {"QUALITY": "85"},
}

_NEAREST: dict[str, Any] = {"resampling_method": "nearest", "reproject_method": "nearest"}
_BILINEAR: dict[str, Any] = {"resampling_method": "bilinear", "reproject_method": "bilinear"}


def max_zoom_for_gsd(gsd_m: float, lat: float, *, beyond: int = 2) -> int:
    """The XYZ zoom whose web-mercator pixel best matches a ground sampling distance, plus ``beyond``.

    A 256 px tile's pixel is ``156543.03 * cos(lat) / 2**z`` metres on the ground (the XYZ /
    ``WebMercatorQuad`` scale); the native zoom is that ``z`` rounded to the nearest integer on a
    log2 scale, so a tile pixel is within a factor sqrt(2) of a source pixel.

    Args:
        gsd_m: Ground sampling distance, metres per pixel (> 0).
        lat: Latitude of the raster centre, degrees (|lat| < 90).
        beyond: Zoom levels past native resolution to allow (pixels enlarged); 0 gives the native zoom.

    Returns:
        The zoom, clipped to ``0..MAX_ZOOM``.

    Raises:
        ValueError: ``gsd_m`` is not positive and finite.
    """
    if not (gsd_m > 0 and math.isfinite(gsd_m)):
        raise ValueError(f"GSD must be a positive number of metres; got {gsd_m}")
    ground_z0 = EQUATOR_RES_Z0 * max(math.cos(math.radians(lat)), 1e-6)
    native = round(math.log2(ground_z0 / gsd_m))
    return int(min(max(native + beyond, 0), MAX_ZOOM))


def layer_info(layer: Layer) -> LayerInfo:
    """Geographic bounds and zoom range of ``layer``'s raster (``path``).

    Returns:
        A :class:`LayerInfo`: bounds in EPSG:4326, native zoom from the GSD at the centre
        (:func:`max_zoom_for_gsd`), ``maxzoom = native + 2``, and ``minzoom`` where the raster's
        longest side spans about a quarter of a tile.

    Raises:
        RasterReadError: The file is missing or unreadable.
        CRSError: The raster has no CRS.
    """
    ds = dataset_for(layer.path)
    bounds = reproject_bounds(tuple(ds.bounds), ds.crs, WGS84)
    gsd = gsd_metres(ds.transform, ds.crs, ds.height, ds.width)
    lat = (bounds[1] + bounds[3]) / 2
    native = max_zoom_for_gsd(gsd, lat, beyond=0)
    whole = native - math.ceil(math.log2(max(ds.width, ds.height, 256) / 256))
    return LayerInfo(
        bounds=tuple(float(v) for v in bounds),  # type: ignore[arg-type]
        minzoom=max(whole - 2, 0),
        maxzoom=max_zoom_for_gsd(gsd, lat, beyond=2),
        native_zoom=native,
    )


@lru_cache(maxsize=8)
def transparent_png(tilesize: int = 256) -> bytes:
    """A fully transparent ``tilesize`` x ``tilesize`` RGBA PNG (tiles outside the raster)."""
    blank = np.zeros((3, tilesize, tilesize), np.uint8)
    return encode(blank, mask=np.zeros((tilesize, tilesize), np.uint8), img_format="PNG", ZLEVEL="9")


# --- band choice and stretch ------------------------------------------------------------------

#: Sentinel-2 L2A band order of BigEarthNet's 12 bands (B10 is absent from L2A).
S2_BANDS_12 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
#: Sentinel-2 L1C order of all 13 bands.
S2_BANDS_13 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
_S2_NAME = re.compile(r"\bB0?(\d{1,2}A?)\b", re.IGNORECASE)


def _s2_name(description: str | None) -> str | None:
    m = _S2_NAME.search(description or "")
    if m is None:
        return None
    v = m.group(1).upper()
    return "B" + (v.zfill(3) if v.endswith("A") else v.zfill(2))


def default_rgb_bands(path: Path | str) -> tuple[int, ...]:
    """Which bands of an image to show as RGB.

    Sentinel-2 stacks (12 or 13 bands in B01..B12 order, or band descriptions naming B02/B03/B04)
    give the true-colour bands ``(B04, B03, B02)``; a 1- or 2-band raster ``(1,)``; otherwise the
    bands whose colour interpretation is red, green, blue, else ``(1, 2, 3)``.

    Args:
        path: A raster file.

    Returns:
        1-based band indexes, 1 or 3 of them.

    Raises:
        RasterReadError: The file is missing or unreadable.
    """
    ds = dataset_for(path)
    if ds.count < 3:
        return (1,)
    names = [_s2_name(d) for d in ds.descriptions]
    if all(n in names for n in ("B02", "B03", "B04")):
        return tuple(names.index(n) + 1 for n in ("B04", "B03", "B02"))
    if ds.count in (12, 13) and not any(names):
        order = S2_BANDS_12 if ds.count == 12 else S2_BANDS_13
        return tuple(order.index(n) + 1 for n in ("B04", "B03", "B02"))
    interp = [c.name for c in ds.colorinterp]
    if all(c in interp for c in ("red", "green", "blue")):
        return tuple(interp.index(c) + 1 for c in ("red", "green", "blue"))
    return (1, 2, 3)


def imagery_rescale(
    path: Path | str,
    bands: Sequence[int],
    percentiles: tuple[float, float] = (2.0, 98.0),
    max_size: int = 1024,
) -> tuple[tuple[float, float], ...]:
    """Per-band display stretch of an image from a decimated read.

    The raster is read with :meth:`rio_tiler.io.Reader.preview` at most ``max_size`` px on its longest
    side, so GDAL serves it from the overviews where the file has them; a whole raster is never read
    at full resolution (unless it is itself at most ``max_size`` px). Nodata / masked pixels are
    left out.

    Args:
        path: A raster file.
        bands: 1-based band indexes.
        percentiles: Low and high percentiles, 0..100.
        max_size: Longest side of the decimated read, px.

    Returns:
        One ``(low, high)`` pair per band, ``low < high``, in the band's units. uint8 bands give
        ``(0.0, 255.0)`` (shown as is) without reading any pixels.

    Raises:
        RasterReadError: The file is missing or unreadable.
    """
    reader = reader_for(path)
    if all(dataset_for(path).dtypes[b - 1] == "uint8" for b in bands):
        return tuple((0.0, 255.0) for _ in bands)
    img = reader.preview(indexes=tuple(bands), max_size=max_size, **_NEAREST)
    out = []
    for band in img.array:
        vals = band.compressed()
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = (float(v) for v in np.percentile(vals, percentiles))
        out.append((lo, hi if hi > lo else lo + 1.0))
    return tuple(out)


_stretch_cache: dict[str, tuple[tuple[float, float], ...]] = {}
_stretch_lock = threading.Lock()


def _cached_stretch(layer: Layer, compute: Any) -> tuple[tuple[float, float], ...]:
    key = layer.id()
    with _stretch_lock:
        hit = _stretch_cache.get(key)
    if hit is None:
        hit = compute()
        with _stretch_lock:
            if len(_stretch_cache) > 256:
                _stretch_cache.clear()
            _stretch_cache[key] = hit
    return hit


def _rescale_for(layer: Layer) -> tuple[tuple[float, float], ...]:
    if layer.rescale:
        pairs = layer.rescale
    elif layer.kind is LayerKind.DIFFERENCE:
        pairs = _cached_stretch(layer, lambda: _difference_stretch(layer))
    else:
        pairs = _cached_stretch(layer, lambda: imagery_rescale(layer.path, layer.bands))
    return pairs * len(layer.bands) if len(pairs) == 1 else pairs


def _difference_stretch(layer: Layer) -> tuple[tuple[float, float], ...]:
    """Symmetric ``(-m, m)``, ``m`` the 98th percentile of ``|path - reference|`` (decimated reads)."""
    assert layer.reference is not None
    pred = reader_for(layer.path).preview(indexes=layer.bands[0], max_size=512, **_NEAREST, **_nodata(layer))
    try:
        ref = reader_for(layer.reference).part(
            tuple(pred.bounds),  # type: ignore[arg-type]
            dst_crs=pred.crs,
            bounds_crs=pred.crs,
            height=pred.height,
            width=pred.width,
            indexes=layer.reference_band,
            max_size=None,
            **_NEAREST,
        )
    except TileOutsideBounds:
        return ((-1.0, 1.0),)
    diff = np.ma.asarray(pred.array.astype(np.float32) - ref.array.astype(np.float32))
    vals = np.abs(diff.compressed())
    vals = vals[np.isfinite(vals)]
    m = float(np.percentile(vals, 98)) if vals.size else 1.0
    return ((-m, m),) if m > 0 else ((-1.0, 1.0),)


# --- tiles ------------------------------------------------------------------------------------


def _nodata(layer: Layer) -> dict[str, Any]:
    return {} if layer.nodata is None else {"nodata": layer.nodata}


def _tile(reader: Reader, x: int, y: int, z: int, tilesize: int, indexes: Sequence[int], **kw: Any) -> ImageData:
    return reader.tile(x, y, z, tilesize=tilesize, indexes=tuple(indexes), **kw)


def _encode_rgba(rgba: np.ndarray, driver: str) -> bytes:
    """``(h, w, 4)`` uint8 -> image bytes (alpha dropped for JPEG)."""
    rgb = np.ascontiguousarray(np.moveaxis(rgba[..., :3], -1, 0))
    return encode(rgb, mask=rgba[..., 3], img_format=driver, **CREATION_OPTIONS[driver])


def _class_rgba(ids: np.ma.MaskedArray, colormap: Sequence[tuple[int, tuple[int, int, int, int]]]) -> np.ndarray:
    """Class ids ``(h, w)`` -> ``(h, w, 4)`` uint8 RGBA; unlisted ids and masked pixels transparent."""
    data = np.asarray(ids.data)
    valid = ~np.ma.getmaskarray(ids)
    out = np.zeros(data.shape + (4,), np.uint8)
    if not colormap:
        return out
    keys = np.array([k for k, _ in colormap], dtype=np.float64)
    colours = np.array([c for _, c in colormap], dtype=np.uint8)
    order = np.argsort(keys)
    keys, colours = keys[order], colours[order]
    if data.dtype == np.uint8 and keys.min() >= 0 and keys.max() <= 255:
        lut = np.zeros((256, 4), np.uint8)
        lut[keys.astype(np.intp)] = colours
        out = lut[data]
    else:
        pos = np.clip(np.searchsorted(keys, data), 0, keys.size - 1)
        hit = keys[pos] == data
        out[hit] = colours[pos[hit]]
    out[~valid] = 0
    return out


def _render_imagery(layer: Layer, x: int, y: int, z: int, tilesize: int, driver: str) -> bytes:
    img = _tile(reader_for(layer.path), x, y, z, tilesize, layer.bands, **_BILINEAR, **_nodata(layer))
    if not (img.array.dtype == np.uint8 and not layer.rescale):
        img = img.rescale(in_range=_rescale_for(layer))
    return img.render(img_format=driver, add_mask=driver != "JPEG", **CREATION_OPTIONS[driver])


def _render_classes(layer: Layer, x: int, y: int, z: int, tilesize: int, driver: str) -> bytes:
    img = _tile(reader_for(layer.path), x, y, z, tilesize, layer.bands[:1], **_NEAREST, **_nodata(layer))
    return _encode_rgba(_class_rgba(img.array[0], layer.colormap), driver)


def _render_continuous(layer: Layer, x: int, y: int, z: int, tilesize: int, driver: str) -> bytes:
    img = _tile(reader_for(layer.path), x, y, z, tilesize, layer.bands[:1], **_BILINEAR, **_nodata(layer))
    img = img.rescale(in_range=_rescale_for(layer)[:1])
    cm = rio_cmaps.get(layer.effective_cmap)
    return img.render(img_format=driver, colormap=cm, add_mask=driver != "JPEG", **CREATION_OPTIONS[driver])


def _pair(
    layer: Layer, x: int, y: int, z: int, tilesize: int, resampling: dict[str, Any]
) -> tuple[ImageData, ImageData]:
    assert layer.reference is not None
    pred = _tile(reader_for(layer.path), x, y, z, tilesize, layer.bands[:1], **resampling, **_nodata(layer))
    ref = _tile(reader_for(layer.reference), x, y, z, tilesize, (layer.reference_band,), **resampling)
    return pred, ref


def _render_errors(layer: Layer, x: int, y: int, z: int, tilesize: int, driver: str) -> bytes:
    pred_img, ref_img = _pair(layer, x, y, z, tilesize, _NEAREST)
    pred, ref = pred_img.array[0], ref_img.array[0]
    scored = ~np.ma.getmaskarray(pred) & ~np.ma.getmaskarray(ref)
    p, g = np.asarray(pred.data), np.asarray(ref.data)
    if layer.ignore:
        scored &= ~np.isin(p, layer.ignore) & ~np.isin(g, layer.ignore)
    out = np.zeros(p.shape + (4,), np.uint8)
    if layer.binary:
        pp, gp = np.isin(p, layer.positive), np.isin(g, layer.positive)
        out[scored & pp & gp] = TP_RGBA
        out[scored & pp & ~gp] = FP_RGBA
        out[scored & ~pp & gp] = FN_RGBA
    else:
        out[scored & (p != g)] = FP_RGBA
    return _encode_rgba(out, driver)


def _render_difference(layer: Layer, x: int, y: int, z: int, tilesize: int, driver: str) -> bytes:
    pred_img, ref_img = _pair(layer, x, y, z, tilesize, _BILINEAR)
    diff = pred_img.array.astype(np.float32) - ref_img.array.astype(np.float32)
    img = ImageData(diff, bounds=pred_img.bounds, crs=pred_img.crs).rescale(in_range=_rescale_for(layer)[:1])
    cm = rio_cmaps.get(layer.effective_cmap)
    return img.render(img_format=driver, colormap=cm, add_mask=driver != "JPEG", **CREATION_OPTIONS[driver])


_RENDERERS = {
    LayerKind.IMAGERY: _render_imagery,
    LayerKind.CLASSES: _render_classes,
    LayerKind.CONTINUOUS: _render_continuous,
    LayerKind.ERRORS: _render_errors,
    LayerKind.DIFFERENCE: _render_difference,
}


def render_tile(layer: Layer, z: int, x: int, y: int, *, tilesize: int = 256, fmt: str = "png") -> bytes:
    """Render one XYZ web-map tile of ``layer``.

    Args:
        layer: What to draw.
        z: Zoom, ``0 <= z <= 30``.
        x: Column from the west, ``0 <= x < 2**z``.
        y: Row from the north, ``0 <= y < 2**z``.
        tilesize: Output width and height, px.
        fmt: ``"png"``, ``"jpg"`` / ``"jpeg"`` (no transparency) or ``"webp"``.

    Returns:
        Encoded image bytes, ``tilesize`` x ``tilesize``: RGB(A) for imagery (grey for one band), RGBA
        colours for the other kinds. A tile that does not overlap the raster (both rasters for
        ``ERRORS`` / ``DIFFERENCE``) is a fully transparent PNG, whatever ``fmt``.

    Raises:
        ValueError: Unknown ``fmt``, or ``z/x/y`` outside the tile matrix.
        RasterReadError: A file of the layer is missing or unreadable.
    """
    driver = FORMATS.get(fmt.lower())
    if driver is None:
        raise ValueError(f"unknown tile format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
        raise ValueError(f"tile z={z} x={x} y={y} does not exist; need 0 <= z <= {MAX_ZOOM}, 0 <= x, y < 2**z")
    try:
        return _RENDERERS[layer.kind](layer, x, y, z, tilesize, driver)
    except TileOutsideBounds:
        return transparent_png(tilesize)
