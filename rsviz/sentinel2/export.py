"""Export a :class:`~rsviz.sentinel2.patches.PatchPrediction`: GeoTIFF (one band per label) and GeoJSON grid.

* GeoTIFF: float32, one pixel per patch (1.2 km at 10 m) on the patch grid, one band per label with the
  label name as band description, NaN where a patch was not predicted; tags name the model.
* GeoJSON (RFC 7946, EPSG:4326 longitude / latitude): one polygon per predicted patch with ``row``,
  ``col``, ``labels`` (names with probability >= the threshold, most probable first), ``top_label``,
  ``probabilities`` (label -> probability) and ``valid_fraction``.
* :func:`map_rasters`: the rasters the map's tile layers show (probabilities as uint8 0-250, top label
  ids, disagreement counts; 255 = nodata), upsampled so each patch is a block of pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rasterio
from affine import Affine

from rsviz.errors import OutputPathError
from rsviz.sentinel2.patches import PatchPrediction


def write_geotiff(pred: PatchPrediction, path: str | Path) -> Path:
    """Write the probabilities as a GeoTIFF, one band per label (see module docstring).

    Raises:
        OutputPathError: The folder is missing or not writable.
    """
    p = Path(path)
    if not p.parent.is_dir():
        raise OutputPathError(f"folder {p.parent} does not exist; create it or choose another path")
    rows, cols = pred.shape
    prof = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": len(pred.labels),
        "dtype": "float32",
        "crs": pred.crs,
        "transform": pred.transform,
        "nodata": float("nan"),
        "compress": "deflate",
    }
    try:
        with rasterio.open(p, "w", **prof) as ds:
            ds.write(np.moveaxis(pred.probs, -1, 0))
            ds.descriptions = pred.labels
            ds.update_tags(model=pred.model, units="probability (sigmoid), 0-1", patch_px=str(pred.patch_px))
    except rasterio.errors.RasterioIOError as exc:
        raise OutputPathError(f"cannot write {p}: {exc}") from exc
    return p


def grid_geojson(pred: PatchPrediction, threshold: float = 0.5, *, digits: int = 4) -> dict[str, Any]:
    """The patch grid as a GeoJSON FeatureCollection (see module docstring); ``digits`` rounds probabilities."""
    from rasterio.warp import transform as warp

    rows, cols = pred.shape
    feats = []
    ok = pred.predicted
    top = pred.top_label()
    for r, c in zip(*np.nonzero(ok)):
        w, s, e, n = pred.cell_bounds(int(r), int(c))
        xs, ys = warp(pred.crs, "EPSG:4326", [w, e, e, w, w], [n, n, s, s, n])
        p = pred.probs[r, c]
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[[float(x), float(y)] for x, y in zip(xs, ys)]]},
                "properties": {
                    "row": int(r),
                    "col": int(c),
                    "labels": [lab for lab, _ in pred.labels_at(int(r), int(c), threshold)],
                    "top_label": pred.labels[int(top[r, c])],
                    "probabilities": {lab: round(float(v), digits) for lab, v in zip(pred.labels, p)},
                    "valid_fraction": round(float(pred.valid_fraction[r, c]), 4),
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "features": feats,
        "properties": {"model": pred.model, "threshold": threshold, "rows": rows, "cols": cols},
    }


def write_geojson(pred: PatchPrediction, path: str | Path, threshold: float = 0.5) -> Path:
    """Write :func:`grid_geojson` to ``path``.

    Raises:
        OutputPathError: The folder is missing or not writable.
    """
    import json

    p = Path(path)
    try:
        p.write_text(json.dumps(grid_geojson(pred, threshold)), encoding="utf-8")
    except OSError as exc:
        raise OutputPathError(f"cannot write {p}: {exc}") from exc
    return p


def _write_u8(
    path: Path, data: np.ndarray, pred: PatchPrediction, up: int, descriptions: Sequence[str], reuse: bool = False
) -> Path:
    if reuse and path.is_file():
        return path
    arr = np.repeat(np.repeat(data, up, axis=-2), up, axis=-1)
    t = pred.transform * Affine.scale(1 / up)
    prof = {
        "driver": "GTiff",
        "width": arr.shape[-1],
        "height": arr.shape[-2],
        "count": arr.shape[0],
        "dtype": "uint8",
        "crs": pred.crs,
        "transform": t,
        "nodata": 255,
        "compress": "deflate",
        "tiled": arr.shape[-1] >= 256 and arr.shape[-2] >= 256,
    }
    tmp = path.with_name(path.name + ".tmp.tif")
    with rasterio.open(tmp, "w", **prof) as ds:
        ds.write(arr)
        ds.descriptions = tuple(descriptions)
    tmp.replace(path)
    return path


def map_rasters(
    preds: Sequence[PatchPrediction], folder: Path, *, up: int = 8, threshold: float = 0.5, reuse: bool = False
) -> dict[str, Path]:
    """The rasters of the map layers of one run (one or more models on one grid), uint8, 255 = nodata.

    Args:
        preds: Predictions on the same grid.
        folder: Where to write (created).
        up: Pixels per patch side (each patch a block, so tiles stay crisp when zoomed in).
        threshold: Decision threshold of the disagreement count.
        reuse: Keep files already in ``folder`` (a folder named after the predictions' content): the map's tile
            layers keep their ids, so tiles already served stay cached.

    Returns:
        ``{"probs:<model>": L-band probability x 250, "top:<model>": top label id, "disagreement": count}``
        (the last with two or more models).
    """
    from rsviz.sentinel2.patches import disagreement

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for p in preds:
        q = np.where(np.isfinite(p.probs), np.round(np.nan_to_num(p.probs) * 250), 255).astype(np.uint8)
        out[f"probs:{p.model}"] = _write_u8(
            folder / f"{p.model}-probs.tif", np.moveaxis(q, -1, 0), p, up, p.labels, reuse
        )
        top = p.top_label()
        out[f"top:{p.model}"] = _write_u8(
            folder / f"{p.model}-top.tif",
            np.where(top < 0, 255, top).astype(np.uint8)[None],
            p,
            up,
            ("top label",),
            reuse,
        )
    if len(preds) >= 2:
        d = disagreement(preds, threshold)
        out["disagreement"] = _write_u8(
            folder / "disagreement.tif",
            np.where(np.isfinite(d), np.nan_to_num(d), 255).astype(np.uint8)[None],
            preds[0],
            up,
            ("disputed labels",),
            reuse,
        )
    return out
