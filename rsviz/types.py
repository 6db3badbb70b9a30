"""Typed aliases shared across rsviz (rio-tiler style)."""

from __future__ import annotations

from typing import Callable, Tuple

import numpy as np
import numpy.typing as npt

#: ``(west, south, east, north)`` in the units of some CRS.
BBox = Tuple[float, float, float, float]
#: ``(row_off, col_off, height, width)`` in pixels.
PixelWindow = Tuple[int, int, int, int]
#: Image array, ``(bands, height, width)``.
ImageArray = npt.NDArray[np.generic]
#: Single-band label array, ``(height, width)``.
MaskArray = npt.NDArray[np.generic]
#: Progress callback: ``(done, total)``.
ProgressCallback = Callable[[int, int], None]
