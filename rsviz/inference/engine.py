"""Tiled, blended, streaming inference for every dense head of a bundled model.

:func:`predict` runs a model over an in-memory array or a raster file (optionally a
pixel window or a geographic extent of it) with overlapping sliding windows blended
by an importance map (MONAI ``sliding_window_inference`` is the reference). Rows of
windows are processed as strips: each strip is read lazily from the file, its tiles
are batched through the network, and weighted outputs accumulate in a strip buffer
on the compute device. Rows no later window can touch are finalised and handed to a
writer -- in memory, or window by window to a GeoTIFF that becomes a COG. Rasters wider
than :data:`PANEL_COLS` are processed in column panels, each streamed top to bottom; the
blended sums of the columns two panels share are carried over, so blending is exact
across panel seams. Memory is O(tile x panel width + raster height x seam width) for
files, never O(raster).

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

import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from rsviz.errors import BandCountError, ModelInputError, RsvizError
from rsviz.geo import gsd_metres
from rsviz.inference.cogwriter import StreamedCOG, check_compression
from rsviz.inference.tiling import importance_map, round_up, window_starts
from rsviz.models.api import LoadedModel, load_model
from rsviz.models.fusion import inference_net
from rsviz.raster import RasterData, open_raster, window_from_bounds
from rsviz.types import BBox, ProgressCallback

NODATA_CLASS = 255
#: Columns finalised at a time (bounds the per-strip temporaries).
FINALIZE_COLS = 2048
#: Widest column panel, pixels: wider rasters are processed in panels of window columns, so the
#: strip buffers are O(tile x panel) rather than O(tile x width) (see :func:`panel_groups`).
PANEL_COLS = 4096


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


class InferenceCancelled(RsvizError):
    """Raised when the ``cancel`` callback asks inference to stop."""


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
    options: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return self.valid.shape  # type: ignore[return-value]


# --------------------------------------------------------------------------- sources


class _Source:
    """Lazy reader of the region to predict (array or raster file)."""

    def __init__(self, source, window: Window | None, bounds: BBox | None, bounds_crs) -> None:
        self._ds = None
        if isinstance(source, (str, os.PathLike)):
            self._ctx = open_raster(source)
            self._ds = self._ctx.__enter__()
            ds = self._ds
            if bounds is not None:
                window = window_from_bounds(ds, bounds, bounds_crs)
            full = Window(0, 0, ds.width, ds.height)
            window = full if window is None else window.intersection(full)
            self.window = Window(int(window.col_off), int(window.row_off), int(window.width), int(window.height))
            self.count, self.dtype = ds.count, np.dtype(ds.dtypes[0])
            # no nodata value, mask band or alpha: every pixel is valid, skip reading masks
            self._all_valid = all(flags == [MaskFlags.all_valid] for flags in ds.mask_flag_enums)
            self.transform, self.crs = ds.window_transform(self.window), ds.crs
        else:
            r = source if isinstance(source, RasterData) else RasterData(np.asarray(source))
            self._r = r
            h, w = r.shape
            if bounds is not None:
                raise ModelInputError("bounds need a georeferenced raster file; pass window= for arrays")
            full = Window(0, 0, w, h)
            window = full if window is None else window.intersection(full)
            self.window = Window(int(window.col_off), int(window.row_off), int(window.width), int(window.height))
            self.count, self.dtype = r.count, r.array.dtype
            self.transform = r.transform * Affine.translation(self.window.col_off, self.window.row_off)
            self.crs = r.crs
        self.height, self.width = int(self.window.height), int(self.window.width)

    def read_rows(self, r0: int, r1: int, c0: int = 0, c1: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[r0, r1)``, columns ``[c0, c1)`` of the region: ``(bands, n, m)`` and valid ``(n, m)``."""
        c1 = self.width if c1 is None else c1
        w = Window(self.window.col_off + c0, self.window.row_off + r0, c1 - c0, r1 - r0)
        if self._ds is not None:
            data = self._ds.read(window=w)
            if self._all_valid:
                return data, np.ones(data.shape[1:], bool)
            valid = np.all(self._ds.read_masks(window=w) > 0, axis=0)
            return data, valid
        r = self._r
        sl = (slice(int(w.row_off), int(w.row_off + w.height)), slice(int(w.col_off), int(w.col_off + w.width)))
        return r.array[(slice(None), *sl)], r.valid[sl]

    def iter_rows(self, spans: list[tuple[int, int, int, int]]):
        """Yield :meth:`read_rows` of each ``(r0, r1, c0, c1)`` span, in order.

        For files, the next span is read in a background thread while the caller works on the
        current one (GDAL decodes blocks with the GIL released), so decoding overlaps inference.
        One read is in flight at a time, so the dataset is never used concurrently and at most
        two strips are held.
        """
        if self._ds is None or len(spans) < 2:
            for sp in spans:
                yield self.read_rows(*sp)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="rsviz-read") as pool:
            pending = pool.submit(self.read_rows, *spans[0])
            for nxt in spans[1:]:
                done = pending.result()
                pending = pool.submit(self.read_rows, *nxt)
                yield done
            yield pending.result()

    def close(self) -> None:
        if self._ds is not None:
            self._ctx.__exit__(None, None, None)
            self._ds = None


