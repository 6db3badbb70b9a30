"""Inputs at the model's scale: resample a scene whose GSD lies outside the card's range, predict, and bring
the outputs back onto the scene's grid.

A network trained on 0.1-0.2 m imagery sees a 0.077 m orthophoto as buildings 1.3-2.6x too large and a 0.6 m
one as buildings 3-6x too small. Deepness (QGIS) reads a ``resolution`` from the model's metadata and
resamples every input to it; rsviz does the same from the card's ``input.gsd_range_m``:

1. :func:`target_gsd`: when the scene's GSD (metres per pixel at its centre, :func:`rsviz.geo.gsd_metres`)
   lies outside ``[lo / GSD_TOLERANCE, hi * GSD_TOLERANCE]``, the target is the geometric centre of the
   range, ``sqrt(lo * hi)`` (0.141 m for the building models); inside it, nothing is resampled.
2. :func:`resampled_path`: the window of the source file seen at the target GSD, as a GDAL ``vrt://``
   connection (``srcwin``, ``outsize``, bilinear), so GDAL resamples block by block and nothing is read
   whole; the engine predicts it like any file.
3. :func:`resample_heads` (in memory) or :func:`resample_file` (a prediction COG, block by block) bring the
   heads back onto the scene's grid: nearest neighbour for class ids and the valid mask, bilinear for
   probabilities, edges, entropy, TTA variance, reconstruction and height.

Both grids cover the same ground: the resampled raster has ``round(H * g / t)`` rows over the window's full
extent, and both resamplings use pixel-centre alignment, so a pixel maps back to where it came from.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rsviz.types import NODATA_CLASS

#: Inputs within this factor of the card's GSD range are predicted as they are.
GSD_TOLERANCE = 1.25
#: Rows per block when a prediction file is resampled back.
BLOCK_ROWS = 1024


def target_gsd(gsd_m: float | None, gsd_range_m: tuple[float, float] | list[float]) -> float | None:
    """The GSD to predict at, or None to predict at the scene's own.

    Args:
        gsd_m: The scene's GSD in metres per pixel (None: unknown, e.g. no CRS).
        gsd_range_m: The card's ``[lo, hi]`` training GSD range, metres.

    Returns:
        ``sqrt(lo * hi)`` when ``gsd_m`` lies outside ``[lo / GSD_TOLERANCE, hi * GSD_TOLERANCE]``, else None.
    """
    lo, hi = float(gsd_range_m[0]), float(gsd_range_m[1])
    if gsd_m is None or not math.isfinite(gsd_m) or gsd_m <= 0 or lo <= 0 or hi < lo:
        return None
    if lo / GSD_TOLERANCE <= gsd_m <= hi * GSD_TOLERANCE:
        return None
    return math.sqrt(lo * hi)


def resampled_shape(height: int, width: int, gsd_m: float, target_m: float) -> tuple[int, int]:
    """``(rows, cols)`` of a ``height x width`` window seen at ``target_m`` metres per pixel (at least 1)."""
    f = gsd_m / target_m
    return max(1, round(height * f)), max(1, round(width * f))


def resampled_path(path: str | os.PathLike[str], window: Any, shape: tuple[int, int]) -> str:
    """A GDAL ``vrt://`` connection reading ``window`` of ``path`` resampled (bilinear) to ``shape``.

    Args:
        path: A raster file GDAL opens.
        window: Integer pixel window of the file (:class:`rasterio.windows.Window`).
        shape: ``(rows, cols)`` of the resampled raster.

    Returns:
        The connection string (GDAL >= 3.7: ``srcwin``, ``outsize`` and ``r`` options).

    Raises:
        ValueError: The path holds a ``?``, which the connection syntax cannot carry.
    """
    p = os.fspath(path)
    if "?" in p:
        raise ValueError(f"{p} holds a '?'; it cannot be resampled through a vrt:// connection")
    c0, r0, w, h = (int(v) for v in (window.col_off, window.row_off, window.width, window.height))
    return f"vrt://{p}?srcwin={c0},{r0},{w},{h}&outsize={shape[1]},{shape[0]}&r=bilinear"


def _interp(a: np.ndarray, shape: tuple[int, int], mode: str) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(a))
    squeeze = t.ndim == 2
    t = t[None, None] if squeeze else t[None]
    dtype = t.dtype
    if mode == "bilinear":
        out = F.interpolate(t.float(), size=shape, mode="bilinear", align_corners=False).to(dtype)
    else:
        out = F.interpolate(t.float(), size=shape, mode="nearest-exact").to(dtype)
    out = out[0, 0] if squeeze else out[0]
    return out.numpy()


def resample_heads(
    heads: dict[str, np.ndarray], valid: np.ndarray, shape: tuple[int, int]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Heads of a prediction at the model's GSD, on the scene's grid.

    Args:
        heads: Head name -> ``(H', W')`` or ``(C, H', W')`` array (``classes`` uint8 with 255 nodata).
        valid: ``(H', W')`` bool.
        shape: ``(H, W)`` of the scene's window.

    Returns:
        ``(heads, valid)`` at ``shape``: ``classes`` and ``valid`` by nearest neighbour, the rest bilinear
        (float32 stays float32).
    """
    out = {k: _interp(v, shape, "nearest" if k == "classes" else "bilinear") for k, v in heads.items()}
    back = _interp(valid.astype(np.uint8), shape, "nearest").astype(bool)
    if "classes" in out:
        back &= out["classes"] != NODATA_CLASS
    return out, back


def resample_file(src: Path, dst: Path, height: int, width: int, transform: Any, cog: bool, compress: str) -> None:
    """Write prediction file ``src`` (and its ``_height`` sidecar) onto the ``height x width`` grid of
    ``transform`` as ``dst``, block by block: band 1 (class ids) nearest, the other bands bilinear.

    Raises:
        RasterReadError: ``src`` cannot be read.
    """
    from rsviz.inference.cogwriter import StreamedCOG
    from rsviz.raster import open_raster

    pairs = [(src, dst)]
    side = src.with_name(src.stem + "_height.tif")
    if side.exists():
        pairs.append((side, dst.with_name(dst.stem + "_height.tif")))
    for a, b in pairs:
        with open_raster(a) as ds:
            tags, desc, nodata, dtype, count = ds.tags(), list(ds.descriptions), ds.nodata, ds.dtypes[0], ds.count
            crs = ds.crs
        scratch = b.with_name(f".{b.name}.scratch")
        scratch.mkdir(exist_ok=True)
        out = StreamedCOG(
            scratch,
            height,
            width,
            count,
            dtype,
            transform,
            crs,
            nodata=nodata,
            descriptions=[d or "" for d in desc],
            tags=tags,
            overviews=cog,
            compress="none" if cog else compress,
        )
        try:
            near = f"vrt://{a}?outsize={width},{height}&r=nearest"
            bil = f"vrt://{a}?outsize={width},{height}&r=bilinear"
            is_pred = "rsviz_bands" in tags
            with open_raster(near) as dn, open_raster(bil) as db:
                from rasterio.windows import Window

                for r0 in range(0, height, BLOCK_ROWS):
                    w = Window(0, r0, width, min(BLOCK_ROWS, height - r0))
                    if is_pred:
                        block = db.read(window=w)
                        block[0] = dn.read(1, window=w)  # class ids: nearest
                    else:
                        block = db.read(window=w)
                    out.write(block, r0, 0)
            out.finish(b, compress=compress, cog=cog)
        finally:
            out.close()
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
