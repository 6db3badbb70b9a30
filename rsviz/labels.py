"""Ground-truth construction on an image's pixel grid.

* :func:`rasterize_polygons`: vector footprints (GeoJSON, any CRS) burned onto a raster grid.
* :func:`edges_from_mask`: boundary (edge) ground truth of a documented width.
* :func:`colour_mask_to_ids`: RGB colour-coded masks to class ids.
* :func:`threshold_mask`: anti-aliased 0-255 masks to binary.
* :func:`rasterize_roads`: OpenStreetMap-style road centre lines buffered by road class into road
  masks (pseudo-labels, as in PP-LinkNet's multi-stage training: Tran et al. 2020).
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import array_bounds
from rasterio.warp import transform_geom
from scipy import ndimage
from shapely.geometry import mapping, shape
from skimage.segmentation import find_boundaries

from rsviz.errors import CRSError, GeometryTypeError, RsvizError
from rsviz.geo import WGS84, reproject_bounds

#: Width of boundary ground truth in pixels (see :func:`edges_from_mask`).
DEFAULT_EDGE_WIDTH = 3


def read_geojson_features(path: str | os.PathLike) -> tuple[list[dict], CRS]:
    """Read GeoJSON features and their CRS.

    GeoJSON (RFC 7946) is EPSG:4326 lon/lat unless a legacy ``crs`` member says otherwise.

    Returns:
        ``(features, crs)``; features are GeoJSON dicts with ``geometry`` and ``properties``.

    Raises:
        RsvizError: If the file is not a GeoJSON FeatureCollection.
    """
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RsvizError(f"cannot read GeoJSON {path}: {exc}; check that it is a GeoJSON FeatureCollection") from exc
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection" or not isinstance(obj.get("features"), list):
        raise RsvizError(f"{path} is not a GeoJSON FeatureCollection (an object with a 'features' list)")
    crs = WGS84
    name = ((obj.get("crs") or {}).get("properties") or {}).get("name") if isinstance(obj.get("crs"), dict) else None
    if name and "CRS84" not in name:
        try:
            crs = CRS.from_user_input(name)
        except (ValueError, TypeError) as exc:  # rasterio's CRSError is a ValueError
            raise RsvizError(f"{path} names an unknown CRS {name!r}; use an EPSG code such as EPSG:32633") from exc
    feats = [f for f in obj["features"] if isinstance(f, dict) and f.get("geometry")]
    return feats, crs


def rasterize_polygons(
    geometries: Iterable[Mapping],
    transform: Affine,
    shape: tuple[int, int],
    dst_crs: CRS | None,
    src_crs: CRS = WGS84,
    *,
    values: Sequence[int] | None = None,
    all_touched: bool = False,
) -> np.ndarray:
    """Burn polygons onto a raster grid.

    A pixel is set when its centre falls inside a polygon (GDAL's default rule,
    ``all_touched=False``), so the burned area matches the polygons' area to within the
    boundary pixels.

    Args:
        geometries: GeoJSON-like geometry mappings in ``src_crs``.
        transform: Affine transform of the target grid.
        shape: ``(height, width)`` of the target grid.
        dst_crs: CRS of the target grid.
        src_crs: CRS of the geometries (EPSG:4326 by default).
        values: Value to burn per geometry; 1 for all by default. Later geometries
            overwrite earlier ones.
        all_touched: Burn every pixel a polygon touches.

    Returns:
        ``(height, width)`` uint8 array, 0 where no polygon.

    Raises:
        CRSError: If ``dst_crs`` is None.
        GeometryTypeError: If a geometry is not a Polygon or MultiPolygon (points or lines would burn as
            one-pixel objects), naming the types found.
    """
    geoms = _geometries_in(geometries, src_crs, dst_crs, polygonal=True)
    if not geoms:
        return np.zeros(shape, dtype=np.uint8)
    vals = values if values is not None else [1] * len(geoms)
    return rasterize(
        zip(geoms, vals, strict=False),
        out_shape=shape,
        transform=transform,
        fill=0,
        dtype="uint8",
        all_touched=all_touched,
    )


def rasterize_instances(
    geometries: Iterable[Mapping], transform: Affine, shape: tuple[int, int], dst_crs: CRS | None, src_crs: CRS = WGS84
) -> np.ndarray:
    """Burn polygons with one id each (1..N, in input order; later ones win on overlap).

    Same rules and errors as :func:`rasterize_polygons`.

    Returns:
        ``(height, width)`` int32 instance ids, 0 for background.
    """
    geoms = _geometries_in(geometries, src_crs, dst_crs, polygonal=True)
    if not geoms:
        return np.zeros(shape, dtype=np.int32)
    return rasterize(zip(geoms, range(1, len(geoms) + 1)), out_shape=shape, transform=transform, fill=0, dtype="int32")


POLYGONAL = ("Polygon", "MultiPolygon")


def _polygonal(geometries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The geometries, refused unless every non-empty one is a Polygon or MultiPolygon.

    Raises:
        GeometryTypeError: Naming the geometry types found and how many of each.
    """
    geoms = list(geometries)
    bad: dict[str, int] = {}
    for g in geoms:
        if g:
            kind = str(g.get("type")) if isinstance(g, Mapping) else type(g).__name__
            if kind not in POLYGONAL:
                bad[kind] = bad.get(kind, 0) + 1
    if bad:
        found = ", ".join(f"{n} {k}" for k, n in sorted(bad.items()))
        raise GeometryTypeError(
            f"footprints must be Polygon or MultiPolygon geometries, but the labels contain {found}; "
            "points and lines would burn as one-pixel buildings: give the footprint polygons "
            "(or buffer the geometries into polygons first)"
        )
    return geoms


