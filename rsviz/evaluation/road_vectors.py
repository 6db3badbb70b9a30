"""APLS of road vectors: ground truth and proposal as centre lines in metres, scored as SpaceNet does.

``rsviz evaluate --task roads`` comes here when either side is a vector file (GeoJSON LineStrings or
SpaceNet's ``ImageId,WKT_Pix`` CSV, read by :func:`rsviz.postprocess.read_road_lines`); a mask on the
other side is turned into its skeleton graph as the raster evaluation does. The figures carry the same
keys as the raster evaluation's 4 m APLS (``apls_4m`` and its two directions), computed by
:func:`rsviz.metrics.roads.apls` with the reference's parameters on graphs in metres.
"""

from __future__ import annotations

from typing import Any

from rsviz.evaluation.results import EvalResult
from rsviz.postprocess.road_graph import RoadLines
from rsviz.types import Task


def evaluate_road_lines(gt: RoadLines, prop: RoadLines, **apls_params: Any) -> EvalResult:
    """APLS between two sets of road centre lines in one projected CRS.

    Each side becomes a graph with :func:`~rsviz.metrics.apls_core.graph_from_polylines`, treating a segment
    given twice as the reference's reader of its format does (``RoadLines.duplicates``).

    Args:
        gt: Ground-truth lines (metres).
        prop: Proposal lines, same CRS.
        **apls_params: Keywords of :func:`rsviz.metrics.roads.apls` (``buffer`` in metres, ``spacing``...).

    Returns:
        An :class:`~rsviz.evaluation.results.EvalResult` of the roads task with ``apls_4m`` (the buffer's
        value in the key), ``apls_gt_to_prop_4m``, ``apls_prop_to_gt_4m`` and the control-point counts.

    Raises:
        CRSError: The two sets are in different CRSs.
    """
    from rsviz.errors import CRSError
    from rsviz.metrics.roads import APLS_DEFAULTS, apls, graph_from_polylines

    if gt.crs != prop.crs:
        raise CRSError(f"ground truth ({gt.crs}) and proposal ({prop.crs}) lines are in different CRSs; reproject one")
    params = {**APLS_DEFAULTS, **apls_params}
    r = apls(
        graph_from_polylines(gt.lines, duplicates=gt.duplicates),
        graph_from_polylines(prop.lines, duplicates=prop.duplicates),
        **apls_params,
    )
    sfx = f"{params['buffer']:g}".replace(".", "p") + "m"
    values: dict[str, Any] = {
        f"apls_{sfx}": float(r.apls),
        f"apls_gt_to_prop_{sfx}": float(r.apls_gt_to_prop),
        f"apls_prop_to_gt_{sfx}": float(r.apls_prop_to_gt),
        "control_points_gt": r.control_gt,
        "control_points_prop": r.control_prop,
        "paths_gt": r.pairs_gt,
        "paths_prop": r.pairs_prop,
    }
    prm = {
        "apls_buffer_m": float(params["buffer"]),
        "apls_reference": {k: v for k, v in params.items() if k != "buffer"},
        "metric_crs": str(gt.crs),
    }
    stats = {"apls": {k: [v] for k, v in values.items() if k.startswith("apls_")}}
    return EvalResult(Task.ROADS, values, prm, images=1, stats=stats)
