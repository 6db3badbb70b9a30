"""Exports of an in-memory :class:`~rsviz.inference.Prediction`: COG and polygons."""

from __future__ import annotations

from collections.abc import Sequence
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


def read_prediction(path: str | Path, window: Window | None = None) -> Prediction:
    """Read a prediction GeoTIFF/COG written by :func:`~rsviz.inference.predict` (``output=``) or
    :func:`write_prediction_cog` back into heads, by window.

    The band layout comes from the file's ``rsviz_bands`` tag (:func:`~rsviz.inference.output_band_layout`);
    values are decoded from their uint8 encoding: ``probs`` ``(C, h, w)`` float32 = band / 255 (binary
    models: ``C = 1``, the positive class, as :func:`~rsviz.inference.predict` gives it), ``entropy`` = band / 255 x ln(max(C, 2)), ``edge`` = band / 255, ``tta_var`` = band / 1020,
    ``recon`` ``(bands, h, w)`` float32 in input units; ``height`` ``(h, w)`` float32 from the
    ``<stem>_height.tif`` sidecar when there is one. The quantisation step is 1/255, so decoded
    probabilities differ from in-memory ones by at most 0.002; class ids are exact.

    Args:
        path: The prediction file.
        window: Pixel window of the file to read (None: all of it; the caller bounds its size).

    Returns:
        :class:`Prediction` on the window's grid (``valid`` False where the class id is 255); ``model`` from
        the ``rsviz_model`` tag.

    Raises:
        RasterReadError: Unreadable file, or not a file rsviz wrote (no ``rsviz_bands`` tag).
    """
    from rsviz.errors import RasterReadError
    from rsviz.raster import open_raster
    from rsviz.types import NODATA_CLASS

    p = Path(path)
    with open_raster(p) as ds:
        tags = ds.tags()
        if "rsviz_bands" not in tags:
            raise RasterReadError(f"{p.name} was not written by rsviz predict (no rsviz_bands tag)")
        names = tags["rsviz_bands"].split(",")
        win = window if window is not None else Window(0, 0, ds.width, ds.height)
        data = ds.read(window=win)
        transform, crs = ds.window_transform(win), ds.crs
    heads = decode_prediction_bands(names, data)
    classes = heads["classes"]
    side = p.with_name(p.stem + "_height.tif")
    if side.exists():
        with open_raster(side) as ds:
            heads["height"] = ds.read(1, window=win).astype(np.float32)
    valid = classes != NODATA_CLASS
    return Prediction(
        heads=heads, transform=transform, crs=crs, valid=valid, window=win, model=tags.get("rsviz_model", "")
    )


def decode_prediction_bands(names: Sequence[str], data: np.ndarray) -> dict[str, np.ndarray]:
    """Heads from the uint8 bands of a prediction file (the decoding :func:`read_prediction` describes).

    Args:
        names: Band names in file order (the ``rsviz_bands`` tag; :func:`~rsviz.inference.output_band_layout`).
        data: ``(bands, h, w)`` uint8 as read.

    Returns:
        ``classes`` and, as present, ``probs``, ``edge``, ``tta_var``, ``entropy``, ``recon`` (float32).
    """
    import math

    classes = data[names.index("classes")]
    heads: dict[str, np.ndarray] = {"classes": classes}
    probs = [data[i].astype(np.float32) / 255.0 for i, n in enumerate(names) if n.startswith("prob:")]
    if probs:
        heads["probs"] = np.stack(probs)
    for name, scale in (("edge", 1 / 255.0), ("tta_var", 1 / 1020.0)):
        if name in names:
            heads[name] = data[names.index(name)].astype(np.float32) * scale
    if "entropy" in names:
        heads["entropy"] = data[names.index("entropy")].astype(np.float32) / 255.0 * math.log(max(len(probs), 2))
    recon = [data[i].astype(np.float32) for i, n in enumerate(names) if n.startswith("recon:")]
    if recon:
        heads["recon"] = np.stack(recon)
    return heads