# --------------------------------------------------------------------------- model runner


def cpu_bf16_supported() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``) on ``device``; None = fp32.

    ``auto`` picks bf16 on CUDA GPUs that support it (fp16 otherwise) and on CPUs with native bf16
    (oneDNN AVX512-BF16 / AMX), fp32 elsewhere.

    Raises:
        ModelInputError: Unknown precision, or bf16/fp16 requested where unsupported.
    """
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision in ("auto", "bf16"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if precision == "fp16":
            return torch.float16
    elif device.type == "cpu":
        if precision in ("auto", "bf16") and cpu_bf16_supported():
            return torch.bfloat16
        if precision == "auto":
            return None
    elif precision == "auto":
        return None
    raise ModelInputError(f"precision {precision!r} is not supported on {device.type}; use auto or fp32")


class _Runner:
    """Normalises tiles, runs the network (channels_last, autocast), activates heads."""

    def __init__(self, lm: LoadedModel, tta: bool, precision: str = "auto") -> None:
        self.lm, self.card, self.dev = lm, lm.card, lm.device
        inp = self.card.input
        n = len(inp.bands)
        self.mean = torch.tensor(inp.mean, dtype=torch.float32, device=self.dev).view(1, n, 1, 1)
        self.std = torch.tensor(inp.std, dtype=torch.float32, device=self.dev).view(1, n, 1, 1)
        self.scale = float(inp.scale)
        # (raw / scale - mean) / std == raw * gain + bias, applied in place
        self.gain = 1.0 / (self.scale * self.std)
        self.bias = -self.mean / self.std
        self.tta = tta
        self.heads = {k: h for k, h in self.card.heads.items() if h.kind in ("binary", "multiclass", "regression", "reconstruction")}
        seg = self.heads.get("seg")
        self.seg_kind = seg.kind if seg else None
        self.layout: list[tuple[str, int]] = []
        for k, h in self.heads.items():
            self.layout.append((k, h.channels))
        if tta and seg:
            self.layout.append(("tta_var", 1))
        self.channels = sum(c for _, c in self.layout)
        self.cuda = self.dev.type == "cuda"
        # channels_last: NHWC convolutions (cuDNN / oneDNN) are faster on GPUs and CPUs alike
        self.channels_last = self.dev.type in ("cuda", "cpu")
        # batch norms folded into their convolutions (a cached copy; lm.net is left as it is)
        self.net = inference_net(lm.net, channels_last=self.channels_last)
        self.amp_dtype = resolve_precision(precision, self.dev)
        self._buffers: dict[str, torch.Tensor] = {}

    def _buffer(self, key: str, shape, fmt: torch.memory_format) -> torch.Tensor:
        """A float32 scratch tensor reused across batches of the same shape (no allocation and first-touch
        page faults per batch); the caller consumes an output before the next call."""
        shape = tuple(shape)
        buf = self._buffers.get(key)
        if buf is None or tuple(buf.shape) != shape:
            buf = torch.empty(shape, dtype=torch.float32, device=self.dev, memory_format=fmt)
            self._buffers[key] = buf
        return buf

    def _net(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.amp_dtype is not None:
            with torch.autocast(self.dev.type, dtype=self.amp_dtype):
                return self.net(x)  # half-precision outputs; cast to float32 on activation
        return self.net(x)

    def _activate(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        res = {}
        for k, h in self.heads.items():
            v = out[k]
            if h.kind == "binary":
                v = torch.sigmoid(v)
            elif h.kind == "multiclass":
                v = torch.softmax(v, dim=1)
            elif h.kind == "reconstruction":
                v = (v * self.std + self.mean) * self.scale
            res[k] = v
        return res

    def _activate_into(self, out: dict[str, torch.Tensor], res: torch.Tensor) -> torch.Tensor:
        """Activate the raw head outputs straight into the channel slices of ``res`` (float32,
        ``(B, channels, th, tw)``): one cast/layout copy plus in-place activation per head, no
        intermediate per-head tensors and no concatenation."""
        c = 0
        for k, n in self.layout:
            h, v, dst = self.heads[k], out[k], res[:, c:c + n]
            if h.kind == "multiclass":
                dst.copy_(torch.softmax(v, dim=1, dtype=torch.float32))
            else:
                dst.copy_(v)
                if h.kind == "binary":
                    dst.sigmoid_()
                elif h.kind == "reconstruction":
                    dst.mul_(self.std).add_(self.mean).mul_(self.scale)
            c += n
        return res

    @torch.inference_mode()
    def __call__(self, x_raw: torch.Tensor) -> torch.Tensor:
        """``(B, bands, th, tw)`` raw values (any dtype) -> ``(B, channels, th, tw)`` float32 activated outputs."""
        # one float32 tensor in the network's memory layout; dtype and layout converted in a single copy
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = self._buffer("in", x_raw.shape, fmt)
        x.copy_(x_raw).mul_(self.gain).add_(self.bias)
        if not self.tta:
            res = self._buffer("out", (x.shape[0], self.channels, *x.shape[-2:]), torch.contiguous_format)
            return self._activate_into(self._net(x), res)
        square = x.shape[-1] == x.shape[-2]
        tfs = [(0, False), (0, True), (2, False), (2, True)] + ([(1, False), (3, False), (1, True), (3, True)] if square else [])
        acc: dict[str, torch.Tensor] = {}
        sq = None
        for k, flip in tfs:
            xt = torch.rot90(x, k, dims=(-2, -1))
            if flip:
                xt = torch.flip(xt, dims=(-1,))
            o = self._activate({k: v.float() for k, v in self._net(xt).items()})
            for name, v in o.items():
                if flip:
                    v = torch.flip(v, dims=(-1,))
                v = torch.rot90(v, -k, dims=(-2, -1))
                acc[name] = acc.get(name, 0) + v
                if name == "seg":
                    sq = (sq if sq is not None else 0) + v * v
        n = len(tfs)
        o = {name: v / n for name, v in acc.items()}
        if "seg" in o:
            o["tta_var"] = (sq / n - o["seg"] ** 2).clamp(min=0).mean(dim=1, keepdim=True)
        return torch.cat([o[k] for k, _ in self.layout], dim=1)


# --------------------------------------------------------------------------- writers


class _MemoryWriter:
    """Holds the outputs in memory. The blended channels live in one ``(channels, H, W)`` float32 stack
    that :func:`predict` divides into directly (:meth:`block`), so they are never copied again; the
    derived class ids and entropy are copied in by :meth:`write`."""

    def __init__(self, height: int, width: int, layout: list[tuple[str, int]]) -> None:
        self.h, self.w, self.layout = height, width, layout
        self.stack = torch.empty((sum(n for _, n in layout), height, width), dtype=torch.float32)
        self.derived: dict[str, np.ndarray] = {}
        self.valid = np.zeros((height, width), bool)

    def block(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """The stack's ``(channels, r1 - r0, c1 - c0)`` view for rows ``[r0, r1)``, columns ``[c0, c1)``."""
        return self.stack[:, r0:r1, c0:c1]

    def write(self, r0: int, r1: int, heads: dict[str, np.ndarray], valid: np.ndarray, c0: int = 0) -> None:
        c1 = c0 + valid.shape[1]
        for k in ("classes", "entropy"):
            if k in heads:
                if k not in self.derived:
                    self.derived[k] = np.zeros((self.h, self.w), heads[k].dtype)
                self.derived[k][r0:r1, c0:c1] = heads[k]
        self.valid[r0:r1, c0:c1] = valid

    @property
    def heads(self) -> dict[str, np.ndarray]:
        return {**_name_channels(self.layout, self.stack.numpy()), **self.derived}


