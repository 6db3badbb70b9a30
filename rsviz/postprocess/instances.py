"""Building instances from footprint (and edge) probabilities.

The multi-task building model's edge head exists to separate buildings that touch in the
footprint mask (Ekim & Sertel, IGARSS 2021); turning probabilities into instances is therefore
part of the model, stated in its card as :class:`InstanceSettings` (``extra.instance_postprocess``,
chosen on val) and used the same way by object F1, the app's maps and the GeoJSON export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from rsviz.postprocess.settings import CardSettings


@dataclass(frozen=True)
class InstanceSettings(CardSettings):
    """Instance post-processing of a building model (arguments of :func:`split_instances`).

    Attributes:
        method: ``auto``, ``components``, ``edge`` or ``distance``.
        threshold: Footprint probability threshold, in [0, 1].
        edge_threshold: Edge probability threshold (``edge``), in [0, 1].
        min_seed_px: Smallest watershed seed kept (``edge``), pixels.
        min_distance: Minimum seed spacing (``distance``), pixels.
        min_instance_px: Instances under this many pixels are dropped.
        merge_below: Touching instances whose shared boundary has a mean edge probability below this are
            merged (0: off).
        keep_edge_instances: Exempt instances touching the image edge from ``min_instance_px``.
    """

    kind: ClassVar[str] = "instance post-processing"
    method: str = "auto"
    threshold: float = 0.5
    edge_threshold: float = 0.5
    min_seed_px: int = 8
    min_distance: int = 10
    min_instance_px: int = 0
    merge_below: float = 0.0
    keep_edge_instances: bool = False


def split_instances(
    prob: np.ndarray,
    edge_prob: np.ndarray | None = None,
    threshold: float = 0.5,
    edge_threshold: float = 0.5,
    min_seed_px: int = 8,
    method: str = "auto",
    min_distance: int = 10,
    min_instance_px: int = 0,
    merge_below: float = 0.0,
    keep_edge_instances: bool = False,
) -> np.ndarray:
    """Building instances from a footprint probability map.

    Methods:

    * ``components``: 4-connected components of ``prob >= threshold``;
    * ``edge`` (needs ``edge_prob``): seeds are the components of ``footprint & ~edge`` (at least
      ``min_seed_px`` pixels), grown back over the footprint with a watershed on ``-prob``
      (:func:`skimage.segmentation.watershed`), so buildings that touch in the mask are separated
      where the edge head sees a wall -- the purpose of the edge head in Ekim & Sertel (IGARSS 2021);
    * ``distance``: seeds at local maxima of the footprint's Euclidean distance transform at
      least ``min_distance`` pixels apart (:func:`skimage.feature.peak_local_max`), watershed on
      the negated distance -- the classic split of touching blobs, no edge head needed;
    * ``auto``: ``edge`` when ``edge_prob`` is given, else ``components``.

    Args:
        prob: ``(H, W)`` footprint probability.
        edge_prob: Optional ``(H, W)`` boundary probability.
        threshold: Footprint threshold.
        edge_threshold: Edge threshold (``edge``).
        min_seed_px: Smallest seed kept (``edge``).
        method: See above.
        min_distance: Minimum seed spacing in pixels (``distance``).
        min_instance_px: Instances smaller than this many pixels are dropped (set to 0): slivers
            left between edges and specks are not buildings.
        merge_below: With ``edge_prob``, touching instances whose shared boundary has a mean edge
            probability below this are merged (:func:`merge_weak_boundaries`), which undoes splits
            along roof ridges and texture the edge head only half believes; 0 disables.
        keep_edge_instances: Exempt instances that touch the image edge (first/last row or column)
            from ``min_instance_px``: a building cut by a chip edge can be small inside the chip.

    Returns:
        ``(H, W)`` int32 instance ids (0 background); every footprint pixel belongs to an instance
        unless it was in an instance under ``min_instance_px``.

    Raises:
        ValueError: Unknown method, or ``edge`` without ``edge_prob``.
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.measure import label
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    fg = np.asarray(prob) >= threshold
    if method == "auto":
        method = "edge" if edge_prob is not None else "components"
    if method == "components":
        inst = label(fg, connectivity=1)
    elif method == "edge":
        if edge_prob is None:
            raise ValueError("method 'edge' needs an edge probability map")
        seeds = fg & (np.asarray(edge_prob) < edge_threshold)
        seeds = remove_small_objects(seeds, max_size=min_seed_px - 1) if seeds.any() else seeds
        markers = label(seeds, connectivity=1)
        inst = watershed(-np.asarray(prob, np.float32), markers, mask=fg)
    elif method == "distance":
        dist = ndimage.distance_transform_edt(fg)
        comps = label(fg, connectivity=1)
        peaks = peak_local_max(dist, min_distance=min_distance, labels=comps, exclude_border=False)
        markers = np.zeros(fg.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        inst = watershed(-dist, markers, mask=fg)
    else:
        raise ValueError(f"unknown method {method!r}; valid: auto, components, edge, distance")
    # footprint pixels no seed reached (thin parts cut off by edges) keep their own components
    rest = fg & (inst == 0)
    if rest.any():
        extra = label(rest, connectivity=1)
        inst = np.where(rest, extra + inst.max(), inst)
    inst = inst.astype(np.int32)
    if merge_below > 0 and edge_prob is not None:
        inst = merge_weak_boundaries(inst, edge_prob, merge_below)
    if min_instance_px > 0 and inst.any():
        small = np.bincount(inst.ravel()) < min_instance_px
        small[0] = False
        if keep_edge_instances:
            small[np.concatenate([inst[0], inst[-1], inst[:, 0], inst[:, -1]])] = False
        inst[small[inst]] = 0
    return inst


def merge_weak_boundaries(instances: np.ndarray, edge_prob: np.ndarray, threshold: float) -> np.ndarray:
    """Merge touching instances whose shared boundary is weak in the edge map.

    Builds the region adjacency graph of ``instances`` with the mean of ``edge_prob`` along
    each shared boundary as edge weight (:func:`skimage.graph.rag_boundary`), drops
    background and every boundary with weight ``>= threshold``, and gives each connected
    group of instances one id (a threshold cut of the RAG, as in
    :func:`skimage.graph.cut_threshold`, but keeping 0 for background).

    Args:
        instances: ``(H, W)`` int instance ids, 0 background.
        edge_prob: ``(H, W)`` boundary probability in [0, 1].
        threshold: Boundaries with a mean edge probability below this are merged.

    Returns:
        ``(H, W)`` int32 instance ids, consecutive from 1.

    Raises:
        ValueError: If the two arrays differ in shape.
    """
    import networkx as nx
    from skimage import graph

    inst = np.asarray(instances).astype(np.int32)
    if inst.shape != np.shape(edge_prob):
        raise ValueError(f"instances {inst.shape} and edge_prob {np.shape(edge_prob)} differ in shape")
    if inst.max() < 2:
        return inst
    rag = graph.rag_boundary(inst, np.asarray(edge_prob, np.float64), connectivity=1)
    if 0 in rag:
        rag.remove_node(0)
    rag.remove_edges_from([(a, b) for a, b, d in rag.edges(data=True) if d["weight"] >= threshold])
    lut = np.zeros(int(inst.max()) + 1, np.int32)
    for i, comp in enumerate(nx.connected_components(rag), start=1):
        lut[list(comp)] = i
    return lut[inst]


def instances_for(
    heads: Mapping[str, np.ndarray], settings: InstanceSettings | Mapping[str, Any] | None = None
) -> np.ndarray:
    """Building instances of a prediction's heads with a card's post-processing.

    Args:
        heads: Prediction heads: ``probs`` ``(1, H, W)`` float32 footprint probability in [0, 1], and
            optionally ``edge`` ``(H, W)`` float32 boundary probability.
        settings: :class:`InstanceSettings` (or a card's ``extra.instance_postprocess`` dict; missing
            keys take the defaults); the defaults when None.

    Returns:
        ``(H, W)`` int32 instance ids (0 = background), see :func:`split_instances`.
    """
    s = settings if isinstance(settings, InstanceSettings) else InstanceSettings.from_dict(settings)
    return split_instances(
        heads["probs"][0],
        heads.get("edge"),
        s.threshold,
        s.edge_threshold,
        s.min_seed_px,
        s.method,
        s.min_distance,
        s.min_instance_px,
        s.merge_below,
        s.keep_edge_instances,
    )
