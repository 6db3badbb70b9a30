"""Small georeferenced COG fixtures for the tile tests, and tile maths to check pixels with."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from rasterio.shutil import copy as rio_copy
from rasterio.warp import transform as warp_transform

#: UTM 33N, a projected CRS in metres (the tiles are warped to EPSG:3857).
UTM = "EPSG:32633"
#: Upper-left corner of the UTM fixtures (near 52 N, 15 E).
UTM_ORIGIN = (500_000.0, 5_760_000.0)
HALF = math.pi * 6378137.0


def write_cog(
    path: Path,
    array: np.ndarray,
    *,
    crs: str = UTM,
    transform: Affine | None = None,
    nodata: float | None = None,
    overview_resampling: str = "AVERAGE",
    descriptions: tuple[str, ...] = (),
) -> Path:
    """Write ``(bands, h, w)`` as a COG (GDAL COG driver, internal overviews) and return its path."""
    if array.ndim == 2:
        array = array[None]
    transform = transform or Affine(0.5, 0, UTM_ORIGIN[0], 0, -0.5, UTM_ORIGIN[1])
    tmp = path.with_suffix(".tmp.tif")
    profile = {
        "driver": "GTiff",
        "width": array.shape[2],
        "height": array.shape[1],
        "count": array.shape[0],
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    with rasterio.open(tmp, "w", **profile) as ds:
        ds.write(array)
        for i, d in enumerate(descriptions, start=1):
            ds.set_band_description(i, d)
    rio_copy(tmp, path, driver="COG", BLOCKSIZE=256, OVERVIEW_RESAMPLING=overview_resampling, COMPRESS="DEFLATE")
    tmp.unlink()
    return path


def decode(png: bytes) -> np.ndarray:
    """Image bytes -> ``(h, w, bands)`` uint8 (RGBA stays RGBA)."""
    return np.asarray(Image.open(io.BytesIO(png)))


def lonlat_to_tile_pixel(lon: float, lat: float, z: int) -> tuple[int, int, int, int]:
    """``(tile_x, tile_y, col, row)`` of a lon/lat in the XYZ scheme at zoom ``z`` (256 px tiles)."""
    n = 2**z * 256
    px = (lon + 180.0) / 360.0 * n
    py = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n
    return int(px // 256), int(py // 256), int(px % 256), int(py % 256)


def utm_pixel_lonlat(col: float, row: float, transform: Affine, crs: str = UTM) -> tuple[float, float]:
    """lon/lat of a pixel centre (``col``, ``row`` 0-based) of a grid."""
    x, y = transform * (col + 0.5, row + 0.5)
    lons, lats = warp_transform(crs, "EPSG:4326", [x], [y])
    return lons[0], lats[0]


def mercator_tile_transform(x: int, y: int, z: int, tilesize: int = 256) -> Affine:
    """EPSG:3857 transform whose pixel (0, 0) is the top-left pixel of XYZ tile ``(x, y, z)``."""
    size = 2 * HALF / 2**z
    return Affine(size / tilesize, 0, -HALF + x * size, 0, -size / tilesize, HALF - y * size)
