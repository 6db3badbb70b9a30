"""Geodesy helpers: web-map tile maths, GSD and bounds reprojection.

Web-map tiles follow the XYZ / "slippy map" scheme on EPSG:3857 (spherical web
mercator, OGC Two Dimensional Tile Matrix Set ``WebMercatorQuad``).
"""

from __future__ import annotations

import math
import re

from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from rsviz.errors import CRSError
from rsviz.types import BBox

#: Half the side of the EPSG:3857 square, in metres (pi * 6378137).
WEB_MERCATOR_HALF = math.pi * 6378137.0
WEB_MERCATOR = CRS.from_epsg(3857)
WGS84 = CRS.from_epsg(4326)

_OAM_RE = re.compile(r"OAM-(?P<x>\d+)-(?P<y>\d+)-(?P<z>\d+)")


def parse_oam_tile_name(name: str) -> tuple[int, int, int]:
    """Parse an OpenAerialMap tile name ``OAM-x-y-z`` (as used by fAIr / ramp).

    Args:
        name: File name or stem containing ``OAM-<x>-<y>-<z>``.

    Returns:
        ``(x, y, z)`` XYZ tile indices.

    Raises:
        ValueError: If the name contains no ``OAM-x-y-z`` pattern.
    """
    m = _OAM_RE.search(name)
    if m is None:
        raise ValueError(f"{name!r} is not an OpenAerialMap tile name of the form OAM-x-y-z")
    return int(m["x"]), int(m["y"]), int(m["z"])


def tile_bounds_3857(x: int, y: int, z: int) -> BBox:
    """Bounds of an XYZ web-map tile in EPSG:3857 metres.

    Args:
        x: Column index, ``0 <= x < 2**z``.
        y: Row index from the north, ``0 <= y < 2**z``.
        z: Zoom level.

    Returns:
        ``(west, south, east, north)`` in EPSG:3857 metres.
    """
    n = 2**z
    if not (0 <= x < n and 0 <= y < n):
        raise ValueError(f"tile ({x}, {y}) does not exist at zoom {z}; indices must be in [0, {n})")
    size = 2 * WEB_MERCATOR_HALF / n
    west = -WEB_MERCATOR_HALF + x * size
    north = WEB_MERCATOR_HALF - y * size
    return (west, north - size, west + size, north)


def tile_bounds_lonlat(x: int, y: int, z: int) -> BBox:
    """Bounds of an XYZ tile in EPSG:4326 degrees ``(west, south, east, north)``."""
    return transform_bounds(WEB_MERCATOR, WGS84, *tile_bounds_3857(x, y, z))


def to_crs(crs: CRS | str | int | None) -> CRS:
    """Coerce a CRS-like value to :class:`rasterio.crs.CRS`.

    Raises:
        CRSError: If ``crs`` is None or not understood.
    """
    if crs is None:
        raise CRSError("the raster has no CRS; assign one (e.g. with gdal_edit.py -a_srs EPSG:XXXX) and retry")
    if isinstance(crs, CRS):
        return crs
    try:
        return CRS.from_user_input(crs)
    except Exception as exc:  # rasterio raises its own CRSError subclasses
        raise CRSError(f"cannot interpret {crs!r} as a CRS: {exc}") from exc


def reproject_bounds(bounds: BBox, src_crs: CRS | str | int, dst_crs: CRS | str | int) -> BBox:
    """Reproject a bounding box, densifying edges so curved edges are enclosed.

    Args:
        bounds: ``(west, south, east, north)`` in ``src_crs`` units.
        src_crs: CRS of ``bounds``.
        dst_crs: Target CRS.

    Returns:
        The enclosing ``(west, south, east, north)`` in ``dst_crs`` units.
    """
    return tuple(transform_bounds(to_crs(src_crs), to_crs(dst_crs), *bounds, densify_pts=21))  # type: ignore[return-value]


def gsd_metres(transform, crs: CRS | str | int | None, height: int, width: int) -> float:
    """Ground sampling distance at the raster centre, in metres per pixel.

    For projected CRSs in metres this is the mean pixel size; for geographic CRSs
    (degrees) and web mercator, the pixel's true ground size at the centre latitude
    is computed with the WGS84 ellipsoid (geodesic distance).

    Args:
        transform: Affine pixel-to-CRS transform.
        crs: The raster CRS.
        height: Raster rows.
        width: Raster columns.

    Returns:
        Mean of the x and y ground pixel sizes, metres.

    Raises:
        CRSError: If ``crs`` is None.
    """
    from pyproj import Geod

    crs = to_crs(crs)
    cx, cy = transform * (width / 2.0, height / 2.0)
    if crs.is_projected and crs != WEB_MERCATOR and (crs.linear_units or "").lower() in ("metre", "meter", "m"):
        return float((abs(transform.a) + abs(transform.e)) / 2.0)
    to_ll = Transformer.from_crs(crs, WGS84, always_xy=True)
    lon0, lat0 = to_ll.transform(cx, cy)
    lon1, lat1 = to_ll.transform(cx + transform.a, cy)
    lon2, lat2 = to_ll.transform(cx, cy + transform.e)
    geod = Geod(ellps="WGS84")
    dx = geod.inv(lon0, lat0, lon1, lat1)[2]
    dy = geod.inv(lon0, lat0, lon2, lat2)[2]
    return float((abs(dx) + abs(dy)) / 2.0)
