"""The BigEarthNet-19 multi-label models run over a Sentinel-2 extent as a grid of 120 x 120 px patches.

A BigEarthNet patch is 1.2 km x 1.2 km: 120 x 120 px of the 10 m bands (Sumbul et al., IGARSS 2019),
cut from the L2A tile on a 1.2 km grid from the tile's corner. The grid here is the scene's own 120 px
grid (from its upper-left pixel), so patches of a tile land where BigEarthNet cut them, and an extent
is snapped outwards to it and inwards to whole patches of the scene.

Each patch is read in model units (:meth:`rsviz.sentinel2.scene.S2Scene.read`), its nodata pixels set
to the card's fill value (the band mean, what normalises to 0), normalised like
:func:`rsviz.inference.classify.normalise_s2` and batched through the network; the sigmoid of every
label is kept. A patch with fewer than ``min_valid`` valid pixels is not predicted (NaN probabilities).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from rsviz.errors import ExtentError, ModelInputError
from rsviz.models.api import LoadedModel
from rsviz.sentinel2.scene import S2Scene
from rsviz.types import BBox

#: Side of a BigEarthNet patch, px of the 10 m grid (1.2 km).
PATCH_PX = 120


@dataclass(frozen=True)
class PatchPrediction:
    """Label probabilities of every patch of a grid over a scene.

    Attributes:
        model: Model name.
        labels: The ``L`` label names (BigEarthNet-19 for the bundled models), in output order.
        probs: ``(rows, cols, L)`` float32 sigmoid probabilities in [0, 1]; NaN for patches not predicted.
        valid_fraction: ``(rows, cols)`` float32 share of valid (not nodata) pixels of each patch, 0-1.
        window: ``(col_off, row_off, width, height)`` of the grid in scene pixels (multiples of ``patch_px``).
        transform: Affine of the patch grid: one cell per patch (``patch_px`` scene pixels, 1.2 km at 10 m).
        crs: CRS of ``transform`` (the scene's).
        patch_px: Patch side, scene px.
    """

    model: str
    labels: tuple[str, ...]
    probs: np.ndarray
    valid_fraction: np.ndarray
    window: tuple[int, int, int, int]
    transform: Affine
    crs: CRS
    patch_px: int = PATCH_PX

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the grid."""
        return (int(self.probs.shape[0]), int(self.probs.shape[1]))

    @property
    def predicted(self) -> np.ndarray:
        """``(rows, cols)`` bool: patches with probabilities."""
        out: np.ndarray = np.isfinite(self.probs).all(axis=-1)
        return out

    def top_label(self) -> np.ndarray:
        """``(rows, cols)`` int16 index of the most probable label, -1 where not predicted."""
        out = np.full(self.shape, -1, np.int16)
        ok = self.predicted
        out[ok] = np.argmax(self.probs[ok], axis=-1)
        return out

    def labels_at(self, row: int, col: int, threshold: float = 0.5) -> list[tuple[str, float]]:
        """``(label, probability)`` of one patch, most probable first, those ``>= threshold`` (all if
        ``threshold`` is 0); empty when the patch was not predicted."""
        p = self.probs[row, col]
        if not np.isfinite(p).all():
            return []
        order = np.argsort(-p, kind="stable")
        return [(self.labels[i], float(p[i])) for i in order if p[i] >= threshold]

    def cell_of(self, x: float, y: float, crs: CRS | str = "EPSG:4326") -> tuple[int, int] | None:
        """``(row, col)`` of the patch containing a point (e.g. a map click in EPSG:4326), None outside."""
        from rasterio.warp import transform as warp

        xs, ys = warp(CRS.from_user_input(crs), self.crs, [x], [y])
        c, r = ~self.transform * (xs[0], ys[0])
        ri, ci = int(np.floor(r)), int(np.floor(c))
        rows, cols = self.shape
        return (ri, ci) if 0 <= ri < rows and 0 <= ci < cols else None

    def cell_bounds(self, row: int, col: int) -> BBox:
        """``(west, south, east, north)`` of one patch in :attr:`crs`."""
        x0, y0 = self.transform * (col, row)
        x1, y1 = self.transform * (col + 1, row + 1)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def save(self, path: Path) -> None:
        """Write to an ``.npz`` (arrays) with the rest as JSON; see :meth:`load`."""
        meta = {
            "model": self.model,
            "labels": list(self.labels),
            "window": list(self.window),
            "transform": list(self.transform)[:6],
            "crs": self.crs.to_wkt(),
            "patch_px": self.patch_px,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, probs=self.probs, valid_fraction=self.valid_fraction, meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> PatchPrediction:
        """Read what :meth:`save` wrote."""
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            return cls(
                meta["model"],
                tuple(meta["labels"]),
                z["probs"],
                z["valid_fraction"],
                tuple(meta["window"]),
                Affine(*meta["transform"]),
                CRS.from_wkt(meta["crs"]),
                int(meta["patch_px"]),
            )


def patch_window(scene: S2Scene, window: Window | None = None, patch_px: int = PATCH_PX) -> Window:
    """``window`` (default: the whole scene) snapped outwards to the scene's ``patch_px`` grid and inwards to
    whole patches of the scene.

    Raises:
        ExtentError: No whole patch fits (extent beyond the scene, or a scene smaller than one patch).
    """
    w = window or Window(0, 0, scene.width, scene.height)
    c0 = max(int(np.floor(w.col_off / patch_px)), 0) * patch_px
    r0 = max(int(np.floor(w.row_off / patch_px)), 0) * patch_px
    c1 = min(int(np.ceil((w.col_off + w.width) / patch_px)) * patch_px, scene.width // patch_px * patch_px)
    r1 = min(int(np.ceil((w.row_off + w.height) / patch_px)) * patch_px, scene.height // patch_px * patch_px)
    if c1 <= c0 or r1 <= r0:
        raise ExtentError(
            f"no whole {patch_px} x {patch_px} px patch of {scene.source.name} ({scene.width} x {scene.height} px) "
            "lies in the extent; draw it over the imagery, at least one patch (1.2 km) wide"
        )
    return Window(c0, r0, c1 - c0, r1 - r0)


def _model(m: str | LoadedModel) -> LoadedModel:
    from rsviz.models.api import load_model_cached

    return m if isinstance(m, LoadedModel) else load_model_cached(m, "cpu")


def _cache_key(scene: S2Scene, win: Window, names: Sequence[str], min_valid: float) -> str:
    from rsviz.models.api import model_dir

    st = scene.path.stat()
    parts = [
        str(scene.path.resolve()),
        str(st.st_size),
        str(st.st_mtime_ns),
        ",".join(scene.bands),
        repr(scene.scaling),
        repr(scene.nodata),
        repr(tuple(int(v) for v in (win.col_off, win.row_off, win.width, win.height))),
        repr(min_valid),
    ]
    for n in names:
        w = model_dir(n) / "model.safetensors"
        parts.append(f"{n}:{w.stat().st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def predict_variants(
    scene: S2Scene,
    models: Sequence[str],
    *,
    window: Window | None = None,
    bounds: BBox | None = None,
    batch_size: int = 32,
    min_valid: float = 0.5,
    max_patches: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cache: bool = False,
    folded: bool = True,
) -> dict[str, PatchPrediction]:
    """Run several multi-label models over the same patch grid, reading the scene once.

    Args:
        scene: The opened scene.
        models: Registered model names (their cards' ``input.bands`` must all be in the scene).
        window: Pixel window of the scene, snapped by :func:`patch_window` (default: whole scene).
        bounds: Instead of ``window``: EPSG:4326 ``(west, south, east, north)`` (a drawn extent).
        batch_size: Patches per forward pass.
        min_valid: Least share (0-1) of valid pixels for a patch to be predicted.
        max_patches: Refuse grids of more patches (None: no limit).
        progress: Called ``(patch rows done, patch rows)``.
        cache: Keep the result in the derived cache (``RSVIZ_CACHE_DIR``) and reuse it for the same scene
            file, window, scaling and weights.
        folded: Run the engine's inference copy of each network (:func:`rsviz.models.fusion.inference_net`:
            batch norms folded into the convolutions, channels-last), as tiled inference does; same function
            up to float rounding (probabilities within 1e-5 of :func:`rsviz.inference.classify.classify_patch`,
            ``tests/sentinel2``). False: the network as loaded, bit-for-bit what ``classify_patch`` computes.

    Returns:
        Model name -> :class:`PatchPrediction`, all on the same grid.

    Raises:
        BandCountError: The scene lacks a band a model takes (named).
        ModelInputError: A model is not multi-label, or DNs the card would misread (e.g. 8-bit).
        ExtentError: No whole patch in the extent, or more than ``max_patches``.
        RasterReadError: The scene cannot be read.
    """
    from rsviz.inference.engine import check_value_range
    from rsviz.models.fusion import TRACE_GATE
    from rsviz.models.preprocessing import Normalisation
    from rsviz.resources import cache_dir

    if bounds is not None:
        window = scene.window_of_bounds(bounds)
    win = patch_window(scene, window)
    px = PATCH_PX
    rows, cols = int(win.height) // px, int(win.width) // px
    if max_patches is not None and rows * cols > max_patches:
        raise ExtentError(
            f"the extent holds {rows * cols:,} patches ({rows} x {cols}), more than the {max_patches:,} allowed here; "
            "draw a smaller extent"
        )
    lms = [_model(m) for m in models]
    names = [lm.name for lm in lms]
    for lm in lms:
        head = lm.card.heads.get("labels")
        if head is None or head.kind != "multilabel":
            raise ModelInputError(f"{lm.name} is not a multi-label scene classifier (no 'labels' multilabel head)")
        if lm.card.input.tile_size != px:
            raise ModelInputError(f"{lm.name} takes {lm.card.input.tile_size} px patches, not {px}")
    idx = {lm.name: scene.band_indexes(lm.card.input.bands) for lm in lms}
    key = _cache_key(scene, win, names, min_valid) + ("f" if folded else "") if cache else ""
    folder = cache_dir() / "sentinel2" / "runs"
    if cache and all((folder / f"{key}-{n}.npz").is_file() for n in names):
        if progress:
            progress(rows, rows)
        return {n: PatchPrediction.load(folder / f"{key}-{n}.npz") for n in names}
    from rsviz.models.fusion import inference_net

    nets = {lm.name: inference_net(lm.net, channels_last=True) if folded else lm.net for lm in lms}
    norms = {lm.name: Normalisation.from_spec(lm.card.input) for lm in lms}
    fills = {n: norms[n].fill_value().astype(np.float32)[:, None, None] for n in names}
    probs = {lm.name: np.full((rows, cols, lm.card.heads["labels"].channels), np.nan, np.float32) for lm in lms}
    vfrac = np.zeros((rows, cols), np.float32)
    checked = False
    with scene.open() as ds, torch.inference_mode():
        for r in range(rows):
            strip_win = Window(win.col_off, win.row_off + r * px, win.width, px)
            dn, valid = scene.read_dn(ds, strip_win, scene.bands)
            vf = valid.reshape(px, cols, px).mean(axis=(0, 2)).astype(np.float32)
            vfrac[r] = vf
            todo = np.nonzero(vf >= max(min_valid, 1e-9))[0]
            if todo.size and not checked:
                vals = dn[:, valid]
                for lm in lms:
                    check_value_range(lm.card, np.dtype(scene.dtype), (float(vals.min()), float(vals.max())))
                checked = True
            if todo.size:
                x_all = scene.scaling.to_model_units(dn)
            for b0 in range(0, todo.size, batch_size):
                cs = todo[b0 : b0 + batch_size]
                for lm in lms:
                    n = lm.name
                    band_sel = list(idx[n])
                    batch = np.empty((cs.size, len(band_sel), px, px), np.float32)
                    for k, c in enumerate(cs):
                        sl = slice(int(c) * px, int(c) * px + px)
                        batch[k] = x_all[band_sel, :, sl]
                        if vf[c] < 1.0:
                            bad = ~valid[:, sl]
                            batch[k][:, bad] = np.broadcast_to(fills[n], batch[k].shape)[:, bad]
                    x = norms[n].normalise(batch).to(lm.device)
                    if folded:
                        x = x.contiguous(memory_format=torch.channels_last)
                    with TRACE_GATE.shared():
                        p = torch.sigmoid(nets[n](x)["labels"]).float().cpu().numpy()
                    probs[n][r, cs] = p
            if progress:
                progress(r + 1, rows)
    t = scene.transform * Affine.translation(win.col_off, win.row_off) * Affine.scale(px)
    wtuple = (int(win.col_off), int(win.row_off), int(win.width), int(win.height))
    out = {
        lm.name: PatchPrediction(
            lm.name, tuple(c.name for c in lm.card.classes), probs[lm.name], vfrac.copy(), wtuple, t, scene.crs, px
        )
        for lm in lms
    }
    if cache:
        for n, pred in out.items():
            pred.save(folder / f"{key}-{n}.npz")
    return out


def predict_patches(scene: S2Scene, model: str, **kw: Any) -> PatchPrediction:
    """One model over the patch grid; keyword arguments as :func:`predict_variants`."""
    return next(iter(predict_variants(scene, [model], **kw).values()))


def disagreement(preds: Sequence[PatchPrediction], threshold: float = 0.5) -> np.ndarray:
    """Per patch, how many labels the models do not decide alike (``p >= threshold`` for some, not all).

    Args:
        preds: Predictions on the same grid (e.g. the three fusion variants).
        threshold: Decision threshold.

    Returns:
        ``(rows, cols)`` float32 count of disputed labels, 0 to ``L``; NaN where a model did not predict.

    Raises:
        ValueError: Fewer than two predictions, or grids that differ.
    """
    if len(preds) < 2:
        raise ValueError("disagreement needs at least two predictions")
    if any(p.window != preds[0].window or p.probs.shape != preds[0].probs.shape for p in preds):
        raise ValueError("the predictions are on different grids; run them over the same extent")
    dec = np.stack([p.probs >= threshold for p in preds])
    out = (dec.any(0) & ~dec.all(0)).sum(-1).astype(np.float32)
    ok = np.all([p.predicted for p in preds], axis=0)
    out[~ok] = np.nan
    res: np.ndarray = out
    return res
