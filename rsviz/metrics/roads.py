"""Road metrics: relaxed precision / recall (Mnih & Hinton 2010) and APLS (Van Etten et al. 2018).

**Relaxed precision/recall** (Mnih & Hinton, "Learning to Detect Roads in High-Resolution
Aerial Images", ECCV 2010): precision is the fraction of predicted road pixels within
``rho`` pixels of a ground-truth road pixel; recall the fraction of ground-truth road
pixels within ``rho`` of a predicted one; relaxed F1 their harmonic mean.

**APLS** (Average Path Length Similarity; Van Etten, Lindenbaum & Bacastow, "SpaceNet: A
Remote Sensing Dataset and Challenge Series", 2018) follows CosmiQ's reference implementation
step by step: :mod:`rsviz.metrics.apls_core` (control points at nodes and every 50 m, inserted
into the other graph's nearest edge within 4 m, paths compared both ways, harmonic mean).
Graphs come from mask skeletons (:func:`graph_from_mask`) or from road line vectors
(:func:`graph_from_lines`, :func:`~rsviz.metrics.apls_core.graph_from_polylines`), in metres
(``scale`` = the GSD for pixel graphs) for the SpaceNet definition.

The snapping buffer of the definition is :data:`SPACENET_BUFFER_M` = 4 m (CosmiQ ``apls``
``max_snap_dist=4`` on graphs in metres); :func:`spacenet_buffer_px` gives it in pixels.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from scipy import ndimage

from rsviz.metrics.apls_core import APLS_DEFAULTS, APLSResult, apls, apls_length, graph_from_polylines
from rsviz.postprocess.road_graph import RoadGraphSettings, mask_graphs, road_graphs

__all__ = [
    "APLS_DEFAULTS",
    "APLSResult",
    "SPACENET_BUFFER_M",
    "apls",
    "apls_from_masks",
    "apls_length",
    "graph_from_polylines",
    "relaxed_precision_recall",
    "road_graph_apls",
    "spacenet_buffer_px",
]


def relaxed_precision_recall(
    pred: np.ndarray, target: np.ndarray, rho: float = 3.0, valid: np.ndarray | None = None
) -> dict[str, float]:
    """Relaxed precision, recall and F1 within ``rho`` pixels.

    Args:
        pred: ``(H, W)`` {0,1} predicted road mask.
        target: ``(H, W)`` {0,1} ground-truth road mask.
        rho: Slack in pixels (Mnih & Hinton use 3).
        valid: Optional evaluated pixels.

    Returns:
        ``{"precision", "recall", "f1", "rho_px"}``; NaN where undefined.
    """
    p, t = np.asarray(pred, bool), np.asarray(target, bool)
    if valid is not None:
        p, t = p & valid, t & valid
    prec = (
        float((ndimage.distance_transform_edt(~t)[p] <= rho).mean())
        if p.any() and t.any()
        else (0.0 if p.any() else float("nan"))
    )
    rec = (
        float((ndimage.distance_transform_edt(~p)[t] <= rho).mean())
        if t.any() and p.any()
        else (0.0 if t.any() else float("nan"))
    )
    f1 = (
        2 * prec * rec / (prec + rec)
        if (prec + rec) > 0
        else (0.0 if not (math.isnan(prec) or math.isnan(rec)) else float("nan"))
    )
    return {"precision": prec, "recall": rec, "f1": f1, "rho_px": rho}


#: APLS snapping buffer of the SpaceNet definition, metres (Van Etten et al. 2018; CosmiQ ``apls`` ``max_snap_dist``).
SPACENET_BUFFER_M = 4.0


def spacenet_buffer_px(gsd_m: float) -> float:
    """The 4 m APLS snapping buffer in pixels of a ``gsd_m`` metres-per-pixel grid.

    Raises:
        ValueError: ``gsd_m`` is not a positive number.
    """
    if not gsd_m or not math.isfinite(gsd_m) or gsd_m <= 0:
        raise ValueError(f"the GSD must be a positive number of metres per pixel; got {gsd_m!r}")
    return SPACENET_BUFFER_M / gsd_m


def apls_from_masks(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    scale: float = 1.0,
    min_spur: float = 20.0,
    clean: bool = True,
    closing_px: int = 2,
    bridge_px: float = 0.0,
    bridge_angle: float = 30.0,
    **params: Any,
) -> APLSResult:
    """APLS between skeleton graphs of two road masks.

    The proposal graph is the skeleton of the predicted mask after :func:`clean_road_mask`
    (when ``clean``, closing radius ``closing_px``); both graphs have terminal branches shorter
    than ``min_spur`` pixels pruned (:func:`prune_spurs`); with ``bridge_px`` > 0 the proposal's
    dead ends are joined across gaps (:func:`bridge_gaps`). A model card states the values it was
    measured with (``extra.road_graph``, chosen on validation tiles).

    Args:
        pred: ``(H, W)`` {0, 1} predicted road mask.
        target: ``(H, W)`` {0, 1} ground-truth road mask.
        scale: Metres per pixel (the GSD) to score in metres as SpaceNet does; 1 scores in pixels
            (every distance of :func:`~rsviz.metrics.apls_core.apls` is then in pixels).
        min_spur: Spur pruning length, pixels.
        clean: Clean the predicted mask first.
        closing_px: Closing radius of the cleaning, pixels.
        bridge_px: Longest gap bridged in the proposal graph, pixels (0: none).
        bridge_angle: Largest angle between a dead end's direction and its bridge, degrees.
        **params: Keywords of :func:`~rsviz.metrics.apls_core.apls` (``buffer``, ``spacing``...).

    Returns:
        :class:`~rsviz.metrics.apls_core.APLSResult`.
    """
    return apls(
        *mask_graphs(pred, target, 20.0, min_spur, clean, closing_px, bridge_px, bridge_angle),
        scale=scale,
        **params,
    )


def road_graph_apls(
    prob: np.ndarray,
    target: np.ndarray,
    params: RoadGraphSettings | Mapping[str, Any],
    *,
    scale: float = 1.0,
    **apls_params: Any,
) -> APLSResult:
    """APLS of a road probability map under a card's graph parameters (``extra.road_graph``).

    Args:
        prob: ``(H, W)`` float road probability in [0, 1].
        target: ``(H, W)`` {0, 1} ground-truth road mask.
        params: ``threshold`` (road where ``prob >= threshold``), ``closing_px``, ``min_spur``,
            ``bridge_px``, ``bridge_angle`` (see :func:`apls_from_masks`); missing keys take
            :data:`rsviz.models.card.ROAD_GRAPH_DEFAULTS`.
        scale: Metres per pixel (1: score in pixels).
        **apls_params: Keywords of :func:`~rsviz.metrics.apls_core.apls` (``buffer``...).

    Returns:
        :class:`~rsviz.metrics.apls_core.APLSResult`.
    """
    return apls(*road_graphs(prob, target, params), scale=scale, **apls_params)
