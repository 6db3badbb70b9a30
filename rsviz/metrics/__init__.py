"""Evaluation metrics; each module states its definitions and sources."""

from rsviz.metrics.boundary import boundary_f1, multiclass_boundary_f1
from rsviz.metrics.errormaps import binary_error_map, disagreement_map, error_map_rgba
from rsviz.metrics.height import height_metrics, height_metrics_per_class
from rsviz.metrics.objects import (
                                  instances_to_polygons,
                                  mask_to_polygons,
                                  match_polygons,
                                  match_to_geojson,
                                  object_f1,
                                  split_instances,
)
from rsviz.metrics.pixel import ConfusionMatrix, binary_metrics
from rsviz.metrics.reconstruction import reconstruction_metrics, residual_map
from rsviz.metrics.roads import (
    apls,
    apls_from_masks,
    bridge_gaps,
    graph_from_lines,
    graph_from_mask,
    relaxed_precision_recall,
    road_graph_apls,
)

__all__ = ["ConfusionMatrix", "binary_metrics", "boundary_f1", "multiclass_boundary_f1", "mask_to_polygons",
           "match_polygons", "match_to_geojson", "object_f1", "split_instances", "instances_to_polygons", "relaxed_precision_recall", "apls", "apls_from_masks", "bridge_gaps", "road_graph_apls",
           "graph_from_mask", "graph_from_lines", "height_metrics", "height_metrics_per_class",
           "reconstruction_metrics", "residual_map", "binary_error_map", "disagreement_map", "error_map_rgba"]
