"""Tiled, blended, streaming inference for every dense head of a bundled model.

:func:`predict` runs a model over an in-memory array or a raster file (optionally a
pixel window or a geographic extent of it) with overlapping sliding windows blended
by an importance map (MONAI ``sliding_window_inference`` is the reference). It is
assembled from small parts:

* :class:`rsviz.inference.source.RasterSource` reads the region lazily, strip by strip;
* :class:`rsviz.inference.predictor.Predictor` is the network: raw tiles -> activated outputs;
* :class:`rsviz.inference.sliding_window.SlidingWindowInferer` places the windows, batches them
  through the predictor, blends them (exactly across the seams of column panels, rasters wider
  than :data:`PANEL_COLS` are processed in panels) and yields finalised blocks;
* a :class:`rsviz.inference.sinks.Sink` stores the blocks: :class:`~rsviz.inference.sinks.MemorySink`
  or :class:`~rsviz.inference.sinks.COGSink` (a GeoTIFF that becomes a COG, written in a thread).

Memory is O(tile x panel width + raster height x seam width) for files, never O(raster).

Outputs (all on the input grid, ``H x W`` = the window read):

* ``probs``   ``(C, H, W)`` float32: class probabilities (sigmoid of the positive class
  for binary heads, so C = 1; softmax for multiclass).
* ``classes`` ``(H, W)`` uint8: class ids (binary: ``probs >= threshold``); 255 on nodata.
* ``edge``    ``(H, W)`` float32 boundary probability (edge head).
* ``recon``   ``(bands, H, W)`` float32 reconstruction in input units (reconstruction head).
* ``height``  ``(H, W)`` float32 in the card's units (height head).
* ``entropy`` ``(H, W)`` float32 predictive entropy of ``probs`` in nats
  (binary: ``-p ln p - (1-p) ln(1-p)``; multiclass: ``-sum p ln p``).
* ``tta_var`` ``(H, W)`` float32 variance of the primary probabilities across test-time
  augmentations (mean over classes); only with ``tta=True``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from rsviz.errors import BandCountError, ModelInputError
from rsviz.geo import gsd_metres
from rsviz.inference.cogwriter import check_compression
from rsviz.inference.precision import cpu_bf16_supported, resolve_precision
from rsviz.inference.predictor import Predictor
from rsviz.inference.sinks import COGSink, MemorySink, Sink, output_band_layout
from rsviz.inference.sliding_window import (
    FINALIZE_COLS,
    BlendedBlock,
    InferenceCancelled,
    SlidingWindowInferer,
    WindowGeometry,
    panel_groups,
)
from rsviz.inference.source import RasterSource
from rsviz.models.api import LoadedModel, load_model
from rsviz.models.card import ModelCard
from rsviz.raster import RasterData
from rsviz.types import NODATA_CLASS, BBox, ProgressCallback

__all__ = [
    "predict",
    "Prediction",
    "check_input",
    "check_value_range",
    "output_band_layout",
    "InferenceCancelled",
    "GSDWarning",
    "resolve_precision",
    "cpu_bf16_supported",
    "NODATA_CLASS",
    "panel_groups",
    "PANEL_COLS",
    "FINALIZE_COLS",
]

#: Widest column panel, pixels: wider rasters are processed in panels of window columns, so the
#: strip buffers are O(tile x panel) rather than O(tile x width) (see :func:`panel_groups`). Read
#: by :func:`predict` at every call.
PANEL_COLS = 4096


class GSDWarning(UserWarning):
    """The input's GSD is far outside the range the model was trained on."""


@dataclass
class Prediction:
    """Outputs of :func:`predict` on the grid of the window that was read.

    Attributes:
        heads: Output name -> array (see module docstring for names, shapes, units).
        transform: Affine transform of the outputs.
        crs: CRS (None for non-georeferenced inputs).
        valid: ``(H, W)`` bool, False on input nodata.
        window: Pixel window of the source that was predicted.
        model: Model name.
        options: Tile, overlap, blend, TTA, batch size and device used.
        stats: Timing: tiles, seconds, MPx/s.
    """

    heads: dict[str, np.ndarray]
    transform: Affine
    crs: CRS | None
    valid: np.ndarray
    window: Window
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return self.valid.shape  # type: ignore[return-value, unused-ignore]


