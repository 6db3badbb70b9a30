"""Where :func:`rsviz.inference.predict` puts its outputs: a :class:`Sink` receives finalised blocks.

A sink is written block by block, each raster pixel exactly once, in no guaranteed order
(:class:`rsviz.inference.sliding_window.SlidingWindowInferer` yields blocks panel by panel). It is
then either closed (the run succeeded) or aborted (it failed or was cancelled: nothing is left on
disk). Two implementations:

* :class:`MemorySink`: ``(C, H, W)`` float32 stacks in host memory (``Prediction.heads``).
* :class:`COGSink`: a uint8 GeoTIFF / Cloud Optimized GeoTIFF in the layout of
  :func:`output_band_layout` (+ a float32 ``<stem>_height.tif`` for height heads), streamed through
  :class:`rsviz.inference.cogwriter.StreamedCOG`. Quantising and writing run in a writer thread fed
  by a bounded queue, so they overlap the network's compute and memory stays O(tile x width).

Head arrays handed to :meth:`Sink.write` (``(h, w)`` = the block):

* ``probs``   ``(C, h, w)`` float32 in ``[0, 1]``; ``classes`` ``(h, w)`` uint8 (255 = nodata);
  ``entropy`` ``(h, w)`` float32 nats; ``edge`` / ``height`` / ``tta_var`` ``(h, w)`` float32;
  ``recon`` ``(bands, h, w)`` float32 in input units -- as the model has them.
"""

from __future__ import annotations

import math
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from rsviz.errors import OutputPathError
from rsviz.inference.cogwriter import StreamedCOG
from rsviz.models.card import ModelCard

Heads = Mapping[str, np.ndarray]


@dataclass
class SinkResult:
    """What a closed sink holds.

    Attributes:
        heads: Output name -> full ``(…, H, W)`` array (empty for file sinks).
        valid: ``(H, W)`` bool, False on nodata (``(0, 0)`` for file sinks).
        files: Files written (empty for in-memory sinks).
    """

    heads: dict[str, np.ndarray] = field(default_factory=dict)
    valid: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    files: list[Path] = field(default_factory=list)


@runtime_checkable
class Sink(Protocol):
    """Receiver of the finalised blocks of a prediction.

    ``window`` arguments are :class:`rasterio.windows.Window` s (``col_off, row_off, width, height``,
    integers) on the output grid (the region predicted, origin at its top-left pixel).
    """

    def channels_out(self, window: Window) -> torch.Tensor | None:
        """Where the blended ``(channels, height, width)`` float32 stack of ``window`` may be written
        directly (a view of the sink's own storage), or None: the caller allocates it."""
        ...

    def write(self, window: Window, heads: Heads, valid: np.ndarray) -> None:
        """Store the heads of one block (see the module docstring for names, shapes, dtypes) and its
        ``(height, width)`` bool valid mask. The sink may keep the arrays: the caller does not reuse them.

        Raises:
            OSError, rasterio.errors.RasterioIOError: Writing failed (possibly an earlier, asynchronous write).
        """
        ...

    def close(self) -> SinkResult:
        """Finish after the last block: flush, write the final files. Returns what the sink holds."""
        ...

    def abort(self) -> None:
        """Give up (the run failed or was cancelled): release everything and delete any file written.
        Idempotent; harmless after :meth:`close`."""
        ...


def name_channels(layout: list[tuple[str, int]], arr: np.ndarray) -> dict[str, np.ndarray]:
    """Named views of a ``(channels, h, w)`` stack: ``probs`` for the primary head, single-channel heads
    (edge, height, tta_var) as ``(h, w)``, the rest (recon) as ``(n, h, w)``."""
    heads: dict[str, np.ndarray] = {}
    c = 0
    for name, n in layout:
        v = arr[c : c + n]
        c += n
        if name == "seg":
            heads["probs"] = v
        elif name in ("edge", "height", "tta_var"):
            heads[name] = v[0]
        else:
            heads[name] = v
    return heads


class MemorySink:
    """Holds the outputs in memory. The blended channels live in one ``(channels, H, W)`` float32 stack
    that the engine divides into directly (:meth:`channels_out`), so they are never copied again; the
    derived class ids and entropy are copied in by :meth:`write`.

    Args:
        height: Rows of the output.
        width: Columns.
        layout: ``[(head name, channels)]`` of the stack (:attr:`rsviz.inference.predictor.Predictor.layout`).
    """

    def __init__(self, height: int, width: int, layout: list[tuple[str, int]]) -> None:
        self.h, self.w, self.layout = height, width, layout
        self.stack = torch.empty((sum(n for _, n in layout), height, width), dtype=torch.float32)
        self.derived: dict[str, np.ndarray] = {}
        self.valid = np.zeros((height, width), bool)

    def channels_out(self, window: Window) -> torch.Tensor:
        """The stack's ``(channels, height, width)`` view of ``window``."""
        r0, c0 = int(window.row_off), int(window.col_off)
        return self.stack[:, r0 : r0 + int(window.height), c0 : c0 + int(window.width)]

    def write(self, window: Window, heads: Heads, valid: np.ndarray) -> None:
        """Copy the derived heads (``classes``, ``entropy``) and ``valid`` of ``window``; the channel heads
        are already in the stack (:meth:`channels_out`)."""
        r0, c0 = int(window.row_off), int(window.col_off)
        r1, c1 = r0 + int(window.height), c0 + int(window.width)
        for k in ("classes", "entropy"):
            if k in heads:
                if k not in self.derived:
                    self.derived[k] = np.zeros((self.h, self.w), heads[k].dtype)
                self.derived[k][r0:r1, c0:c1] = heads[k]
        self.valid[r0:r1, c0:c1] = valid

    @property
    def heads(self) -> dict[str, np.ndarray]:
        """Output name -> ``(…, H, W)`` array (views of the stack plus the derived heads)."""
        return {**name_channels(self.layout, self.stack.numpy()), **self.derived}

    def close(self) -> SinkResult:
        """The heads and valid mask held."""
        return SinkResult(heads=self.heads, valid=self.valid)

    def abort(self) -> None:
        """Nothing to release (memory is freed with the sink)."""


