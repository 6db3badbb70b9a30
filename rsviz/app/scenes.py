"""Sample-scene catalog for the app and the map of a scene (tile layers from this server).

The picker offers the mosaicked sample areas (:mod:`rsviz.datasets.mosaics`: whole blocks of
contiguous chips to pan across, with the train/val/test outline) and the single catalog chips.
"""

from __future__ import annotations

from dataclasses import dataclass

import folium

from rsviz.app.layers import MapLayer
from rsviz.app.mapview import add_geojson_outline, add_rectangle, add_tile_layer, fit_bounds, make_map
from rsviz.data import catalog
from rsviz.datasets import SceneRef, scenes
from rsviz.errors import DataMissingError
from rsviz.types import BBox
from rsviz.workspace import Scene

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
    """A scene in the picker: ``label`` is what the user sees; ``mosaic`` names a mosaicked area."""

    dataset: str
    id: str
    split: str
    label: str
    mosaic: str | None = None

    @property
    def source(self) -> str:
        """The :attr:`rsviz.workspace.Scene.source` of the scene this option opens."""
        return f"mosaic:{self.mosaic}" if self.mosaic else f"sample:{self.dataset}/{self.id}"


def option_index(opts: list[SceneOption], current: Scene | None) -> int:
    """The option of the open scene if it is one of ``opts``, else the default: the first mosaicked area, else
    the first held-out chip, else the first option."""
    for i, o in enumerate(opts):
        if current is not None and o.source == current.source:
            return i
    return next(
        (i for i, o in enumerate(opts) if o.mosaic), next((i for i, o in enumerate(opts) if o.split == "test"), 0)
    )


def scene_options(datasets: tuple[str, ...] = MAP_DATASETS) -> tuple[list[SceneOption], list[str]]:
    """Sample scenes available in the data cache: mosaicked areas first, then single chips.

    Returns:
        ``(options, problems)``; ``problems`` lists datasets that are not fetched, with the
        command that fetches them.
    """
    from rsviz.datasets.mosaics import mosaic_names

    out: list[SceneOption] = [
        SceneOption("mosaic", m, "area", f"area: {m} (mosaic of chips)", mosaic=m) for m in mosaic_names()
    ]
    problems = []
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


def scene_map(
    scene: Scene,
    layers: list[MapLayer],
    *,
    base_url: str = "",
    basemap: bool = False,
    extent: BBox | None = None,
    view: BBox | None = None,
    draw: bool = True,
    height: int = 600,
    opacity: dict[str, float] | None = None,
) -> folium.Map:
    """A map of a georeferenced scene: its tile layers (served by this app), the split outline, the extent.

    Args:
        scene: The scene (georeferenced).
        layers: Registered layers, bottom first (imagery, ground truth, runs).
        base_url: Streamlit ``server.baseUrlPath``.
        basemap: Add OpenStreetMap tiles (need internet).
        extent: EPSG:4326 ``(west, south, east, north)`` to outline, or None.
        view: EPSG:4326 bounds to fit the map to (default: the extent, else the scene).
        draw: Add the rectangle draw tool.
        height: Map height, pixels.
        opacity: Layer name -> opacity overriding the layer's own.

    Raises:
        CRSError: If the scene is not georeferenced.
    """
    from rsviz.app.layers import max_zoom
    from rsviz.errors import CRSError

    if scene.bounds_4326 is None:
        raise CRSError(f"{scene.name} has no CRS, so it cannot be placed on the map; georeference it first")
    zooms = [max_zoom(lyr) for lyr in layers]
    top = max((z[1] for z in zooms), default=22)
    m = make_map(basemap=basemap, draw=draw, height=height, max_zoom=top, base_url=base_url)
    for lyr, (native, _mz) in zip(layers, zooms, strict=True):
        add_tile_layer(
            m,
            lyr,
            base_url,
            bounds=scene.bounds_4326,
            max_zoom=top,
            max_native_zoom=native,  # deeper, Leaflet scales the native tiles up (class layers stay pixelated)
            opacity=(opacity or {}).get(lyr.name, lyr.opacity),
        )
    if scene.splits is not None and scene.splits.exists():
        add_geojson_outline(m, scene.splits, "train / val / test areas")
    if extent is not None:
        add_rectangle(m, extent)
    folium.LayerControl(collapsed=False).add_to(m)
    fit_bounds(m, view or extent or scene.bounds_4326)
    return m
