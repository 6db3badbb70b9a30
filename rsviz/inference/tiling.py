"""Sliding-window geometry and importance maps for blended tiled inference.

Follows MONAI's ``sliding_window_inference`` (Project MONAI, ``monai.inferers``):
overlapping windows, each prediction weighted by an importance map, overlaps
averaged as ``sum(w * y) / sum(w)``. Unlike MONAI's padding of the last window, the
last row/column of windows is shifted inward so it ends at the raster edge; padding
only happens when the raster is smaller than one tile.
"""

from __future__ import annotations

import math

import numpy as np

BLEND_MODES = ("gaussian", "cosine", "constant")


def window_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of windows along one axis.

    Args:
        length: Raster size along the axis, pixels.
        tile: Window size, pixels.
        overlap: Fraction of ``tile`` shared by neighbours, in ``[0, 1)``.

    Returns:
        Sorted starts; the last window ends exactly at ``length`` (shifted inward), or a
        single ``[0]`` when ``length <= tile``.

    Raises:
        ValueError: For ``overlap`` outside ``[0, 1)`` or a non-positive tile.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if length <= tile:
        return [0]
    stride = max(1, int(round(tile * (1.0 - overlap))))
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def _profile(n: int, mode: str, sigma_scale: float) -> np.ndarray:
    x = np.arange(n, dtype=np.float64) + 0.5
    if mode == "gaussian":
        return np.exp(-((x - n / 2.0) ** 2) / (2 * (sigma_scale * n) ** 2))
    return np.sin(math.pi * x / n) ** 2


def importance_map(
    tile: int | tuple[int, int], mode: str = "gaussian", sigma_scale: float = 0.125, floor: float = 1e-3
) -> np.ndarray:
    """Per-pixel blending weight of a window (separable in rows and columns).

    Args:
        tile: Window side, or ``(height, width)``, pixels.
        mode: ``gaussian`` (MONAI default, ``sigma = sigma_scale * tile``), ``cosine``
            (separable Hann window, ``sin^2``) or ``constant`` (plain averaging).
        sigma_scale: Gaussian sigma as a fraction of the tile.
        floor: Minimum weight relative to the maximum (keeps raster borders, covered by
            a single window, well defined; MONAI clamps to the smallest positive value).

    Returns:
        ``(height, width)`` float32 in ``[floor, 1]``.

    Raises:
        ValueError: Unknown mode.
    """
    if mode not in BLEND_MODES:
        raise ValueError(f"unknown blend mode {mode!r}; valid: {', '.join(BLEND_MODES)}")
    h, w_ = (tile, tile) if isinstance(tile, int) else tile
    if mode == "constant":
        return np.ones((h, w_), np.float32)
    w = np.outer(_profile(h, mode, sigma_scale), _profile(w_, mode, sigma_scale))
    w /= w.max()
    return np.maximum(w, floor).astype(np.float32)


def round_up(n: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``n``."""
    return int(math.ceil(n / multiple) * multiple)
