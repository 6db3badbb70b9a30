"""XYZ web-map tiles of rasters on disk, rendered with rio-tiler (no UI code here).

:class:`Layer` says what to draw, :data:`REGISTRY` maps opaque layer ids to layers, and
:func:`render_tile` draws a 256 px tile; :mod:`rsviz.app.routes` serves them over HTTP.
"""

from rsviz.tiles.layers import DIFFERENCE_CMAP, REGISTRY, Layer, LayerInfo, LayerKind, TileRegistry
from rsviz.tiles.render import (
    FN_RGBA,
    FORMATS,
    FP_RGBA,
    TP_RGBA,
    default_rgb_bands,
    imagery_rescale,
    layer_info,
    max_zoom_for_gsd,
    render_tile,
    transparent_png,
)

__all__ = [
    "DIFFERENCE_CMAP",
    "FN_RGBA",
    "FORMATS",
    "FP_RGBA",
    "REGISTRY",
    "TP_RGBA",
    "Layer",
    "LayerInfo",
    "LayerKind",
    "TileRegistry",
    "default_rgb_bands",
    "imagery_rescale",
    "layer_info",
    "max_zoom_for_gsd",
    "render_tile",
    "transparent_png",
]
