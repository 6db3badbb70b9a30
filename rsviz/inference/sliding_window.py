"""Sliding-window inference over any ``predictor(batch) -> tensor`` callable, blended by an importance map.

The model follows MONAI's ``sliding_window_inference`` (Project MONAI, ``monai/inferers/utils.py``):
overlapping windows, each output weighted by an importance map, overlaps averaged as
``sum(w * y) / sum(w)``. Unlike MONAI, which holds the whole output volume, the raster is streamed:

* :class:`WindowGeometry` places the windows (:func:`~rsviz.inference.tiling.window_starts`: the last
  window of a row or column is shifted inward to end at the edge) and groups window columns into
  panels at most ``panel_cols`` pixels wide (:func:`panel_groups`).
* :class:`SlidingWindowInferer` processes each panel top to bottom in strips (one row of windows):
  a strip is read (``reader.iter_rows``), its windows are batched through the predictor, and the
  weighted outputs accumulate in a ``(C, tile, panel width)`` buffer on the compute device. Rows no
  later window touches are *finalised* -- divided by their weight sum and yielded as
  :class:`BlendedBlock` s -- and the buffer is shifted up.
* The weighted sums of the columns two neighbouring panels share are kept for every row in a
  ``(C + 1, H, seam width)`` carry and added to the next panel's, so blending is exact across panel
  seams: the result does not depend on ``panel_cols``.

Memory is O(C x tile x panel width + C x H x seam width), never O(raster).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from rsviz.errors import RsvizError
from rsviz.inference.tiling import importance_map, round_up, window_starts

#: A predictor: ``(B, bands, th, tw)`` raw batch -> ``(B, C, th, tw)`` float32 outputs on the same device.
PredictorFn = Callable[[torch.Tensor], torch.Tensor]

#: Columns finalised at a time (bounds the per-block temporaries of the consumer).
FINALIZE_COLS = 2048
#: Widest column panel, pixels (see :func:`panel_groups`).
PANEL_COLS = 4096


class InferenceCancelled(RsvizError):
    """Raised when the ``cancel`` callback asks inference to stop."""


class StripReader(Protocol):
    """What :class:`SlidingWindowInferer` reads from (e.g. :class:`rsviz.inference.source.RasterSource`)."""

    def iter_rows(self, spans: Sequence[tuple[int, int, int, int]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """For each ``(r0, r1, c0, c1)`` span in order: ``(bands, r1 - r0, c1 - c0)`` raw data and the
        ``(r1 - r0, c1 - c0)`` bool valid mask."""
        ...


def panel_groups(cols: list[int], tile: int, max_width: int) -> list[tuple[int, int]]:
    """Split window column starts into consecutive panels at most ``max_width`` pixels wide.

    Args:
        cols: Window column offsets (ascending, as from :func:`window_starts`).
        tile: Window width, pixels.
        max_width: Panel width limit, pixels (a panel always holds at least one window).

    Returns:
        ``[(a, b)]``: panel k runs windows ``cols[a:b]``; panels cover every window once.
    """
    groups, a = [], 0
    for j in range(1, len(cols) + 1):
        if j == len(cols) or cols[j] + tile - cols[a] > max_width:
            groups.append((a, j))
            a = j
    return groups


@dataclass(frozen=True)
class WindowGeometry:
    """Where the windows of a ``height x width`` raster lie.

    Attributes:
        height: Raster rows.
        width: Raster columns.
        tile_h: Window rows (the tile, or the raster height rounded up to 32 when smaller).
        tile_w: Window columns (likewise).
        rows: Window row offsets.
        cols: Window column offsets.
        panels: ``[(a, b)]`` column panels over ``cols`` (:func:`panel_groups`).
    """

    height: int
    width: int
    tile_h: int
    tile_w: int
    rows: list[int]
    cols: list[int]
    panels: list[tuple[int, int]]

    @classmethod
    def of(
        cls, height: int, width: int, tile: int, overlap: float, panel_cols: int = PANEL_COLS, multiple: int = 32
    ) -> WindowGeometry:
        """Windows of side ``tile`` overlapping by ``overlap`` (fraction in ``[0, 1)``); a raster smaller than a
        tile gets one window of its size rounded up to ``multiple`` (the input is padded).

        Raises:
            ValueError: ``overlap`` outside ``[0, 1)`` or a non-positive tile.
        """
        th = tile if height >= tile else round_up(height, multiple)
        tw = tile if width >= tile else round_up(width, multiple)
        rows, cols = window_starts(height, th, overlap), window_starts(width, tw, overlap)
        return cls(height, width, th, tw, rows, cols, panel_groups(cols, tw, panel_cols))

    @property
    def total(self) -> int:
        """Number of windows."""
        return len(self.rows) * len(self.cols)

    def seams(self) -> list[int]:
        """Width of the columns each panel shares with the next one, pixels (0 where they do not overlap)."""
        return [self.cols[b - 1] + self.tile_w - self.cols[b] for _, b in self.panels[:-1]]


@dataclass
class BlendedBlock:
    """Finalised rows of one panel: blended outputs over ``rows [r0, r1) x columns [c0, c1)`` of the raster.

    ``acc`` / ``wsum`` are views of the inferer's strip buffer, valid only until the generator that
    yielded the block resumes: call :meth:`average` (and copy ``valid`` if kept) before that.

    Attributes:
        r0, r1, c0, c1: Pixel bounds on the raster (half-open).
        acc: ``(C, r1 - r0, c1 - c0)`` float32 weighted sums.
        wsum: ``(r1 - r0, c1 - c0)`` float32 weight sums (> 0 everywhere in the raster).
        valid: ``(r1 - r0, c1 - c0)`` bool copy, False where no window saw a valid input pixel.
    """

    r0: int
    r1: int
    c0: int
    c1: int
    acc: torch.Tensor
    wsum: torch.Tensor
    valid: np.ndarray

    def average(self, out: torch.Tensor | None = None) -> torch.Tensor:
        """``acc / wsum``: the ``(C, h, w)`` float32 blended output; written into ``out`` (same shape, any
        device) when given, and then ``out`` is returned."""
        den = self.wsum.clamp(min=1e-12)
        if out is None:
            return self.acc / den
        if out.device == self.acc.device:
            return torch.div(self.acc, den, out=out)
        return out.copy_(self.acc / den)


class _SeamCarry:
    """Blended sums of the columns shared by consecutive panels, for every raster row (channel C: weights)."""

    def __init__(self, channels: int, height: int, width: int, device: torch.device) -> None:
        self.channels = channels
        self.data = (
            torch.zeros((channels + 1, height, width), dtype=torch.float32, device=device) if width > 0 else None
        )
        self.width_in = 0  # columns the current panel receives from the previous one

    def add_into(self, acc: torch.Tensor, wsum: torch.Tensor, r0: int, r1: int) -> None:
        """Add the carried sums of rows ``[r0, r1)`` to the first :attr:`width_in` columns of ``acc`` / ``wsum``."""
        ci = self.width_in
        if ci > 0 and self.data is not None:
            acc[:, :, :ci] += self.data[: self.channels, r0:r1, :ci]
            wsum[:, :ci] += self.data[self.channels, r0:r1, :ci]

    def keep(self, acc: torch.Tensor, wsum: torch.Tensor, r0: int, r1: int) -> None:
        """Store ``acc`` / ``wsum`` (``(C, n, co)`` / ``(n, co)``) as the carry of rows ``[r0, r1)``."""
        co = acc.shape[-1]
        if co > 0 and self.data is not None:
            self.data[: self.channels, r0:r1, :co] = acc
            self.data[self.channels, r0:r1, :co] = wsum


class _PanelBuffer:
    """The strip accumulator of one panel: ``(C, th, pw)`` weighted sums, weights and valid flags of rows
    ``[y0, y0 + th)``."""

    def __init__(self, channels: int, th: int, pw: int, device: torch.device) -> None:
        self.acc = torch.zeros((channels, th, pw), dtype=torch.float32, device=device)
        self.wsum = torch.zeros((th, pw), dtype=torch.float32, device=device)
        self.valid = np.zeros((th, pw), bool)
        self.y0 = 0  # raster row of buffer row 0
        self.th = th

    def shift(self, n: int) -> None:
        """Drop the first ``n`` rows (finalised) and zero the ``n`` rows that come free at the bottom."""
        keep = self.th - n
        # shift the strip up by n rows in place: blocks of <= n rows never overlap their source
        for r in range(0, keep, n):
            k = min(n, keep - r)
            self.acc[:, r : r + k].copy_(self.acc[:, r + n : r + n + k])
            self.wsum[r : r + k].copy_(self.wsum[r + n : r + n + k])
        self.acc[:, keep:].zero_()
        self.wsum[keep:].zero_()
        self.valid[:keep] = self.valid[n:]
        self.valid[keep:] = False
        self.y0 += n


def prepare_strip(data: np.ndarray, valid: np.ndarray, fill: np.ndarray, height: int, width: int) -> np.ndarray:
    """Make a read strip ready for batching: a dtype torch has kernels for, nodata set to ``fill``, padded.

    Args:
        data: ``(bands, h, w)`` raw values (any dtype; kept as is where torch supports it, so a uint8 strip
            costs 1x its file size).
        valid: ``(h, w)`` bool, False on nodata.
        fill: ``(bands,)`` raw value put on nodata pixels (the value that normalises to 0).
        height: Rows to pad to (>= h), reflecting (or repeating the edge where the strip is too small).
        width: Columns to pad to (>= w).

    Returns:
        ``(bands, height, width)`` array: uint16 -> int32, uint32/uint64 -> float64, else the input dtype.
    """
    strip = data
    if strip.dtype.kind == "u" and strip.dtype != np.uint8:  # torch has few kernels for uint16/32
        strip = strip.astype(np.int32 if strip.dtype == np.uint16 else np.float64)
    if not valid.all():  # nodata -> per-band training mean (normalises to 0)
        strip = np.where(valid[None], strip, fill.reshape(-1, 1, 1).astype(strip.dtype))
    pad_h, pad_w = height - strip.shape[1], width - strip.shape[2]
    if pad_h or pad_w:
        mode: Literal["reflect", "edge"] = "reflect" if strip.shape[1] > pad_h and strip.shape[2] > pad_w else "edge"
        strip = np.pad(strip, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
    return strip


class SlidingWindowInferer:
    """Blended sliding-window inference of one raster, streamed as :class:`BlendedBlock` s.

    Args:
        predictor: ``(B, bands, th, tw)`` raw batch (the strip's dtype, on ``device``) -> ``(B, C, th, tw)``
            float32 outputs; the returned tensor may be reused by the next call.
        channels: ``C``, channels the predictor returns.
        geometry: Window placement (:meth:`WindowGeometry.of`).
        blend: Importance map, ``gaussian``, ``cosine`` or ``constant`` (:func:`~rsviz.inference.tiling.importance_map`).
        device: Compute device of the predictor and the accumulation buffers.
        fill: ``(bands,)`` raw value put on nodata input pixels.
        batch_size: Windows per predictor call; halved on CUDA out-of-memory (see :attr:`batch_size`).
        cancel: Polled before every batch; True raises :class:`InferenceCancelled`.
        progress: Called as ``progress(windows_done, windows_total)`` after every batch.
        finalize_cols: Widest block yielded, columns.

    Attributes:
        batch_size: Current batch size (lower than asked after a CUDA out-of-memory).
        done: Windows predicted so far.

    Raises:
        ValueError: Unknown ``blend``.
    """

    def __init__(
        self,
        predictor: PredictorFn,
        channels: int,
        geometry: WindowGeometry,
        *,
        blend: str = "gaussian",
        device: torch.device | None = None,
        fill: np.ndarray | None = None,
        batch_size: int = 4,
        cancel: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
        finalize_cols: int = FINALIZE_COLS,
    ) -> None:
        self.predictor, self.channels, self.geometry = predictor, channels, geometry
        self.device = device or torch.device("cpu")
        g = geometry
        self.wmap = torch.from_numpy(importance_map((g.tile_h, g.tile_w), blend)).to(self.device)
        self.fill = fill
        self.batch_size = max(1, int(batch_size))
        self.cancel, self.progress = cancel, progress
        self.finalize_cols = finalize_cols
        self.done = 0

    def run(self, reader: StripReader) -> Generator[BlendedBlock, None, None]:
        """Predict every window; yield the finalised blocks.

        Every raster pixel is in exactly one yielded block; blocks come panel by panel, top to bottom
        within a panel, left to right within a row band.

        Raises:
            InferenceCancelled: ``cancel()`` returned True.
            torch.cuda.OutOfMemoryError: Out of memory at batch size 1.
        """
        g = self.geometry
        seams = g.seams()
        carry = _SeamCarry(self.channels, g.height, max(seams, default=0), self.device)
        for a, b in g.panels:
            yield from self._panel(reader, a, b, carry)

    def _panel(self, reader: StripReader, a: int, b: int, carry: _SeamCarry) -> Iterator[BlendedBlock]:
        """Windows ``cols[a:b]`` over all rows; finalises columns ``[cols[a], cols[b])`` (``W`` for the last)."""
        g = self.geometry
        th, tw, cols, H, W = g.tile_h, g.tile_w, g.cols, g.height, g.width
        x_lo = cols[a]
        x_hi = min(cols[b - 1] + tw, W)
        fin = (cols[b] if b < len(cols) else W) - x_lo  # finalised width
        co = x_hi - x_lo - fin  # columns carried into the next panel
        pw = max(cols[b - 1] + tw - x_lo, tw)
        buf = _PanelBuffer(self.channels, th, pw, self.device)
        xs = [c - x_lo for c in cols[a:b]]
        spans = [(y, min(y + th, H), x_lo, x_hi) for y in g.rows]
        for y, (data, valid) in zip(g.rows, reader.iter_rows(spans), strict=True):
            yield from self._finalize(buf, min(y, H) - buf.y0, x_lo, fin, co, carry)
            y1 = min(y + th, H)
            buf.valid[y - buf.y0 : y1 - buf.y0, : x_hi - x_lo] |= valid
            fill = self.fill if self.fill is not None else np.zeros(data.shape[0], np.float32)
            self._predict_strip(prepare_strip(data, valid, fill, th, pw), xs, buf)
        yield from self._finalize(buf, H - buf.y0, x_lo, fin, co, carry)
        carry.width_in = co

    def _finalize(
        self, buf: _PanelBuffer, n_rows: int, x_lo: int, fin: int, co: int, carry: _SeamCarry
    ) -> Iterator[BlendedBlock]:
        """Yield the first ``n_rows`` rows of the buffer (columns ``[0, fin)``), then shift them out."""
        if n_rows <= 0:
            return
        r0, r1 = buf.y0, buf.y0 + n_rows
        acc, wsum = buf.acc[:, :n_rows], buf.wsum[:n_rows]
        carry.add_into(acc, wsum, r0, r1)  # what the previous panel's windows left in the shared columns
        carry.keep(acc[:, :, fin : fin + co], wsum[:, fin : fin + co], r0, r1)
        for c0 in range(0, fin, self.finalize_cols):  # column blocks bound the consumer's temporaries
            c1 = min(c0 + self.finalize_cols, fin)
            yield BlendedBlock(
                r0, r1, x_lo + c0, x_lo + c1, acc[:, :, c0:c1], wsum[:, c0:c1], buf.valid[:n_rows, c0:c1].copy()
            )
        buf.shift(n_rows)

    def _predict_strip(self, strip: np.ndarray, xs: list[int], buf: _PanelBuffer) -> None:
        """Run the windows at column offsets ``xs`` of a prepared strip and accumulate them into ``buf``."""
        tw, total, dev = self.geometry.tile_w, self.geometry.total, self.device
        i = 0
        while i < len(xs):
            if self.cancel is not None and self.cancel():
                raise InferenceCancelled("inference cancelled; nothing was written")
            bs = self.batch_size
            # raw dtype (uint8 for most imagery): 4x less to copy (and to send to a GPU) than float32
            batch = torch.from_numpy(np.stack([strip[:, :, x : x + tw] for x in xs[i : i + bs]]))
            try:
                if dev.type == "cuda":
                    batch = batch.pin_memory().to(dev, non_blocking=True)
                else:
                    batch = batch.to(dev)
                out = self.predictor(batch)
            except torch.cuda.OutOfMemoryError:
                if bs == 1:
                    raise
                torch.cuda.empty_cache()
                self.batch_size = max(1, bs // 2)
                warnings.warn(
                    f"CUDA out of memory; batch size halved to {self.batch_size}", RuntimeWarning, stacklevel=4
                )
                continue
            for j in range(out.shape[0]):
                x = xs[i + j]
                buf.acc[:, :, x : x + tw].addcmul_(out[j], self.wmap)
                buf.wsum[:, x : x + tw] += self.wmap
            i += out.shape[0]
            self.done += out.shape[0]
            if self.progress is not None:
                self.progress(self.done, total)


class _ArrayReader:
    """:class:`StripReader` of an in-memory ``(bands, H, W)`` array, all pixels valid unless a mask is given."""

    def __init__(self, image: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.image = image
        self.valid = np.ones(image.shape[1:], bool) if valid is None else valid

    def iter_rows(self, spans: Sequence[tuple[int, int, int, int]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for r0, r1, c0, c1 in spans:
            yield self.image[:, r0:r1, c0:c1], self.valid[r0:r1, c0:c1]


def sliding_window_inference(
    image: np.ndarray,
    predictor: PredictorFn,
    channels: int,
    tile: int,
    overlap: float = 0.25,
    *,
    blend: str = "gaussian",
    batch_size: int = 4,
    device: torch.device | None = None,
    panel_cols: int = PANEL_COLS,
    valid: np.ndarray | None = None,
) -> torch.Tensor:
    """Blend a predictor over a whole in-memory image (MONAI's ``sliding_window_inference`` for 2-D rasters).

    Args:
        image: ``(bands, H, W)`` raw values.
        predictor: ``(B, bands, th, tw)`` -> ``(B, channels, th, tw)`` float32 callable.
        channels: Output channels of ``predictor``.
        tile: Window side, pixels (a multiple of 32 when the image is smaller than a tile: it is padded to one).
        overlap: Window overlap fraction in ``[0, 1)``.
        blend: ``gaussian``, ``cosine`` or ``constant``.
        batch_size: Windows per predictor call.
        device: Compute device (CPU by default).
        panel_cols: Widest column panel, pixels.
        valid: ``(H, W)`` bool mask (nodata pixels become 0 before prediction); all valid by default.

    Returns:
        ``(channels, H, W)`` float32 CPU tensor.
    """
    _, h, w = image.shape
    geom = WindowGeometry.of(h, w, tile, overlap, panel_cols)
    inferer = SlidingWindowInferer(predictor, channels, geom, blend=blend, device=device, batch_size=batch_size)
    out = torch.empty((channels, h, w), dtype=torch.float32)
    for blk in inferer.run(_ArrayReader(image, valid)):
        blk.average(out[:, blk.r0 : blk.r1, blk.c0 : blk.c1])
    return out