def output_band_layout(card: ModelCard, tta: bool) -> list[tuple[str, str]]:
    """Bands of the uint8 GeoTIFF/COG written by :func:`predict` (``output=``).

    Band 1 is always the class id (255 = nodata). Then, as the model has them:
    ``prob:<class>`` (probability x 255), ``edge`` (x 255), ``entropy`` (x 255 / ln C, C >= 2),
    ``tta_var`` (x 1020, i.e. variance 0.25 -> 255), ``recon:<band>`` (input units, clipped to 0-255).
    Height heads go to a float32 sidecar ``<output stem>_height.tif``.

    Returns:
        ``[(name, description)]`` in band order.
    """
    bands = [("classes", "class id (255 = nodata)")]
    seg = card.heads.get("seg")
    if seg is not None:
        names = [c.name for c in card.classes] if seg.kind == "multiclass" and card.classes else None
        if seg.kind == "binary":
            pos = card.classes[1].name if len(card.classes) > 1 else "positive"
            bands.append((f"prob:{pos}", f"probability of {pos} x 255"))
        else:
            for i in range(seg.channels):
                n = names[i] if names and i < len(names) else str(i)
                bands.append((f"prob:{n}", f"probability of {n} x 255"))
        bands.append(("entropy", "predictive entropy / ln(C) x 255 (C = 2 for binary)"))
    if "edge" in card.heads:
        bands.append(("edge", "boundary probability x 255"))
    if tta and seg is not None:
        bands.append(("tta_var", "TTA variance x 1020 (0.25 -> 255)"))
    if "recon" in card.heads:
        for b in card.input.bands:
            bands.append((f"recon:{b}", f"reconstructed {b} (input units, clipped 0-255)"))
    return bands


