"""Vectorization: instance maps and masks to polygons (rasterio.features.shapes + shapely).

Polygons are in pixel coordinates unless a transform is given (then in its CRS). Rings that
GDAL traces self-touching are repaired with ``buffer(0)``. Used by object F1
(:mod:`rsviz.metrics.objects`) and by the GeoJSON export, so both see the same shapes.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from shapely.geometry import shape


def instance_polygons(
    instances: np.ndarray, transform: Affine | None = None, *, min_area: float = 0.0, valid: np.ndarray | None = None
) -> dict[int, shapely.Geometry]:
    """One (multi)polygon per instance id of an int32 instance map (0 = background), keyed by the id.

    Args:
        instances: ``(H, W)`` int instance ids.
        transform: Pixel-to-CRS transform; pixel coordinates by default.
        min_area: Drop instances smaller than this (output units squared).
        valid: Optional bool mask; invalid pixels count as background.

    Returns:
        ``{instance id: geometry}`` in increasing id order; invalid rings are repaired (``buffer(0)``).
    """
    inst = np.asarray(instances).astype(np.int32)
    if valid is not None:
        inst = np.where(valid, inst, 0)
    t = transform if transform is not None else Affine.identity()
    parts: dict[int, list[shapely.Geometry]] = {}
    for geom, val in shapes(inst, mask=inst > 0, transform=t, connectivity=4):
        parts.setdefault(int(val), []).append(shape(geom))
    out = {}
    for val, ps in sorted(parts.items()):
        g = ps[0] if len(ps) == 1 else shapely.union_all(ps)
        if not g.is_valid:
            g = g.buffer(0)
        if not g.is_empty and g.area >= min_area:
            out[val] = g
    return out


def instances_to_polygons(
    instances: np.ndarray, transform: Affine | None = None, *, min_area: float = 0.0, valid: np.ndarray | None = None
) -> list[shapely.Geometry]:
    """The geometries of :func:`instance_polygons` (same arguments), in increasing id order."""
    return list(instance_polygons(instances, transform, min_area=min_area, valid=valid).values())


def mask_to_polygons(
    mask: np.ndarray, transform: Affine | None = None, *, min_area: float = 0.0, valid: np.ndarray | None = None
) -> list[shapely.Polygon]:
    """Connected components (4-connected) of a binary mask as polygons.

    Args:
        mask: ``(H, W)`` {0, 1}.
        transform: Pixel-to-CRS transform; pixel coordinates (identity) by default.
        min_area: Drop polygons smaller than this (units of the output coordinates squared).
        valid: Optional ``(H, W)`` bool; pixels outside are treated as background.

    Returns:
        Valid shapely polygons (holes kept).
    """
    m = np.asarray(mask).astype(np.uint8)
    if valid is not None:
        m = m & np.asarray(valid, np.uint8)
    t = transform if transform is not None else Affine.identity()
    out = []
    for geom, val in shapes(m, mask=m > 0, transform=t, connectivity=4):
        if val != 1:
            continue
        p = shape(geom)
        if not p.is_valid:
            p = p.buffer(0)
        if p.area >= min_area and not p.is_empty:
            out.append(p)
    return out
