"""Exports of an in-memory :class:`~rsviz.inference.Prediction`: COG and polygons."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from rsviz.errors import CRSError
from rsviz.inference.engine import Prediction
from rsviz.inference.sinks import COGSink

if TYPE_CHECKING:
    from rsviz.models.card import ModelCard


def write_prediction_cog(pred: Prediction, card: ModelCard, path: str | Path) -> Path:
    """Write a prediction as a COG with the band layout of :func:`~rsviz.inference.output_band_layout`.

    Raises:
        CRSError: The prediction has no CRS.
    """
    if pred.crs is None:
        raise CRSError("the prediction has no CRS; a COG export needs a georeferenced image")
    h, w = pred.shape
    sink = COGSink(Path(path), card, "tta_var" in pred.heads, h, w, pred.transform, pred.crs, cog=True, queue_blocks=0)
    try:
        sink.write(Window(0, 0, w, h), pred.heads, pred.valid)
        sink.close()
    finally:
        sink.abort()
    return Path(path)


#: Equal-area CRS used for ``area_m2`` of the GeoJSON export (WGS 84 / NSIDC EASE-Grid 2.0 Global).
AREA_CRS = "EPSG:6933"


def prediction_polygons_geojson(pred: Prediction, card: ModelCard, min_area_px: float = 10.0) -> dict[str, Any]:
    """Polygons of a prediction as a GeoJSON FeatureCollection in EPSG:4326 (RFC 7946).

    * Building models (``card.task == "buildings"``): one polygon per building *instance*, split by the
      card's instance post-processing (``extra.instance_postprocess``, the method its object F1 was
      measured with; :func:`rsviz.metrics.objects.instances_for`), so touching buildings are separate
      features. Each carries ``instance_id``.
    * Other binary models: one polygon per 4-connected positive component.
    * Multiclass models: one polygon per 4-connected region of each class.

    Every feature carries ``class_id``, ``class`` and ``area_m2``: the area on the ground in square
    metres, computed in the equal-area :data:`AREA_CRS` whatever the raster CRS (geographic included).

    Args:
        pred: A georeferenced prediction (``heads["classes"]``: ``(H, W)`` uint8, 255 = nodata).
        card: Its model card.
        min_area_px: Polygons smaller than this many pixels are left out.

    Returns:
        GeoJSON ``dict``.

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
    t = pred.transform
    px_area = abs(t.a * t.e)
    if binary and card.task == "buildings" and "probs" in pred.heads:
        from rsviz.models.card import postprocess_of
        from rsviz.postprocess import instance_polygons, instances_for

        instances = instances_for(pred.heads, postprocess_of(card))
        polys = instance_polygons(instances, t, min_area=min_area_px * px_area, valid=pred.valid).items()
        found: list[tuple[Any, int, dict[str, Any]]] = [(g, 1, {"instance_id": val}) for val, g in polys]
    else:
        mask = (cls == 1) if binary else (cls != 255)
        found = [
            (g, int(val), {})
            for geom, val in shapes(cls.astype(np.uint8), mask=mask, transform=t, connectivity=4)
            if (g := shapely.geometry.shape(geom)).area / px_area >= min_area_px
        ]
    feats = []
    for g, cid, props in found:
        geom = shapely.geometry.mapping(g)
        area = shapely.geometry.shape(transform_geom(pred.crs, AREA_CRS, geom)).area
        props = {**props, "class_id": cid, "class": names.get(cid, str(cid)), "area_m2": round(float(area), 3)}
        feats.append({"type": "Feature", "geometry": transform_geom(pred.crs, "EPSG:4326", geom), "properties": props})
    return {"type": "FeatureCollection", "features": feats}
