"""Evaluation metrics; each module states its definitions and sources.

Metrics import nothing above :mod:`rsviz.postprocess` (polygons, road graphs): no models, no
inference, no app.
"""

from rsviz.metrics.boundary import boundary_f1, multiclass_boundary_f1
from rsviz.metrics.errormaps import binary_error_map, disagreement_map, error_map_rgba
from rsviz.metrics.height import height_metrics, height_metrics_per_class
from rsviz.metrics.objects import ObjectMatch, match_polygons, match_to_geojson, object_f1
from rsviz.metrics.pixel import ConfusionMatrix, binary_metrics
from rsviz.metrics.reconstruction import reconstruction_metrics, residual_map
from rsviz.metrics.roads import (
    apls,
    apls_from_masks,
    relaxed_precision_recall,
    road_graph_apls,
)

__all__ = [
    "ConfusionMatrix",
    "ObjectMatch",
    "apls",
    "apls_from_masks",
    "binary_error_map",
    "binary_metrics",
    "boundary_f1",
    "disagreement_map",
    "error_map_rgba",
    "height_metrics",
    "height_metrics_per_class",
    "match_polygons",
    "match_to_geojson",
    "multiclass_boundary_f1",
    "object_f1",
    "reconstruction_metrics",
    "relaxed_precision_recall",
    "residual_map",
    "road_graph_apls",
]
