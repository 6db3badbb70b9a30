"""Tiled inference: :func:`predict` and its building blocks."""

from rsviz.inference.engine import GSDWarning, InferenceCancelled, Prediction, output_band_layout, predict
from rsviz.inference.tiling import importance_map, window_starts

__all__ = ["predict", "Prediction", "InferenceCancelled", "GSDWarning", "output_band_layout", "importance_map",
           "window_starts"]