def _q(x: np.ndarray) -> np.ndarray:
    """``[0, 1]`` float -> uint8 ``round(x * 255)``, clipped."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


_Job = tuple[Window, Heads, np.ndarray]


def scratch_dir(target: Path) -> Path:
    """A new scratch folder beside ``target`` (same file system, so the final rename is atomic).

    Raises:
        OutputPathError: The target's folder is missing or not writable, naming it.
    """
    parent = target.parent
    if not parent.is_dir():
        raise OutputPathError(f"output folder {parent} does not exist; create it first (mkdir -p {parent})")
    try:
        return Path(tempfile.mkdtemp(prefix=".rsviz-", dir=parent))
    except OSError as exc:
        raise OutputPathError(
            f"cannot write into output folder {parent} ({exc.strerror}); choose a folder you can write to"
        ) from exc


class COGSink:
    """Writes finalised blocks to a uint8 GeoTIFF/COG (+ float32 height sidecar) through :class:`StreamedCOG`
    (overview levels decimated while streaming, so the COG step at the end only compresses).

    :meth:`write` hands each block to a writer thread through a queue of at most ``queue_blocks`` blocks
    (the caller blocks when it is full, so memory stays bounded); the thread quantises the heads to
    bytes and writes them, overlapped with the caller's compute. Errors of the thread are raised by
    the next :meth:`write` or by :meth:`close`.

    Args:
        path: Output GeoTIFF path (its folder must exist; scratch files go to a temporary folder there).
        card: Model card (band layout, see :func:`output_band_layout`).
        tta: Whether the heads have ``tta_var``.
        height: Rows of the output.
        width: Columns.
        transform: Pixel-to-CRS transform of the output.
        crs: CRS, or None.
        cog: Make a Cloud Optimized GeoTIFF (else a tiled GeoTIFF).
        compress: A key of :data:`rsviz.inference.cogwriter.COMPRESSION`.
        queue_blocks: Blocks queued ahead of the writer thread (>= 1); 0 writes synchronously.
        threads: Threads GDAL compresses the final COG with (``None``: all cores).
    """

    def __init__(
        self,
        path: Path,
        card: ModelCard,
        tta: bool,
        height: int,
        width: int,
        transform: Affine,
        crs: CRS | None,
        cog: bool,
        compress: str = "deflate",
        *,
        queue_blocks: int = 2,
        threads: int | None = None,
    ) -> None:
        self.path, self.card, self.cog, self.compress = Path(path), card, cog, compress
        self.threads = threads or os.cpu_count() or 1
        self.layout = output_band_layout(card, tta)
        # channel of each prob:/recon: band within its head, computed once rather than per write
        self.index: dict[str, int] = {}
        for prefix in ("prob:", "recon:"):
            names = [n for n, _ in self.layout if n.startswith(prefix)]
            self.index.update({n: i for i, n in enumerate(names)})
        self.tmpdir = scratch_dir(self.path)
        try:
            own = "none" if cog else compress  # a COG is compressed by the final copy
            self.main = StreamedCOG(
                self.tmpdir,
                height,
                width,
                len(self.layout),
                "uint8",
                transform,
                crs,
                descriptions=[d for _, d in self.layout],
                overviews=cog,
                compress=own,
                tags={"rsviz_model": card.name, "rsviz_bands": ",".join(n for n, _ in self.layout)},
            )
            self.hds: StreamedCOG | None = None
            if "height" in card.heads:
                self.hds = StreamedCOG(
                    self.tmpdir,
                    height,
                    width,
                    1,
                    "float32",
                    transform,
                    crs,
                    nodata=float("nan"),
                    descriptions=[f"height ({card.heads['height'].units})"],
                    overviews=cog,
                    compress=own,
                    name="height",
                )
        except BaseException:
            self.abort()
            raise
        self._error: BaseException | None = None
        self._aborted = False
        self._queue: queue.Queue[_Job | None] | None = None
        self._thread: threading.Thread | None = None
        if queue_blocks > 0:
            self._queue = queue.Queue(maxsize=queue_blocks)
            self._thread = threading.Thread(target=self._drain, name="rsviz-cog-writer", daemon=True)
            self._thread.start()

    def channels_out(self, window: Window) -> None:
        """None: blocks are quantised, so the engine allocates the float stack."""
        return None

    def encode(self, heads: Heads) -> np.ndarray:
        """The ``(bands, h, w)`` uint8 stack of the output bands of one block's heads."""
        n_cls = heads["probs"].shape[0] if "probs" in heads else 0
        out = []
        for name, _ in self.layout:
            if name == "classes":
                out.append(heads["classes"])
            elif name.startswith("prob:"):
                out.append(_q(heads["probs"][self.index[name]]))
            elif name == "entropy":
                out.append(_q(heads["entropy"] / math.log(max(n_cls, 2))))
            elif name == "edge":
                out.append(_q(heads["edge"]))
            elif name == "tta_var":
                out.append(_q(heads["tta_var"] * 4.0))
            elif name.startswith("recon:"):
                out.append(np.clip(np.rint(heads["recon"][self.index[name]]), 0, 255).astype(np.uint8))
        return np.stack(out)

    def _write_now(self, window: Window, heads: Heads, valid: np.ndarray) -> None:
        r0, c0 = int(window.row_off), int(window.col_off)
        self.main.write(self.encode(heads), r0, c0)
        if self.hds is not None:
            self.hds.write(np.where(valid, heads["height"], np.nan)[None].astype(np.float32), r0, c0)

    def _drain(self) -> None:
        """Writer thread: write queued blocks until the None sentinel; after an error, only drain."""
        assert self._queue is not None
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._error is None and not self._aborted:
                try:
                    self._write_now(*job)
                except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
                    self._error = e

    def _raise_pending(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def write(self, window: Window, heads: Heads, valid: np.ndarray) -> None:
        """Queue (or, with ``queue_blocks=0``, write) one block; see :meth:`Sink.write`."""
        self._raise_pending()
        if self._queue is None:
            self._write_now(window, heads, valid)
        else:
            self._queue.put((window, heads, valid))

    def _join(self) -> None:
        """Stop the writer thread after the queued blocks."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def close(self) -> SinkResult:
        """Write the queued blocks, then the final files (compressed by GDAL with :attr:`threads` threads);
        removes the scratch folder. Returns the files written."""
        outs: list[Path] = []
        staged: list[tuple[Path, Path]] = []
        try:
            self._join()
            self._raise_pending()
            for ds, dst in ((self.main, self.path), (self.hds, self.path.with_name(self.path.stem + "_height.tif"))):
                if ds is not None:
                    # written under a temporary name beside the target (the scratch folder), renamed on success,
                    # so a failed write never leaves a partial file nor destroys an older output
                    tmp = self.tmpdir / f"final-{dst.name}"
                    staged.append((ds.finish(tmp, self.compress, self.cog, threads=self.threads), dst))
            for tmp, dst in staged:
                os.replace(tmp, dst)
                outs.append(dst)
        finally:
            self._discard()
        return SinkResult(files=outs)

    def abort(self) -> None:
        """Drop the queued blocks, stop the writer thread, close and remove the scratch folder."""
        self._aborted = True
        self._error = None
        self._join()
        self._discard()

    def _discard(self) -> None:
        for ds in (getattr(self, "main", None), getattr(self, "hds", None)):
            if ds is not None:
                ds.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