def check_input(
    card: ModelCard,
    count: int,
    dtype: np.dtype[Any] | type | str,
    transform: Affine,
    crs: CRS | None,
    shape: tuple[int, int],
    sample: np.ndarray | None = None,
    value_range: tuple[float, float] | None = None,
) -> list[str]:
    """Check an input against the model card.

    Args:
        card: The model card.
        count: Bands of the input.
        dtype: Its dtype.
        transform: Its affine transform.
        crs: Its CRS (None: no GSD check).
        shape: ``(height, width)``, pixels.
        sample: Some of its pixels (``(bands, h, w)``), to check the value range when ``value_range`` is None.
        value_range: ``(min, max)`` of the valid pixels of the whole input (see
            :meth:`RasterSource.value_range`), checked with :func:`check_value_range`.

    Raises:
        BandCountError: Band count differs from the card.
        ModelInputError: Values outside the card's dtype scale (e.g. 16-bit data for an 8-bit model).

    Returns:
        Warning messages (also issued as :class:`GSDWarning`) when the GSD is more than 4x
        outside the card's range.
    """
    n = card.in_channels
    if count != n:
        raise BandCountError(
            f"{card.name} expects {n} bands ({', '.join(card.input.bands)}) but the image has {count}; "
            f"choose an image with those bands or a model for {count}-band input"
        )
    if value_range is None and sample is not None and sample.size:
        finite = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
        value_range = (float(finite.min()), float(finite.max())) if finite.size else None
    if value_range is not None:
        check_value_range(card, np.dtype(dtype), value_range)
    msgs = []
    if crs is not None:
        g = gsd_metres(transform, crs, *shape)
        lo, hi = card.input.gsd_range_m
        if g < lo / 4 or g > hi * 4:
            msgs.append(
                f"image GSD {g:.2f} m is far outside {card.name}'s training range {lo:g}-{hi:g} m; "
                "expect degraded predictions (resample the image closer to that GSD)"
            )
            warnings.warn(msgs[-1], GSDWarning, stacklevel=3)
    return msgs


def check_value_range(card: ModelCard, dtype: np.dtype[Any], value_range: tuple[float, float]) -> None:
    """Refuse input values the card's scaling would silently misread.

    The card's ``input.dtype`` and ``input.scale`` say what raw values mean (0-255 for 8-bit imagery,
    reflectance x 10000 for Sentinel-2). An input is refused when its values leave that dtype's range
    (12-bit or 16-bit data for an 8-bit model, negative values), when float values lie in 0-1 although
    the card divides by a scale > 1 (imagery already scaled), or when 8-bit imagery is given to a model
    of a wider dtype.

    Args:
        card: The model card.
        dtype: The input's dtype.
        value_range: ``(min, max)`` of its valid (finite, not nodata) pixels, all bands.

    Raises:
        ModelInputError: Saying the range found and the range expected.
    """
    lo, hi = value_range
    want = np.dtype(card.input.dtype)
    scale = float(card.input.scale)
    if want.kind in "ui":
        info = np.iinfo(want)
        expected = f"{card.input.dtype} values {info.min}-{info.max}"
        if scale > 1:
            expected += f" (divided by {scale:g})"
        found = f"the image ({dtype}) has values {lo:g} to {hi:g}"
        if hi > info.max or lo < info.min:
            fix = (
                "rescale it to 8-bit (e.g. gdal_translate -scale -ot Byte) first"
                if want == np.uint8
                else f"convert it to {card.input.dtype} in the units the card states"
            )
            raise ModelInputError(f"{card.name} expects {expected} but {found}; {fix}")
        if dtype.kind == "f" and scale > 1 and 0 < hi <= 1.0:
            raise ModelInputError(
                f"{card.name} expects {expected} but {found}, which looks already scaled to 0-1; "
                f"multiply it by {scale:g} (or give the original {card.input.dtype} file)"
            )
        if dtype == np.uint8 and want.itemsize > 1:
            raise ModelInputError(
                f"{card.name} expects {expected} but {found} as 8-bit imagery; give the original "
                f"{card.input.dtype} data (e.g. Sentinel-2 L2A reflectance x 10000), not a display stretch"
            )


