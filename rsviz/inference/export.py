"""Exports of an in-memory :class:`~rsviz.inference.Prediction`: COG and polygons."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsviz.errors import CRSError
from rsviz.inference.engine import Prediction, _GeoTIFFWriter


def write_prediction_cog(pred: Prediction, card, path: str | Path) -> Path:
    """Write a prediction as a COG with the band layout of :func:`~rsviz.inference.output_band_layout`.

    Raises:
        CRSError: The prediction has no CRS.
    """
    if pred.crs is None:
        raise CRSError("the prediction has no CRS; a COG export needs a georeferenced image")
    h, w = pred.shape
    writer = _GeoTIFFWriter(Path(path), card, "tta_var" in pred.heads, h, w, pred.transform, pred.crs, cog=True)
    writer.write(0, h, pred.heads, pred.valid)
    writer.close()
    return Path(path)


def prediction_polygons_geojson(pred: Prediction, card, min_area_px: float = 10.0) -> dict:
    """Polygons of the predicted classes as a GeoJSON FeatureCollection in EPSG:4326.

    Binary models give one polygon per connected positive component; multiclass models
    one per connected region of each class. Each feature carries ``class_id``, ``class``
    and ``area_m2`` (in the prediction CRS units squared when projected).

    Raises:
        CRSError: The prediction has no CRS.
    """
    import shapely
    from rasterio.features import shapes
    from rasterio.warp import transform_geom

    if pred.crs is None:
        raise CRSError("the prediction has no CRS; a GeoJSON export needs a georeferenced image")
    cls = pred.heads["classes"]
    names = {c.id: c.name for c in card.classes}
    binary = card.heads["seg"].kind == "binary"
    mask = (cls == 1) if binary else (cls != 255)
    t = pred.transform
    px_area = abs(t.a * t.e)
    feats = []
    for geom, val in shapes(cls.astype(np.uint8), mask=mask, transform=t, connectivity=4):
        g = shapely.geometry.shape(geom)
        if g.area / px_area < min_area_px:
            continue
        feats.append({"type": "Feature", "geometry": transform_geom(pred.crs, "EPSG:4326", geom),
                      "properties": {"class_id": int(val), "class": names.get(int(val), str(int(val))),
                                     "area_m2": round(g.area, 3) if pred.crs.is_projected else None}})
    return {"type": "FeatureCollection", "features": feats}
