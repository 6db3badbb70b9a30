"""OpenStreetMap-style road vectors to road masks (pseudo-labels, as in PP-LinkNet's multi-stage training).

Tran et al., "PP-LinkNet: Improving Semantic Segmentation of High Resolution Satellite
Imagery with Multi-stage Training", 2020, train first on road masks rasterized from
OpenStreetMap centre lines, buffered by road class. :func:`rasterize_roads` does that:
each line is buffered by a half-width that depends on its ``highway`` tag (or the SpaceNet
``road_type`` code, mapped to the OSM class), in metres, in a local metric CRS (the UTM zone
of the raster's centre), then burned onto the raster grid.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import transform_geom
from shapely.geometry import mapping, shape

from rsviz.errors import CRSError
from rsviz.geo import WGS84, reproject_bounds

#: Half-width in metres by OSM ``highway`` value.
ROAD_HALF_WIDTH_M = {"motorway": 7.0, "trunk": 6.0, "primary": 5.0, "secondary": 4.5, "tertiary": 4.0,
                     "unclassified": 3.0, "residential": 3.0, "service": 2.0, "track": 1.5, "path": 1.0,
                     "footway": 1.0, "cycleway": 1.0}
#: SpaceNet 3 ``road_type`` codes -> OSM ``highway`` class.
SPACENET_ROAD_TYPE = {"1": "motorway", "2": "primary", "3": "secondary", "4": "tertiary", "5": "residential",
                      "6": "unclassified", "7": "track"}
DEFAULT_HALF_WIDTH_M = 3.0


def road_class(props: Mapping) -> str:
    """OSM ``highway`` class of a feature (``highway`` tag, else SpaceNet ``road_type``; ``_link`` suffix dropped)."""
    hw = props.get("highway")
    if hw:
        return str(hw).removesuffix("_link")
    rt = props.get("road_type")
    return SPACENET_ROAD_TYPE.get(str(rt), "unclassified") if rt is not None else "unclassified"


def rasterize_roads(features: Iterable[Mapping], transform: Affine, shape_hw: tuple[int, int], dst_crs: CRS | None,
                    src_crs: CRS = WGS84, *, half_widths: Mapping[str, float] | None = None,
                    constant_half_width_m: float | None = None) -> np.ndarray:
    """Road mask from line features buffered by road class.

    Args:
        features: GeoJSON features with LineString / MultiLineString geometries in ``src_crs``.
        transform: Target grid transform.
        shape_hw: Target ``(height, width)``.
        dst_crs: Target grid CRS.
        src_crs: CRS of the features (EPSG:4326 by default).
        half_widths: Override of :data:`ROAD_HALF_WIDTH_M`.
        constant_half_width_m: Use one half-width for every road instead.

    Returns:
        ``(height, width)`` uint8 road mask (1 = road).

    Raises:
        CRSError: If ``dst_crs`` is None.
    """
    if dst_crs is None:
        raise CRSError("cannot rasterize roads onto an image without a CRS; georeference the image first")
    hw = dict(ROAD_HALF_WIDTH_M, **(half_widths or {}))
    h, w = shape_hw
    xs = [transform.c, transform.c + transform.a * w]
    ys = [transform.f, transform.f + transform.e * h]
    lon0, lat0, lon1, lat1 = reproject_bounds((min(xs), min(ys), max(xs), max(ys)), dst_crs, WGS84)
    lon, lat = (lon0 + lon1) / 2, (lat0 + lat1) / 2
    utm = CRS.from_epsg((32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1)  # WGS 84 / UTM zone
    polys = []
    for f in features:
        g = f.get("geometry")
        if not g or g.get("type") not in ("LineString", "MultiLineString"):
            continue
        r = constant_half_width_m if constant_half_width_m is not None else hw.get(road_class(f.get("properties") or {}),
                                                                                   DEFAULT_HALF_WIDTH_M)
        buf = shape(transform_geom(src_crs, utm, g)).buffer(r, cap_style="flat")
        polys.append(transform_geom(utm, dst_crs, mapping(buf)))
    if not polys:
        return np.zeros(shape_hw, np.uint8)
    return rasterize(((p, 1) for p in polys), out_shape=shape_hw, transform=transform, fill=0, dtype="uint8")
