"""Context inference: predict an image inside a mosaic of its neighbours' pixels.

Sample chips (web-map tiles of an orthomosaic, for instance) are cut without overlap. Predicted
alone, an object crossing the chip edge is seen only in part, with the tiler's zero padding beside
it. :func:`context_mosaic` rebuilds the surroundings of a chip from the neighbouring rasters'
*imagery* on the chip's own pixel grid, extended by ``margin`` pixels; :func:`predict_with_context`
predicts that mosaic and crops every head back to the chip grid. This is what tiled inference over
the whole orthomosaic (MONAI ``sliding_window_inference`` with overlap) would see at the chip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
from affine import Affine
from rasterio.windows import Window

from rsviz.errors import CRSError
from rsviz.raster import RasterData

if TYPE_CHECKING:
    from rsviz.inference.engine import Prediction
    from rsviz.models.api import LoadedModel


def _intersects(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def context_mosaic(center: RasterData, neighbours: Iterable[RasterData], margin: int) -> tuple[RasterData, Window]:
    """The center raster with ``margin`` pixels of its neighbours' imagery around it.

    The mosaic lies on ``center``'s grid (same CRS, pixel size and alignment) extended by ``margin``
    pixels on every side. ``center``'s pixels are copied unchanged; the margin is filled from each
    neighbour that overlaps it, reprojected with bilinear resampling (its valid mask with nearest),
    earlier neighbours first. Margin pixels no neighbour covers are zero and invalid, as the tiler's
    padding would be.

    Args:
        center: Georeferenced ``(bands, H, W)`` raster to predict.
        neighbours: Rasters with the same bands (any CRS); those that do not reach the margin are
            skipped, and ``center`` itself may be among them.
        margin: Context width in ``center`` pixels, >= 0.

    Returns:
        ``(mosaic, window)``: the ``(bands, H + 2 margin, W + 2 margin)`` raster (``center``'s dtype,
        band names and scale) and the window of ``center`` in it.

    Raises:
        CRSError: ``center`` or an overlapping neighbour has no CRS.
        ValueError: ``margin`` is negative, or a neighbour has a different band count.
    """
    from rasterio.warp import Resampling, reproject, transform_bounds

    if margin < 0:
        raise ValueError(f"context margin must be >= 0 pixels; got {margin}")
    if center.crs is None:
        raise CRSError("context inference needs a georeferenced image: the center raster has no CRS")
    bands, (h, w) = center.array.shape[0], center.shape
    transform = center.transform * Affine.translation(-margin, -margin)
    mosaic = RasterData(
        np.zeros((bands, h + 2 * margin, w + 2 * margin), center.array.dtype),
        transform,
        center.crs,
        np.zeros((h + 2 * margin, w + 2 * margin), bool),
        center.band_names,
        center.scale,
    )
    out, valid = mosaic.array, mosaic.valid_mask
    if margin > 0:
        box = mosaic.bounds
        for nb in neighbours:
            if nb is center:
                continue
            if nb.crs is None:
                raise CRSError("context inference needs georeferenced neighbours: a neighbour raster has no CRS")
            if nb.array.shape[0] != bands:
                raise ValueError(f"neighbour has {nb.array.shape[0]} bands, the center raster {bands}")
            if not _intersects(transform_bounds(nb.crs, center.crs, *nb.bounds), box):
                continue
            img = np.zeros_like(out)
            got = np.zeros(out.shape[1:], np.uint8)
            reproject(
                nb.array,
                img,
                src_transform=nb.transform,
                src_crs=nb.crs,
                dst_transform=transform,
                dst_crs=center.crs,
                resampling=Resampling.bilinear,
            )
            reproject(
                nb.valid_mask.astype(np.uint8),
                got,
                src_transform=nb.transform,
                src_crs=nb.crs,
                dst_transform=transform,
                dst_crs=center.crs,
                resampling=Resampling.nearest,
                dst_nodata=0,
            )
            fill = (got > 0) & ~valid
            out[:, fill] = img[:, fill]
            valid |= fill
    out[:, margin : margin + h, margin : margin + w] = center.array
    valid[margin : margin + h, margin : margin + w] = center.valid_mask
    return mosaic, Window(margin, margin, w, h)


def predict_with_context(
    model: LoadedModel | str, center: RasterData, neighbours: Iterable[RasterData], margin: int, **kwargs: Any
) -> Prediction:
    """:func:`rsviz.inference.predict` of ``center`` inside :func:`context_mosaic`, cropped back.

    Args:
        model: A :class:`rsviz.models.api.LoadedModel` or registry name.
        center: Georeferenced ``(bands, H, W)`` raster.
        neighbours: Rasters around it (see :func:`context_mosaic`).
        margin: Context width, pixels (0: ``center`` alone).
        **kwargs: Passed to :func:`rsviz.inference.predict` (tile, overlap, tta, precision...);
            ``window``, ``bounds`` and ``output`` are not accepted.

    Returns:
        :class:`rsviz.inference.Prediction` on ``center``'s grid (heads ``(..., H, W)``, ``valid`` =
        ``center.valid``); ``options["context_px"]`` = ``margin``.

    Raises:
        TypeError: ``window``, ``bounds`` or ``output`` was given.
        CRSError, ValueError: See :func:`context_mosaic`.
    """
    from rsviz.inference.engine import predict

    bad = {"window", "bounds", "output"} & set(kwargs)
    if bad:
        raise TypeError(f"predict_with_context does not take {sorted(bad)}: it predicts the whole center raster")
    mosaic, win = context_mosaic(center, neighbours, margin)
    p = predict(model, mosaic, **kwargs)
    r0, c0, h, w = win.row_off, win.col_off, win.height, win.width
    p.heads = {k: np.ascontiguousarray(v[..., r0 : r0 + h, c0 : c0 + w]) for k, v in p.heads.items()}
    p.transform, p.valid, p.window = center.transform, center.valid_mask.copy(), Window(0, 0, w, h)
    p.options = {**p.options, "context_px": margin}
    return p