def output_band_layout(card, tta: bool) -> list[tuple[str, str]]:
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


class _GeoTIFFWriter:
    """Writes finalised rows to a uint8 GeoTIFF/COG (+ float32 height sidecar) through :class:`StreamedCOG`
    (overview levels decimated while streaming, so the COG step at the end only compresses)."""

    def __init__(self, path: Path, card, tta: bool, height: int, width: int, transform, crs, cog: bool,
                 compress: str = "deflate") -> None:
        self.path, self.card, self.cog, self.compress = Path(path), card, cog, compress
        self.layout = output_band_layout(card, tta)
        # channel of each prob:/recon: band within its head, computed once rather than per write
        self.index = {}
        for prefix in ("prob:", "recon:"):
            names = [n for n, _ in self.layout if n.startswith(prefix)]
            self.index.update({n: i for i, n in enumerate(names)})
        self.tmpdir = tempfile.mkdtemp(prefix="rsviz-", dir=self.path.parent)
        own = "none" if cog else compress  # a COG is compressed by the final copy
        self.main = StreamedCOG(Path(self.tmpdir), height, width, len(self.layout), "uint8", transform, crs,
                                descriptions=[d for _, d in self.layout], overviews=cog, compress=own,
                                tags={"rsviz_model": card.name, "rsviz_bands": ",".join(n for n, _ in self.layout)})
        self.hds = None
        if "height" in card.heads:
            self.hds = StreamedCOG(Path(self.tmpdir), height, width, 1, "float32", transform, crs, nodata=float("nan"),
                                   descriptions=[f"height ({card.heads['height'].units})"], overviews=cog,
                                   compress=own, name="height")

    def write(self, r0: int, r1: int, heads: dict[str, np.ndarray], valid: np.ndarray, c0: int = 0) -> None:
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
        self.main.write(np.stack(out), r0, c0)
        if self.hds is not None:
            self.hds.write(np.where(valid, heads["height"], np.nan)[None].astype(np.float32), r0, c0)

    def close(self) -> list[Path]:
        outs = [self.main.finish(self.path, self.compress, self.cog)]
        if self.hds is not None:
            outs.append(self.hds.finish(self.path.with_name(self.path.stem + "_height.tif"), self.compress, self.cog))
        self.discard()
        return outs

    def discard(self) -> None:
        """Close and remove the scratch folder (after :meth:`close`, or when inference fails)."""
        import shutil

        self.main.close()
        if self.hds is not None:
            self.hds.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _q(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- checks


def check_input(card, count: int, dtype: np.dtype, transform, crs, shape: tuple[int, int], sample: np.ndarray | None = None) -> list[str]:
    """Check an input against the model card.

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
            f"choose an image with those bands or a model for {count}-band input")
    if card.input.dtype == "uint8" and np.dtype(dtype).itemsize > 1 and sample is not None and sample.size and sample.max() > 255:
        raise ModelInputError(
            f"{card.name} expects 8-bit values (0-255) but the image has values up to {int(sample.max())}; "
            "rescale it to 8-bit (e.g. gdal_translate -scale -ot Byte) first")
    msgs = []
    if crs is not None:
        g = gsd_metres(transform, crs, *shape)
        lo, hi = card.input.gsd_range_m
        if g < lo / 4 or g > hi * 4:
            msgs.append(f"image GSD {g:.2f} m is far outside {card.name}'s training range {lo:g}-{hi:g} m; "
                        "expect degraded predictions (resample the image closer to that GSD)")
            warnings.warn(msgs[-1], GSDWarning, stacklevel=3)
    return msgs


# --------------------------------------------------------------------------- main entry


def predict(
    model: LoadedModel | str,
    source: str | os.PathLike | np.ndarray | RasterData,
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
    threshold: float = 0.5,
    output: str | os.PathLike | None = None,
    cog: bool = True,
    compress: str = "deflate",
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
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
        threshold: Probability threshold of binary heads.
        output: If given, write the outputs to this GeoTIFF (COG if ``cog``) window by window
            instead of keeping them in memory (see :func:`output_band_layout`); the returned
            :class:`Prediction` then has empty ``heads``.
        cog: Convert ``output`` to a Cloud Optimized GeoTIFF.
        compress: Output compression, a key of :data:`rsviz.inference.cogwriter.COMPRESSION` (``deflate``, ``zstd``, ``lzw``,
            ``none``).
        progress: Called as ``progress(tiles_done, tiles_total)``.
        cancel: Polled between batches; returning True raises :class:`InferenceCancelled`.

    Returns:
        :class:`Prediction` on the grid of the window read.

    Raises:
        BandCountError, ModelInputError: Input does not match the model card, or unknown ``compress``.
        ExtentError: ``bounds`` do not overlap the raster.
        RasterReadError: Unreadable source.
        InferenceCancelled: ``cancel()`` returned True.
    """
    check_compression(compress)
    lm = model if isinstance(model, LoadedModel) else load_model(model, device or "auto")
    card = lm.card
    if not any(h.kind != "multilabel" for h in card.heads.values()):
        raise ModelInputError(f"{card.name} classifies whole patches and has no per-pixel output; use "
                              "rsviz.inference.classify.classify_patch (the app's Scene classification page)")
    tile = int(tile or card.input.tile_size)
    overlap = card.input.overlap if overlap is None else float(overlap)
    tta = bool(card.input.tta) if tta is None else bool(tta)
    if tile % 32:
        raise ModelInputError(f"tile must be a multiple of 32 pixels, got {tile}")
    # bound GDAL's block cache (default 5 % of RAM) so streaming stays O(tile x width)
    gdal_env = rasterio.Env(GDAL_CACHEMAX=int(os.environ.get("RSVIZ_GDAL_CACHEMAX_MB", "128")))
    gdal_env.__enter__()
    src = _Source(source, window, bounds, bounds_crs)
    writer = None
    try:
        H, W = src.height, src.width
        first, _ = src.read_rows(0, min(H, 64))
        check_input(card, src.count, src.dtype, src.transform, src.crs, (H, W), first)
        runner = _Runner(lm, tta, precision)
        th = tile if H >= tile else round_up(H, 32)
        tw = tile if W >= tile else round_up(W, 32)
        rows, cols = window_starts(H, th, overlap), window_starts(W, tw, overlap)
        total = len(rows) * len(cols)
        dev = lm.device
        wmap = torch.from_numpy(importance_map((th, tw), blend)).to(dev)
        C = runner.channels
        writer = (_GeoTIFFWriter(Path(output), card, tta, H, W, src.transform, src.crs, cog, compress) if output is not None
                  else _MemoryWriter(H, W, runner.layout))
        fill = torch.tensor(card.input.mean, dtype=torch.float32).view(-1, 1, 1) * card.input.scale
        groups = panel_groups(cols, tw, PANEL_COLS)
        # blended sums of the columns a panel shares with the next one, kept for every row (exact blending
        # across panel seams); channel C holds the weight sum
        seams = [cols[b - 1] + tw - cols[b] for _, b in groups[:-1]]
        carry = torch.zeros((C + 1, H, max(seams)), dtype=torch.float32, device=dev) if seams and max(seams) > 0 else None
        state = {"done": 0, "bs": max(1, int(batch_size)), "carry_in": 0}
        t0 = time.perf_counter()

        def panel(a: int, b: int) -> None:
            """Windows ``cols[a:b]`` over all rows; finalises columns ``[cols[a], cols[b])`` (``W`` for the last)."""
            x_lo = cols[a]
            x_hi = min(cols[b - 1] + tw, W)
            fin = (cols[b] if b < len(cols) else W) - x_lo  # finalised width
            ci, co = state["carry_in"], x_hi - x_lo - fin
            pw = max(cols[b - 1] + tw - x_lo, tw)
            acc = torch.zeros((C, th, pw), dtype=torch.float32, device=dev)
            wsum = torch.zeros((th, pw), dtype=torch.float32, device=dev)
            vbuf = np.zeros((th, pw), bool)
            buf_y0 = 0

            def finalize(n_rows: int) -> None:
                nonlocal buf_y0
                if n_rows <= 0:
                    return
                r0, r1 = buf_y0, buf_y0 + n_rows
                if ci > 0:  # add what the previous panel's windows left in the shared columns
                    acc[:, :n_rows, :ci] += carry[:C, r0:r1, :ci]
                    wsum[:n_rows, :ci] += carry[C, r0:r1, :ci]
                if co > 0:
                    carry[:C, r0:r1, :co] = acc[:, :n_rows, fin:fin + co]
                    carry[C, r0:r1, :co] = wsum[:n_rows, fin:fin + co]
                for c0 in range(0, fin, FINALIZE_COLS):  # column blocks bound the temporaries of _split
                    c1 = min(c0 + FINALIZE_COLS, fin)
                    den = wsum[:n_rows, c0:c1].clamp(min=1e-12)
                    if isinstance(writer, _MemoryWriter):  # into the output stack (host memory)
                        dst = writer.block(r0, r1, x_lo + c0, x_lo + c1)
                        if dst.device == acc.device:
                            out = torch.div(acc[:, :n_rows, c0:c1], den, out=dst)
                        else:
                            out = dst.copy_(acc[:, :n_rows, c0:c1] / den)
                    else:
                        out = acc[:, :n_rows, c0:c1] / den
                    valid = vbuf[:n_rows, c0:c1].copy()
                    writer.write(r0, r1, _split(runner, out, valid, threshold), valid, x_lo + c0)
                keep = th - n_rows
                # shift the strip up by n_rows in place: blocks of <= n_rows rows never overlap their source
                for r in range(0, keep, n_rows):
                    k = min(n_rows, keep - r)
                    acc[:, r:r + k].copy_(acc[:, r + n_rows:r + n_rows + k])
                    wsum[r:r + k].copy_(wsum[r + n_rows:r + n_rows + k])
                acc[:, keep:].zero_()
                wsum[keep:].zero_()
                vbuf[:keep] = vbuf[n_rows:]
                vbuf[keep:] = False
                buf_y0 = r1

            for y, (data, valid) in zip(rows, src.iter_rows([(y, min(y + th, H), x_lo, x_hi) for y in rows])):
                finalize(min(y, H) - buf_y0)
                y1 = min(y + th, H)
                vbuf[y - buf_y0:y1 - buf_y0, :x_hi - x_lo] |= valid
                strip = data  # raw dtype; converted to float per batch, so the strip costs 1x its file size
                if strip.dtype.kind == "u" and strip.dtype != np.uint8:  # torch has few kernels for uint16/32
                    strip = strip.astype(np.int32 if strip.dtype == np.uint16 else np.float64)
                if not valid.all():  # nodata -> per-band training mean (normalises to 0)
                    strip = np.where(valid[None], strip, fill.numpy().astype(strip.dtype))
                pad_h, pad_w = th - strip.shape[1], pw - strip.shape[2]
                if pad_h or pad_w:
                    mode = "reflect" if strip.shape[1] > pad_h and strip.shape[2] > pad_w else "edge"
                    strip = np.pad(strip, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
                i, xs = 0, [c - x_lo for c in cols[a:b]]
                while i < len(xs):
                    if cancel is not None and cancel():
                        raise InferenceCancelled("inference cancelled; nothing was written")
                    bs = state["bs"]
                    # raw dtype (uint8 for most imagery): 4x less to copy (and to send to a GPU) than float32
                    batch = torch.from_numpy(np.stack([strip[:, :, x:x + tw] for x in xs[i:i + bs]]))
                    try:
                        if dev.type == "cuda":
                            batch = batch.pin_memory().to(dev, non_blocking=True)
                        else:
                            batch = batch.to(dev)
                        out = runner(batch)
                    except torch.cuda.OutOfMemoryError:
                        if bs == 1:
                            raise
                        torch.cuda.empty_cache()
                        state["bs"] = max(1, bs // 2)
                        warnings.warn(f"CUDA out of memory; batch size halved to {state['bs']}", RuntimeWarning,
                                      stacklevel=3)
                        continue
                    for j in range(out.shape[0]):
                        x = xs[i + j]
                        acc[:, :, x:x + tw].addcmul_(out[j], wmap)
                        wsum[:, x:x + tw] += wmap
                    i += out.shape[0]
                    state["done"] += out.shape[0]
                    if progress is not None:
                        progress(state["done"], total)
            finalize(H - buf_y0)
            state["carry_in"] = co

        for a, b in groups:
            panel(a, b)
        bs = state["bs"]
        secs = time.perf_counter() - t0
        files = writer.close() if isinstance(writer, _GeoTIFFWriter) else []
        heads = writer.heads if isinstance(writer, _MemoryWriter) else {}
        valid_all = writer.valid if isinstance(writer, _MemoryWriter) else np.zeros((0, 0), bool)
        return Prediction(heads=heads, transform=src.transform, crs=src.crs, valid=valid_all, window=src.window,
                          model=card.name,
                          options={"tile": [th, tw], "overlap": overlap, "blend": blend, "tta": tta, "batch_size": bs,
                                   "device": str(dev), "threshold": threshold,
                                   "precision": str(runner.amp_dtype or torch.float32).replace("torch.", "")},
                          stats={"tiles": total, "seconds": secs, "mpx_per_s": H * W / 1e6 / max(secs, 1e-9),
                                 "files": [str(f) for f in files]})
    finally:
        if isinstance(writer, _GeoTIFFWriter):  # failed or cancelled runs leave no scratch files behind
            writer.discard()
        src.close()
        gdal_env.__exit__(None, None, None)


def _name_channels(layout: list[tuple[str, int]], arr: np.ndarray) -> dict[str, np.ndarray]:
    """Named views of a ``(channels, h, w)`` stack: ``probs`` for the primary head, single-channel heads
    (edge, height, tta_var) as ``(h, w)``, the rest (recon) as ``(n, h, w)``."""
    heads: dict[str, np.ndarray] = {}
    c = 0
    for name, n in layout:
        v = arr[c:c + n]
        c += n
        if name == "seg":
            heads["probs"] = v
        elif name in ("edge", "height", "tta_var"):
            heads[name] = v[0]
        else:
            heads[name] = v
    return heads


def _split(runner: _Runner, out: torch.Tensor, valid: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Cut a blended ``(channels, h, w)`` float32 block into named NumPy heads; derive classes and entropy.

    Class ids and entropy are computed with torch (all intra-op threads, on the compute device)
    before the block is moved to host memory.
    """
    derived: dict[str, torch.Tensor] = {}
    if runner.seg_kind is not None:
        p = out[:runner.heads["seg"].channels]
        if runner.seg_kind == "binary":
            derived["classes"] = (p[0] >= threshold).to(torch.uint8)
            derived["entropy"] = torch.special.entr(p[0]).add_(torch.special.entr(1 - p[0]))
        else:
            derived["classes"] = p.argmax(0).to(torch.uint8)
            derived["entropy"] = torch.special.entr(p).sum(0)
    heads = _name_channels(runner.layout, out.cpu().numpy())
    heads.update({k: v.cpu().numpy() for k, v in derived.items()})
    if "probs" in heads and not valid.all():  # these are this call's own arrays: zero nodata in place
        heads["classes"][~valid] = NODATA_CLASS
        heads["entropy"][~valid] = 0
        heads["probs"][:, ~valid] = 0
    return heads
