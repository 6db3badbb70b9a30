"""Road metrics: relaxed precision / recall (Mnih & Hinton 2010) and APLS (Van Etten et al. 2018).

**Relaxed precision/recall** (Mnih & Hinton, "Learning to Detect Roads in High-Resolution
Aerial Images", ECCV 2010): precision is the fraction of predicted road pixels within
``rho`` pixels of a ground-truth road pixel; recall the fraction of ground-truth road
pixels within ``rho`` of a predicted one; relaxed F1 their harmonic mean.

**APLS** (Average Path Length Similarity; Van Etten, Lindenbaum & Bacastow, "SpaceNet: A
Remote Sensing Dataset and Challenge Series", 2018; CosmiQ ``apls``): road networks are
graphs with edge weights = geometric length. Control nodes are intersections and end
points plus points every ``spacing`` along roads. For each pair of ground-truth control
nodes ``(a, b)`` joined by a path of length ``L``, the nodes are snapped to the nearest
proposal nodes within ``buffer``; the pair scores ``min(1, |L - L'| / L)`` with ``L'`` the
proposal path length, or 1 if a node cannot be snapped or no proposal path exists.
``APLS_gt->prop = 1 - mean(score)``; the same is computed from the proposal side, and APLS
is the harmonic mean of the two. Graphs come from mask skeletons
(:func:`graph_from_mask`) or from road line vectors (:func:`graph_from_lines`).

The snapping buffer of the definition is :data:`SPACENET_BUFFER_M` = 4 m (CosmiQ ``apls``
``max_snap_dist=4`` on graphs in metres); on pixel graphs it is ``4 m / GSD`` pixels
(:func:`spacenet_buffer_px`).
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Mapping

import networkx as nx
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from rsviz.postprocess.road_graph import RoadGraphSettings, mask_graphs, road_graphs


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


def _apls_one_way(
    g_src: nx.Graph, g_dst: nx.Graph, buffer: float, max_nodes: int, rng: np.random.Generator
) -> tuple[float, int]:
    ctrl = [n for n, d in g_src.nodes(data=True) if d.get("control")]
    if len(ctrl) > max_nodes:
        ctrl = list(rng.choice(ctrl, size=max_nodes, replace=False))
    if len(ctrl) < 2:
        return float("nan"), 0
    dst_nodes = list(g_dst.nodes)
    snapped: dict[Hashable, Hashable | None] = {}
    if dst_nodes:
        tree = cKDTree(np.array([g_dst.nodes[n]["xy"] for n in dst_nodes]))
        for n in ctrl:
            d, i = tree.query(g_src.nodes[n]["xy"])
            snapped[n] = dst_nodes[int(i)] if d <= buffer else None
    scores = []
    for a in ctrl:
        lengths = nx.single_source_dijkstra_path_length(g_src, a, weight="length")
        sa = snapped.get(a)
        dlen = nx.single_source_dijkstra_path_length(g_dst, sa, weight="length") if sa is not None else {}
        for b in ctrl:
            if b == a or b not in lengths or lengths[b] <= 0:
                continue
            sb = snapped.get(b)
            if sa is None or sb is None or sb not in dlen:
                scores.append(1.0)
            else:
                scores.append(min(1.0, abs(lengths[b] - dlen[sb]) / lengths[b]))
    if not scores:
        return float("nan"), 0
    return 1.0 - float(np.mean(scores)), len(scores)


def apls(
    g_gt: nx.Graph, g_prop: nx.Graph, *, buffer: float = 4.0, max_nodes: int = 300, seed: int = 0
) -> dict[str, float]:
    """APLS between a ground-truth and a proposal road graph (see module docstring).

    Args:
        g_gt: Ground-truth graph (node ``xy``, ``control``; edge ``length``).
        g_prop: Proposal graph, same coordinates.
        buffer: Snapping distance for control nodes (same units as ``xy``).
        max_nodes: Control nodes sampled per side (seeded) to bound the cost.
        seed: Sampling seed.

    Returns:
        ``{"apls", "apls_gt_to_prop", "apls_prop_to_gt", "pairs_gt", "pairs_prop"}``;
        ``apls`` is 0 if either direction is 0 and NaN when the ground truth has < 2 control nodes.
    """
    rng = np.random.default_rng(seed)
    a, na = _apls_one_way(g_gt, g_prop, buffer, max_nodes, rng)
    b, nb = _apls_one_way(g_prop, g_gt, buffer, max_nodes, rng)
    if math.isnan(a):
        h = float("nan")
    elif math.isnan(b):
        h = 0.0 if g_prop.number_of_nodes() < 2 else a
    else:
        h = 2 * a * b / (a + b) if a + b > 0 else 0.0
    return {"apls": h, "apls_gt_to_prop": a, "apls_prop_to_gt": b, "pairs_gt": na, "pairs_prop": nb}


def apls_from_masks(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    spacing: float = 20.0,
    buffer: float = 4.0,
    max_nodes: int = 300,
    min_spur: float = 20.0,
    clean: bool = True,
    closing_px: int = 2,
    bridge_px: float = 0.0,
    bridge_angle: float = 30.0,
) -> dict[str, float]:
    """APLS between skeleton graphs of two road masks (pixel units).

    The proposal graph is the skeleton of the predicted mask after :func:`clean_road_mask`
    (when ``clean``, closing radius ``closing_px``); both graphs have terminal branches shorter
    than ``min_spur`` pixels pruned (:func:`prune_spurs`); with ``bridge_px`` > 0 the proposal's
    dead ends are joined across gaps (:func:`bridge_gaps`). A model card states the values it was
    measured with (``extra.road_graph``, chosen on validation tiles).

    Args:
        pred: ``(H, W)`` {0, 1} predicted road mask.
        target: ``(H, W)`` {0, 1} ground-truth road mask.
        spacing: Control node spacing, pixels.
        buffer: Snapping distance, pixels (SpaceNet uses 4 m: convert with the GSD).
        max_nodes: Control nodes sampled per side.
        min_spur: Spur pruning length, pixels.
        clean: Clean the predicted mask first.
        closing_px: Closing radius of the cleaning, pixels.
        bridge_px: Longest gap bridged in the proposal graph, pixels (0: none).
        bridge_angle: Largest angle between a dead end's direction and its bridge, degrees.

    Returns:
        See :func:`apls`.
    """
    return apls(
        *mask_graphs(pred, target, spacing, min_spur, clean, closing_px, bridge_px, bridge_angle),
        buffer=buffer,
        max_nodes=max_nodes,
    )


def road_graph_apls(
    prob: np.ndarray, target: np.ndarray, params: RoadGraphSettings | Mapping[str, Any], *, buffer: float = 4.0
) -> dict[str, float]:
    """APLS of a road probability map under a card's graph parameters (``extra.road_graph``).

    Args:
        prob: ``(H, W)`` float road probability in [0, 1].
        target: ``(H, W)`` {0, 1} ground-truth road mask.
        params: ``threshold`` (road where ``prob >= threshold``), ``closing_px``, ``min_spur``,
            ``bridge_px``, ``bridge_angle`` (see :func:`apls_from_masks`); missing keys take
            :data:`rsviz.models.card.ROAD_GRAPH_DEFAULTS`.
        buffer: Snapping distance, pixels.

    Returns:
        See :func:`apls`.
    """
    return apls(*road_graphs(prob, target, params), buffer=buffer)