def _geometries_in(geometries: Iterable[Mapping], src_crs, dst_crs, *, polygonal: bool = False) -> list[Mapping]:
    """Valid, non-empty geometries reprojected to ``dst_crs`` (raises CRSError if it is None); with
    ``polygonal``, anything but polygons raises :class:`GeometryTypeError` (see :func:`_polygonal`)."""
    if dst_crs is None:
        raise CRSError("cannot rasterize vectors onto an image without a CRS; georeference the image first")
    if polygonal:
        geometries = _polygonal(geometries)
    geoms = [g for g in geometries if _is_valid_geometry(g)]
    if geoms and CRS.from_user_input(src_crs) != CRS.from_user_input(dst_crs):
        geoms = [transform_geom(src_crs, dst_crs, g) for g in geoms]
    return geoms


def _is_valid_geometry(g: Mapping | None) -> bool:
    """True for a non-empty polygonal GeoJSON geometry (empty rings, as some label files have, are skipped)."""
    from shapely.geometry import shape

    if not g or not g.get("coordinates"):
        return False
    try:
        geom = shape(g)
    except (ValueError, TypeError, AttributeError, IndexError):
        return False
    return not geom.is_empty


def edges_from_mask(mask: np.ndarray, width: int = DEFAULT_EDGE_WIDTH) -> np.ndarray:
    """Boundary ground truth from a label mask.

    Boundary pixels are found with :func:`skimage.segmentation.find_boundaries`
    (``mode="inner"``: the object pixels that touch another label, 4-connectivity)
    and then dilated with a ``width x width`` square, so the edge band is ``width``
    pixels wide and centred on the inner boundary. Image borders are not boundaries.

    Args:
        mask: ``(height, width)`` integer label mask (binary or class ids).
        width: Band width in pixels, odd, >= 1 (default 3).

    Returns:
        ``(height, width)`` uint8 array, 1 on boundaries.
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"edge width must be an odd number of pixels >= 1, got {width}")
    b = find_boundaries(np.asarray(mask), mode="inner", connectivity=1)
    if width > 1:
        b = ndimage.binary_dilation(b, structure=np.ones((width, width), bool))
    return b.astype(np.uint8)


def contact_mask(instances: np.ndarray, width: int = 5) -> np.ndarray:
    """Where two building instances meet: pixels with two different instance ids within a ``width`` window.

    Marks shared walls and the narrow gaps between neighbouring footprints, the places where a footprint
    mask merges two buildings into one. Training can weight its boundary loss there, after the
    separation-border weighting of Ronneberger, Fischer & Brox (U-Net, MICCAI 2015).

    Args:
        instances: ``(H, W)`` int instance ids, 0 = background.
        width: Window side in pixels, odd, >= 3.

    Returns:
        ``(H, W)`` bool.

    Raises:
        ValueError: If ``width`` is even or below 3.
    """
    if width < 3 or width % 2 == 0:
        raise ValueError(f"contact window must be an odd number of pixels >= 3, got {width}")
    inst = np.asarray(instances).astype(np.int32)
    big = int(inst.max()) + 1  # stands for background in the minimum filter
    hi = ndimage.maximum_filter(inst, size=width, mode="nearest")
    lo = ndimage.minimum_filter(np.where(inst > 0, inst, big), size=width, mode="nearest")
    return (lo != big) & (hi != lo)


def colour_mask_to_ids(
    rgb: np.ndarray,
    colours: Sequence[tuple[int, int, int]],
    *,
    tolerance: int = 0,
    unmatched: int | None = None,
    max_distance: int = 40,
) -> np.ndarray:
    """Map an RGB colour-coded mask to class ids.

    Args:
        rgb: ``(3, height, width)`` or ``(height, width, 3)`` uint8.
        colours: RGB per class id; class ``i`` has colour ``colours[i]``.
        tolerance: Kept for callers; every pixel takes its nearest colour (largest per-channel difference)
            within ``max_distance``.
        unmatched: Id of pixels farther than ``max_distance`` from every colour (e.g. the black pixels of the
            Dubai masks, which are no class: the card's ignore class, or 255 for nodata); None gives them the
            nearest colour's id.
        max_distance: Largest per-channel difference of a pixel from its class colour (JPEG/PNG artefacts,
            anti-aliased edges), 0-255.

    Returns:
        ``(height, width)`` uint8 class ids.
    """
    a = np.asarray(rgb)
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):
        a = np.moveaxis(a[:3], 0, -1)
    a = a[..., :3].astype(np.int16)
    pal = np.asarray(colours, dtype=np.int16)
    d = np.abs(a[..., None, :] - pal[None, None]).max(-1)  # (h, w, k)
    ids = d.argmin(-1).astype(np.uint8)
    if unmatched is not None:
        ids[d.min(-1) > max(max_distance, tolerance)] = unmatched
    return ids


def threshold_mask(mask: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Binary mask from an 8-bit (possibly anti-aliased) mask: ``mask >= threshold``.

    Args:
        mask: ``(height, width)`` or ``(bands, height, width)`` (first band used), 0-255.
        threshold: Cut-off, inclusive.

    Returns:
        ``(height, width)`` uint8 in {0, 1}.
    """
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[0]
    return (m >= threshold).astype(np.uint8)


#: Half-width in metres by OSM ``highway`` value.
ROAD_HALF_WIDTH_M = {
    "motorway": 7.0,
    "trunk": 6.0,
    "primary": 5.0,
    "secondary": 4.5,
    "tertiary": 4.0,
    "unclassified": 3.0,
    "residential": 3.0,
    "service": 2.0,
    "track": 1.5,
    "path": 1.0,
    "footway": 1.0,
    "cycleway": 1.0,
}
#: SpaceNet 3 ``road_type`` codes -> OSM ``highway`` class.
SPACENET_ROAD_TYPE = {
    "1": "motorway",
    "2": "primary",
    "3": "secondary",
    "4": "tertiary",
    "5": "residential",
    "6": "unclassified",
    "7": "track",
}
DEFAULT_HALF_WIDTH_M = 3.0


def road_class(props: Mapping) -> str:
    """OSM ``highway`` class of a feature (``highway`` tag, else SpaceNet ``road_type``; ``_link`` suffix dropped)."""
    hw = props.get("highway")
    if hw:
        return str(hw).removesuffix("_link")
    rt = props.get("road_type")
    return SPACENET_ROAD_TYPE.get(str(rt), "unclassified") if rt is not None else "unclassified"


def rasterize_roads(
    features: Iterable[Mapping],
    transform: Affine,
    shape_hw: tuple[int, int],
    dst_crs: CRS | None,
    src_crs: CRS = WGS84,
    *,
    half_widths: Mapping[str, float] | None = None,
    constant_half_width_m: float | None = None,
) -> np.ndarray:
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
    lon0, lat0, lon1, lat1 = reproject_bounds(array_bounds(h, w, transform), dst_crs, WGS84)
    lon, lat = (lon0 + lon1) / 2, (lat0 + lat1) / 2
    utm = CRS.from_epsg((32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1)  # WGS 84 / UTM zone
    polys = []
    for f in features:
        g = f.get("geometry")
        if not g or g.get("type") not in ("LineString", "MultiLineString"):
            continue
        r = (
            constant_half_width_m
            if constant_half_width_m is not None
            else hw.get(road_class(f.get("properties") or {}), DEFAULT_HALF_WIDTH_M)
        )
        buf = shape(transform_geom(src_crs, utm, g)).buffer(r, cap_style="flat")
        polys.append(transform_geom(utm, dst_crs, mapping(buf)))
    if not polys:
        return np.zeros(shape_hw, np.uint8)
    return rasterize(((p, 1) for p in polys), out_shape=shape_hw, transform=transform, fill=0, dtype="uint8")