def split_heads(predictor: Predictor, out: torch.Tensor, valid: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Cut a blended ``(channels, h, w)`` float32 block into named NumPy heads; derive classes and entropy.

    Class ids and entropy are computed with torch (all intra-op threads, on the compute device)
    before the block is moved to host memory. Nodata pixels (``valid`` False, ``(h, w)`` bool) get
    class 255 and zero probabilities and entropy; the arrays are views of ``out`` where it is on the CPU.
    """
    from rsviz.inference.sinks import name_channels

    derived: dict[str, torch.Tensor] = {}
    if predictor.seg_kind is not None:
        p = out[: predictor.heads["seg"].channels]
        if predictor.seg_kind == "binary":
            derived["classes"] = (p[0] >= threshold).to(torch.uint8)
            derived["entropy"] = torch.special.entr(p[0]).add_(torch.special.entr(1 - p[0]))
        else:
            derived["classes"] = p.argmax(0).to(torch.uint8)
            derived["entropy"] = torch.special.entr(p).sum(0)
    heads = name_channels(predictor.layout, out.cpu().numpy())
    heads.update({k: v.cpu().numpy() for k, v in derived.items()})
    if "probs" in heads and not valid.all():  # these are this call's own arrays: zero nodata in place
        heads["classes"][~valid] = NODATA_CLASS
        heads["entropy"][~valid] = 0
        heads["probs"][:, ~valid] = 0
    return heads


def _store(block: BlendedBlock, sink: Sink, predictor: Predictor, threshold: float) -> None:
    """Average one finalised block (into the sink's own storage where it offers it) and write it."""
    window = Window(block.c0, block.r0, block.c1 - block.c0, block.r1 - block.r0)
    out = block.average(sink.channels_out(window))
    sink.write(window, split_heads(predictor, out, block.valid, threshold), block.valid)


def _predict_resampled(
    lm: LoadedModel,
    vrt: str,
    native: tuple[Window, Affine, CRS | None],
    gsds: tuple[float, float],
    kw: dict[str, Any],
    output: str | os.PathLike[str] | None,
    cog: bool,
    compress: str,
) -> Prediction:
    """:func:`predict` of ``vrt`` (the source at the model's GSD), its outputs brought back onto ``native``."""
    import shutil
    import tempfile

    from rsviz.inference.gsd import resample_file, resample_heads

    window, transform, crs = native
    H, W = int(window.height), int(window.width)
    g, t = gsds
    if output is None:
        inner = predict(lm, vrt, match_gsd=False, **kw)
        heads, valid = resample_heads(inner.heads, inner.valid, (H, W))
    else:
        out = Path(output)
        scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.gsd-", dir=out.parent))
        try:
            inner = predict(lm, vrt, match_gsd=False, output=scratch / "inner.tif", cog=False, compress="none", **kw)
            final = scratch / "final" / out.name
            final.parent.mkdir()
            resample_file(scratch / "inner.tif", final, H, W, transform, cog, compress)
            for f in sorted(final.parent.iterdir()):  # the COG, then its height sidecar
                os.replace(f, out.with_name(f.name))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        heads, valid = {}, inner.valid
    rows, cols = int(inner.window.height), int(inner.window.width)
    return Prediction(
        heads=heads,
        transform=transform,
        crs=crs,
        valid=valid,
        window=window,
        model=inner.model,
        options={**inner.options, "gsd": f"{g:.3f} m -> {t:.3f} m", "resampled_px": [rows, cols]},
        stats=inner.stats,
    )


def predict(
    model: LoadedModel | str,
    source: str | os.PathLike[str] | np.ndarray | RasterData,
    *,
    window: Window | None = None,
    bounds: BBox | None = None,
    bounds_crs: CRS | str | int = "EPSG:4326",
    tile: int | None = None,
    overlap: float | None = None,
    blend: str = "gaussian",
    batch_size: int = 4,
    tta: bool | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    threshold: float | None = None,
    output: str | os.PathLike[str] | None = None,
    cog: bool = True,
    compress: str = "deflate",
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    match_gsd: bool = True,
) -> Prediction:
    """Predict every dense head of a model over a raster, tile by tile.

    Args:
        model: A :class:`LoadedModel` or a registry name (loaded on ``device``).
        source: Raster path (GeoTIFF/COG/PNG...), ``(bands, H, W)`` array, or :class:`RasterData`.
        window: Pixel window of the source to predict (clipped to the raster).
        bounds: Geographic extent ``(west, south, east, north)`` in ``bounds_crs`` (EPSG:4326,
            as drawn on the map, by default); the raster may be in any CRS.
        bounds_crs: CRS of ``bounds``.
        tile: Window side in pixels (multiple of 32); the card's ``tile_size`` by default.
        overlap: Window overlap fraction in ``[0, 1)``; the card's ``overlap`` by default.
        blend: Importance map: ``gaussian``, ``cosine`` or ``constant``.
        batch_size: Windows per forward pass; halved automatically on CUDA out-of-memory.
        tta: Average over flips and 90° rotations (8 transforms on square tiles) and return
            ``tta_var``; the card's ``input.tta`` by default.
        device: Device for a model given by name (``auto`` by default).
        precision: ``auto`` (bf16 autocast on GPUs and on CPUs with native bf16, else fp32),
            ``fp32``, ``bf16`` or ``fp16``; accumulation and outputs are always fp32.
        threshold: Probability threshold of binary heads; by default the card's ``extra["threshold"]`` (a
            threshold its descriptor states, e.g. Deepness ``seg_thresh``), else 0.5.
        output: If given, write the outputs to this GeoTIFF (COG if ``cog``) window by window
            instead of keeping them in memory (see :func:`output_band_layout`); the returned
            :class:`Prediction` then has empty ``heads``.
        cog: Convert ``output`` to a Cloud Optimized GeoTIFF.
        compress: Output compression, a key of :data:`rsviz.inference.cogwriter.COMPRESSION` (``deflate``, ``zstd``, ``lzw``,
            ``none``).
        progress: Called as ``progress(tiles_done, tiles_total)``.
        cancel: Polled between batches; returning True raises :class:`InferenceCancelled`.
        match_gsd: When the source is a georeferenced file whose GSD lies outside the card's
            ``input.gsd_range_m`` (by more than :data:`rsviz.inference.gsd.GSD_TOLERANCE`), predict it
            resampled (bilinear) to the centre of that range and bring the outputs back onto the source's grid
            (nearest for class ids; see :mod:`rsviz.inference.gsd`). ``options["gsd"]`` then says
            ``"<scene> m -> <model> m"``. False predicts at the source's own GSD (a :class:`GSDWarning` when
            it is more than 4x outside the range).

    Returns:
        :class:`Prediction` on the grid of the window read.

    Raises:
        BandCountError, ModelInputError: Input does not match the model card, unknown ``compress``, a tile that
            is not a positive multiple of 32, or an overlap outside [0, 1).
        ExtentError: ``bounds`` do not overlap the raster.
        RasterReadError: Unreadable source.
        InferenceCancelled: ``cancel()`` returned True.
    """
    check_compression(compress)
    lm = model if isinstance(model, LoadedModel) else load_model(model, device or "auto")
    card = lm.card
    if not any(h.kind != "multilabel" for h in card.heads.values()):
        raise ModelInputError(
            f"{card.name} classifies whole patches and has no per-pixel output; use "
            "rsviz.inference.classify.classify_patch (the app's Scene classification page)"
        )
    tile = int(tile or card.input.tile_size)
    threshold = float(card.extra.get("threshold", 0.5)) if threshold is None else float(threshold)
    overlap = card.input.overlap if overlap is None else float(overlap)
    tta = bool(card.input.tta) if tta is None else bool(tta)
    if tile <= 0 or tile % 32:
        raise ModelInputError(f"tile must be a positive multiple of 32 pixels, got {tile}")
    if not 0.0 <= overlap < 1.0:  # also refuses NaN
        raise ModelInputError(f"overlap must be a fraction in [0, 1) of the tile, got {overlap}; e.g. 0.25")
    with ExitStack() as stack:
        # bound GDAL's block cache (default 5 % of RAM) so streaming stays O(tile x width)
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=int(os.environ.get("RSVIZ_GDAL_CACHEMAX_MB", "128"))))
        src = stack.enter_context(RasterSource(source, window, bounds, bounds_crs))
        H, W = src.height, src.width
        if match_gsd and src.path is not None and src.crs is not None and "?" not in src.path:
            from rsviz.inference.gsd import resampled_path, resampled_shape, target_gsd

            g = gsd_metres(src.transform, src.crs, H, W)
            t = target_gsd(g, card.input.gsd_range_m)
            if t is not None:
                shape = resampled_shape(H, W, g, t)
                vrt = resampled_path(src.path, src.window, shape)
                native = (src.window, src.transform, src.crs)
                src.close()
                return _predict_resampled(
                    lm,
                    vrt,
                    native,
                    (g, t),
                    dict(
                        tile=tile,
                        overlap=overlap,
                        blend=blend,
                        batch_size=batch_size,
                        tta=tta,
                        precision=precision,
                        threshold=threshold,
                        progress=progress,
                        cancel=cancel,
                    ),
                    output,
                    cog,
                    compress,
                )
        check_input(card, src.count, src.dtype, src.transform, src.crs, (H, W), value_range=src.value_range())
        predictor = Predictor(lm, tta, precision)
        geom = WindowGeometry.of(H, W, tile, overlap, PANEL_COLS)
        inferer = SlidingWindowInferer(
            predictor,
            predictor.channels,
            geom,
            blend=blend,
            device=lm.device,
            fill=predictor.norm.fill_value(),
            batch_size=batch_size,
            cancel=cancel,
            progress=progress,
            finalize_cols=FINALIZE_COLS,
        )
        sink: Sink = (
            COGSink(Path(output), card, tta, H, W, src.transform, src.crs, cog, compress)
            if output is not None
            else MemorySink(H, W, predictor.layout)
        )
        # failed or cancelled runs leave no files: the sink is aborted unless it was closed
        stack.callback(sink.abort)
        t0 = time.perf_counter()
        # closed before the source, so no read is in flight when the file closes
        with closing(inferer.run(src)) as blocks:
            for block in blocks:
                _store(block, sink, predictor, threshold)
        secs = time.perf_counter() - t0  # compute and streaming; the final COG step is not counted
        result = sink.close()
        pred = Prediction(
            heads=result.heads,
            transform=src.transform,
            crs=src.crs,
            valid=result.valid,
            window=src.window,
            model=card.name,
            options={
                "tile": [geom.tile_h, geom.tile_w],
                "overlap": overlap,
                "blend": blend,
                "tta": tta,
                "batch_size": inferer.batch_size,
                "device": str(lm.device),
                "threshold": threshold,
                "precision": str(predictor.amp_dtype or torch.float32).replace("torch.", ""),
            },
            stats={
                "tiles": geom.total,
                "seconds": secs,
                "mpx_per_s": H * W / 1e6 / max(secs, 1e-9),
                "files": [str(f) for f in result.files],
            },
        )
    return pred
