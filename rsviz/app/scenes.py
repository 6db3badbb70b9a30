"""Sample-scene catalog for the app: which scenes exist, loading them, drawing them on a map."""

from __future__ import annotations

from dataclasses import dataclass

import folium
import numpy as np
from rasterio.warp import Resampling

from rsviz.app.mapview import add_overlay, add_rectangle, fit_bounds, make_map, rgb_to_rgba
from rsviz.data import catalog
from rsviz.datasets import Sample, SceneRef, scenes
from rsviz.display import palette_rgba, to_rgb8
from rsviz.errors import DataMissingError

#: Datasets offered in the app's scene picker (imagery with ground truth; all georeferenced but the ETH
#: road tiles, which open as whole images).
MAP_DATASETS = (
    "banepa-buildings",
    "kampala-buildings",
    "joplin-buildings",
    "tanzania-austin-buildings",
    "spacenet-samples",
    "neon-trees",
    "eth-roads",
)

#: Only these splits of a dataset are offered (the ETH road tiles: the 10 held-out test tiles, not all 100).
MAP_SPLITS = {"eth-roads": ("test",)}


@dataclass(frozen=True)
class SceneOption:
    """A scene in the picker: ``label`` is what the user sees."""

    dataset: str
    id: str
    split: str
    label: str


def scene_options(datasets: tuple[str, ...] = MAP_DATASETS) -> tuple[list[SceneOption], list[str]]:
    """Georeferenced sample scenes available in the data cache.

    Returns:
        ``(options, problems)``; ``problems`` lists datasets that are not fetched, with the
        command that fetches them.
    """
    out, problems = [], []
    for d in datasets:
        try:
            catalog.require(d)
        except DataMissingError as exc:
            problems.append(str(exc))
            continue
        for s in scenes(d):
            if d in MAP_SPLITS and s.split not in MAP_SPLITS[d]:
                continue
            out.append(SceneOption(d, s.id, s.split, f"{d} / {s.id} ({s.split})"))
    return out, problems


def find_scene(dataset: str, scene_id: str) -> SceneRef:
    """The :class:`SceneRef` with this id (raises ``KeyError`` naming valid ids)."""
    refs = scenes(dataset)
    for r in refs:
        if r.id == scene_id:
            return r
    raise KeyError(f"no scene {scene_id!r} in {dataset}; valid: {[r.id for r in refs][:10]}...")


def ground_truth_layer(sample: Sample) -> tuple[np.ndarray, str] | None:
    """RGBA ground-truth overlay of a sample (buildings, roads, classes or height) and its name."""
    t = sample.targets
    for key in ("buildings", "roads"):
        if key in t:
            return palette_rgba(t[key], sample.classes, alpha=140, valid=sample.valid), f"ground truth: {key}"
    if "classes" in t:
        return palette_rgba(
            t["classes"], sample.classes, alpha=140, transparent=(), valid=sample.valid
        ), "ground truth: classes"
    if "height" in t:
        from rsviz.display import colormap_rgba

        return colormap_rgba(
            t["height"], "viridis", valid=sample.valid
        ), f"ground truth: height ({sample.height_units})"
    return None


def scene_map(
    sample: Sample,
    *,
    show_gt: bool = True,
    basemap: bool = False,
    gt_opacity: float = 0.6,
    image_opacity: float = 1.0,
    extent: tuple[float, float, float, float] | None = None,
    draw: bool = True,
    height: int = 600,
) -> folium.Map:
    """A map of one georeferenced sample: imagery overlay, optional ground truth, draw tool.

    Args:
        sample: Georeferenced sample.
        show_gt: Ground-truth layer initially visible.
        basemap: Add OpenStreetMap tiles (need internet).
        gt_opacity: Ground-truth overlay opacity, 0-1.
        image_opacity: Imagery overlay opacity, 0-1.
        extent: EPSG:4326 ``(west, south, east, north)`` to outline, or None.
        draw: Add the rectangle draw tool.
        height: Map height, pixels.

    Raises:
        CRSError: If the sample is not georeferenced.
    """
    m = make_map(basemap=basemap, draw=draw, height=height)
    rgb = rgb_to_rgba(to_rgb8(sample.image, valid=sample.valid), sample.valid)
    b = add_overlay(
        m, rgb, sample.transform, sample.crs, "imagery", opacity=image_opacity, resampling=Resampling.bilinear
    )
    gt = ground_truth_layer(sample)
    if gt is not None:
        add_overlay(m, gt[0], sample.transform, sample.crs, gt[1], opacity=gt_opacity, show=show_gt)
    if extent is not None:
        add_rectangle(m, extent)
    folium.LayerControl(collapsed=False).add_to(m)
    fit_bounds(m, b)
    return m
