"""Turning arrays into displayable RGB(A): contrast stretch, colour maps, class palettes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

import numpy as np

from rsviz.types import ClassInfo


def to_rgb8(
    image: np.ndarray,
    bands: Sequence[int] | None = None,
    *,
    percentiles: tuple[float, float] = (2, 98),
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Display RGB from an image: uint8 passes through, others are percentile-stretched.

    Args:
        image: ``(bands, H, W)`` any dtype.
        bands: Three 0-based band indexes for R, G, B (default: first three; one band -> grey).
        percentiles: Stretch limits (per band) for non-uint8 data.
        valid: ``(H, W)`` bool; statistics use valid pixels only.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[None]
    idx = list(bands) if bands is not None else ([0, 1, 2] if a.shape[0] >= 3 else [0, 0, 0])
    out = np.empty((a.shape[1], a.shape[2], 3), np.uint8)
    for i, b in enumerate(idx):
        x = a[b]
        if x.dtype == np.uint8:
            out[..., i] = x
            continue
        x = x.astype(np.float32)
        sel = x[valid] if valid is not None and valid.any() else x[np.isfinite(x)]
        lo, hi = np.percentile(sel, percentiles) if sel.size else (0.0, 1.0)
        out[..., i] = (np.clip((np.nan_to_num(x) - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)
    return out


def palette_rgba(
    ids: np.ndarray,
    classes: Sequence[ClassInfo],
    *,
    alpha: int = 255,
    transparent: Sequence[int] = (0,),
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Colour a class-id map with the classes' colours.

    Args:
        ids: ``(H, W)`` integer class ids.
        classes: Legend; ids without an entry are drawn grey.
        alpha: Opacity of coloured pixels (0-255).
        transparent: Ids drawn fully transparent (e.g. background 0).
        valid: ``(H, W)`` bool; invalid pixels are transparent.

    Returns:
        ``(H, W, 4)`` uint8 RGBA.
    """
    lut = np.zeros((256, 4), np.uint8)
    lut[:, :3] = 128
    lut[:, 3] = alpha
    for c in classes:
        lut[c.id, :3] = c.color
    for t in transparent:
        lut[t, 3] = 0
    out = lut[np.clip(ids, 0, 255).astype(np.uint8)]
    if valid is not None:
        out[~valid, 3] = 0
    return out


def colormap_rgba(
    values: np.ndarray,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Apply a matplotlib colour map to a float array.

    Args:
        values: ``(H, W)`` float.
        cmap: Matplotlib colour-map name.
        vmin: Lower limit (2nd percentile of valid values by default).
        vmax: Upper limit (98th percentile by default).
        valid: ``(H, W)`` bool; invalid pixels are transparent.

    Returns:
        ``(H, W, 4)`` uint8 RGBA.
    """
    import matplotlib

    v = np.asarray(values, dtype=np.float32)
    ok = np.isfinite(v) if valid is None else (valid & np.isfinite(v))
    sel = v[ok]
    lo = vmin if vmin is not None else (float(np.percentile(sel, 2)) if sel.size else 0.0)
    hi = vmax if vmax is not None else (float(np.percentile(sel, 98)) if sel.size else 1.0)
    norm = np.clip((np.nan_to_num(v) - lo) / max(hi - lo, 1e-12), 0, 1)
    out = (matplotlib.colormaps[cmap](norm) * 255).astype(np.uint8)
    out[~ok, 3] = 0
    return out


class PanelKind(str, Enum):
    """What a display panel shows (the Compare page and the report pick panels by kind, never by caption)."""

    INPUT = "input"
    GROUND_TRUTH = "ground_truth"
    PREDICTION = "prediction"
    ERRORS = "errors"
    EDGES = "edges"
    EDGE_PROBABILITY = "edge_probability"
    RECONSTRUCTION = "reconstruction"
    RESIDUAL = "residual"
    HEIGHT_TRUTH = "height_truth"
    HEIGHT = "height"
    HEIGHT_ERROR = "height_error"
    ENTROPY = "entropy"
    TTA_VARIANCE = "tta_variance"


@dataclass(frozen=True)
class Panel:
    """One captioned image of a run over an extent.

    Attributes:
        kind: What it shows.
        caption: Human caption (may carry figures, e.g. the mean residual).
        image: ``(H, W, 3)`` uint8 RGB.
    """

    kind: PanelKind
    caption: str
    image: np.ndarray = field(repr=False)
