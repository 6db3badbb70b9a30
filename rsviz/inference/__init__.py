"""Tiled inference: :func:`predict` and its building blocks.

Modules: :mod:`~rsviz.inference.engine` (:func:`predict`), :mod:`~rsviz.inference.predictor` (the network
runner), :mod:`~rsviz.inference.sliding_window` (window geometry and blending), :mod:`~rsviz.inference.sinks`
(in-memory and COG outputs), :mod:`~rsviz.inference.source` (lazy reads), :mod:`~rsviz.inference.precision`.
"""

from rsviz.inference.engine import GSDWarning, InferenceCancelled, Prediction, output_band_layout, predict
from rsviz.inference.tiling import importance_map, window_starts

__all__ = [
    "predict",
    "Prediction",
    "InferenceCancelled",
    "GSDWarning",
    "output_band_layout",
    "importance_map",
    "window_starts",
]
