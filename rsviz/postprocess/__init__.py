"""Post-processing of predictions: building instances, road graphs, polygons.

What turns a model's probabilities into the objects that are scored and exported. A card states
its settings (:class:`InstanceSettings`, :class:`RoadGraphSettings`); the metrics in
:mod:`rsviz.metrics` and the evaluator use them, and this package imports nothing above
:mod:`rsviz.types` and :mod:`rsviz.errors`.
"""

from rsviz.postprocess.instances import InstanceSettings, instances_for, merge_weak_boundaries, split_instances
from rsviz.postprocess.road_graph import (
    RoadGraphSettings,
    bridge_gaps,
    clean_road_mask,
    graph_from_lines,
    graph_from_mask,
    graph_lines,
    mask_graphs,
    prune_spurs,
    road_graphs,
)
from rsviz.postprocess.vectorize import instance_polygons, instances_to_polygons, mask_to_polygons

__all__ = [
    "InstanceSettings",
    "RoadGraphSettings",
    "bridge_gaps",
    "clean_road_mask",
    "graph_from_lines",
    "graph_from_mask",
    "graph_lines",
    "instance_polygons",
    "instances_for",
    "instances_to_polygons",
    "mask_graphs",
    "mask_to_polygons",
    "merge_weak_boundaries",
    "prune_spurs",
    "road_graphs",
    "split_instances",
]
