"""Building-footprint datasets: Banepa, Kampala, Joplin, Tanzania and Austin.

Ground truth is ``targets["instances"]`` (int32, one id per footprint polygon, 0 =
background) rasterized onto the image grid (pixel centre inside polygon),
``targets["buildings"]`` (uint8 0/1, ``instances > 0``) and ``targets["edges"]``: the
boundaries of every footprint, so shared walls between touching buildings are edges too
(:func:`rsviz.labels.edges_from_mask` on the instance map, 3 px wide).

Split rules (fixed, spatially disjoint; tile indices are XYZ at the stated zoom):

* **Banepa** (zoom 19 chips, x 386690-386695, y 220241-220248): *test* = the
  south-east block x in {386694, 386695}, y in {220245..220248} (8 chips);
  *val* = the south-west block x in {386690, 386691, 386692}, y in {220247, 220248}
  (6 chips); *train* = the other 34 chips; the 16 unlabelled ``predict/`` chips are
  split ``predict``.
* **Kampala** (zoom 20 tiles): two clusters. The western cluster (x <= 619213, 4 tiles)
  is *test*; in the eastern cluster the column x = 619229 (4 tiles) is *val*, the rest
  (20 tiles) *train*. Zoom 19 / 21 versions of the same ground follow the same rule by
  their zoom-20 parent tile.
* **Joplin**, **Tanzania**, **Austin**: *test* only (out-of-domain checks).

Cross-validation (:func:`building_cv_folds`): the labelled train and val chips of Banepa and Kampala
(40 + 24) are dealt to k folds by 2 x 2 blocks of neighbouring chips, each city on its own grid; the test
blocks above stay untouched. :func:`scoring_valid` drops from scoring the footprints cut by an edge
shared with a chip of another fold or split (:mod:`rsviz.datasets.blocks`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from rasterio.transform import from_bounds

from rsviz.data import catalog
from rsviz.datasets.base import ClassInfo, Sample, SceneRef
from rsviz.datasets.blocks import BlockFolds, block_folds, buffered_valid, cut_sides
from rsviz.errors import SplitError
from rsviz.geo import WEB_MERCATOR, parse_oam_tile_name, tile_bounds_3857
from rsviz.labels import edges_from_mask, rasterize_instances, read_geojson_features, threshold_mask
from rsviz.raster import read_raster

BUILDING_CLASSES = (ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "building", (230, 25, 75)))

BANEPA = "banepa-buildings"
BANEPA_DIR = "data/sample"
BANEPA_OSM = "data/sample/train/osm/osm_features_ac7e343eb1faacd2.geojson"
KAMPALA = "kampala-buildings"
KAMPALA_DIR = "ramp-data/sample_2/input"


def banepa_split(x: int, y: int) -> str:
    """Split of a Banepa zoom-19 chip (see module docstring)."""
    if x in (386694, 386695) and 220245 <= y <= 220248:
        return "test"
    if x in (386690, 386691, 386692) and y in (220247, 220248):
        return "val"
    return "train"


def kampala_split(x: int, y: int, z: int) -> str:
    """Split of a Kampala tile by its zoom-20 ancestor/descendant (see module docstring)."""
    x20 = x >> (z - 20) if z >= 20 else x << (20 - z)
    if x20 <= 619213:
        return "test"
    if x20 == 619229:
        return "val"
    return "train"


@lru_cache(maxsize=8)
def _features(dataset: str, relpath: str):
    return read_geojson_features(catalog.local_path(dataset, relpath))


def _geometries(dataset: str, relpath: str):
    feats, crs = _features(dataset, relpath)
    return [f["geometry"] for f in feats], crs


def _building_sample(dataset, sid, split, path, raster, geoms, src_crs) -> Sample:
    """Sample of an RGB(A) raster; ``split == "predict"`` (unlabelled) gives no targets."""
    targets = {}
    if split != "predict":
        inst = rasterize_instances(geoms, raster.transform, raster.shape, raster.crs, src_crs)
        targets = {"buildings": (inst > 0).astype(np.uint8), "edges": edges_from_mask(inst), "instances": inst}
    return Sample(
        id=sid,
        dataset=dataset,
        split=split,
        image=raster.array[:3],
        band_names=("red", "green", "blue"),
        scale=(0.0, 255.0),
        transform=raster.transform,
        crs=raster.crs,
        valid=raster.valid,
        targets=targets,
        classes=BUILDING_CLASSES,
        path=path,
    )


def load_banepa(path: Path, split: str) -> Sample:
    """Load one Banepa chip (RGB uint8, EPSG:4326, ~0.13 m) with rasterized OSM buildings."""
    r = read_raster(path)
    geoms, crs = ([], None) if split == "predict" else _geometries(BANEPA, BANEPA_OSM)
    return _building_sample(BANEPA, path.stem, split, path, r, geoms, crs)


def banepa_scenes() -> list[SceneRef]:
    """All Banepa chips (48 labelled + 16 ``predict``), sorted by id."""
    root = catalog.dataset_root(BANEPA)
    out = []
    for e in catalog.files(BANEPA):
        if not e.path.endswith(".tif"):
            continue
        p = root.parent / e.path
        x, y, _ = parse_oam_tile_name(p.stem)
        split = "predict" if "/predict/" in e.path else banepa_split(x, y)
        out.append(
            SceneRef(
                BANEPA,
                p.stem,
                split,
                p,
                (lambda p=p, s=split: load_banepa(p, s)),
                image_loader=lambda p=p: load_banepa(p, "predict"),
            )
        )
    return sorted(out, key=lambda s: s.id)


def load_kampala(path: Path, split: str) -> Sample:
    """Load one Kampala PNG tile, georeferenced from its ``OAM-x-y-z`` name (EPSG:3857)."""
    x, y, z = parse_oam_tile_name(path.stem)
    r = read_raster(path)
    r.transform = from_bounds(*tile_bounds_3857(x, y, z), r.shape[1], r.shape[0])
    r.crs = WEB_MERCATOR
    if r.count == 4:  # RGBA: alpha is the valid mask
        r.valid = r.array[3] > 0
    geoms, crs = ([], None) if split == "predict" else _geometries(KAMPALA, f"{KAMPALA_DIR}/labels.geojson")
    return _building_sample(KAMPALA, path.stem, split, path, r, geoms, crs)


def kampala_scenes(zoom: int | None = 20) -> list[SceneRef]:
    """Kampala tiles at ``zoom`` (19, 20 or 21; None for all), sorted by id."""
    root = catalog.dataset_root(KAMPALA)
    out = []
    for e in catalog.files(KAMPALA):
        if not e.path.endswith(".png"):
            continue
        p = root.parent / e.path
        x, y, z = parse_oam_tile_name(p.stem)
        if zoom is not None and z != zoom:
            continue
        split = "predict" if "/prediction/" in e.path else kampala_split(x, y, z)
        out.append(
            SceneRef(
                KAMPALA,
                p.stem,
                split,
                p,
                (lambda p=p, s=split: load_kampala(p, s)),
                image_loader=lambda p=p: load_kampala(p, "predict"),
            )
        )
    return sorted(out, key=lambda s: s.id)


JOPLIN = "joplin-buildings"


def load_joplin(path: Path) -> Sample:
    """One Joplin tile (RGB, EPSG:26915, 0.6 m) with Microsoft footprints."""
    r = read_raster(path)
    return _building_sample(JOPLIN, path.stem, "test", path, r, *_geometries(JOPLIN, "tests/data/misc/joplin.geojson"))


def joplin_scenes() -> list[SceneRef]:
    """The four Joplin tiles (split ``test``)."""
    root = catalog.dataset_root(JOPLIN)
    out = []
    for e in catalog.files(JOPLIN):
        if e.path.endswith(".tif"):
            p = root.parent / e.path
            out.append(SceneRef(JOPLIN, p.stem, "test", p, (lambda p=p: load_joplin(p))))
    return sorted(out, key=lambda s: s.id)


TANZANIA = "tanzania-austin-buildings"


def load_tanzania() -> Sample:
    """Open AI Tanzania crop (RGB, EPSG:32737, 7.7 cm) with its building polygons."""
    p = catalog.local_path(TANZANIA, "tests/data/tanzania/input/training/images/tanzania_sample.tif")
    r = read_raster(p)
    return _building_sample(
        TANZANIA,
        "tanzania",
        "test",
        p,
        r,
        *_geometries(TANZANIA, "tests/data/tanzania/input/training/labels/tanzania_sample.geojson"),
    )


def load_austin() -> Sample:
    """Inria Aerial crop, Austin TX (RGB, EPSG:26914, 0.3 m) with its 0/255 building mask."""
    p = catalog.local_path(TANZANIA, "tests/data/aerial/input/training/images/aerial_sample.tif")
    r = read_raster(p)
    m = read_raster(catalog.local_path(TANZANIA, "tests/data/aerial/input/training/labels/aerial_sample.tif"))
    mask = threshold_mask(m.array)
    from skimage.measure import label

    return Sample(
        id="austin",
        dataset=TANZANIA,
        split="test",
        image=r.array[:3],
        band_names=("red", "green", "blue"),
        transform=r.transform,
        crs=r.crs,
        valid=r.valid,
        targets={
            "buildings": mask,
            "edges": edges_from_mask(mask),
            "instances": label(mask, connectivity=1).astype(np.int32),
        },
        classes=BUILDING_CLASSES,
        path=p,
    )


def tanzania_austin_scenes() -> list[SceneRef]:
    """The Tanzania and Austin scenes (split ``test``)."""
    root = catalog.dataset_root(TANZANIA).parent
    base = f"{TANZANIA}/tests/data"
    return [
        SceneRef(
            TANZANIA, "austin", "test", root / f"{base}/aerial/input/training/images/aerial_sample.tif", load_austin
        ),
        SceneRef(
            TANZANIA,
            "tanzania",
            "test",
            root / f"{base}/tanzania/input/training/images/tanzania_sample.tif",
            load_tanzania,
        ),
    ]


def grid_cell(ref: SceneRef | Sample) -> tuple[str, tuple[int, int]]:
    """``(city, (x, y))`` of a Banepa (zoom 19) or Kampala chip (its zoom-20 tile) on its city's grid.

    Args:
        ref: The chip's :class:`SceneRef` or loaded :class:`Sample` (its ``dataset`` and ``id``).

    Raises:
        ValueError: If the scene is not a Banepa or Kampala chip.
    """
    x, y, z = parse_oam_tile_name(ref.id)
    if ref.dataset == BANEPA:
        return "banepa", (x, y)
    if ref.dataset == KAMPALA:
        return "kampala", ((x >> (z - 20), y >> (z - 20)) if z >= 20 else (x << (20 - z), y << (20 - z)))
    raise ValueError(f"{ref.dataset}/{ref.id} is not a Banepa or Kampala chip; CV folds cover those two")


def _check_grid_zoom(zoom: int) -> None:
    # a zoom-19 Kampala tile spans 2 x 2 cells of the zoom-20 grid, so its neighbours are 2 cells away and the
    # edge buffer would find none
    if zoom < 20:
        raise SplitError(f"blocked folds and their buffer need Kampala at zoom 20 or finer, got zoom {zoom}")


def building_cv_folds(k: int = 4, block: int = 2, seed: int = 0, zoom: int = 20) -> dict[str, BlockFolds]:
    """Blocked k-fold split of the labelled Banepa and Kampala train + val chips, per city.

    Args:
        k: Folds per city.
        block: Block side in chips.
        seed: Seed of the block shuffle (:func:`rsviz.datasets.blocks.block_folds`).
        zoom: Kampala zoom the scenes are listed at (the grid is always zoom 20).

    Returns:
        ``{"banepa": BlockFolds, "kampala": BlockFolds}``; test chips are in neither.

    Raises:
        SplitError: If ``zoom`` is under 20 (its tiles cover several grid cells; the buffer would miss them).
    """
    _check_grid_zoom(zoom)
    cells: dict[str, list[tuple[int, int]]] = {"banepa": [], "kampala": []}
    for ref in [*banepa_scenes(), *kampala_scenes(zoom)]:
        if ref.split in ("train", "val"):
            city, cell = grid_cell(ref)
            cells[city].append(cell)
    return {city: block_folds(c, k, block, seed) for city, c in cells.items()}


def scoring_valid(sample: Sample, group: dict[str, dict[tuple[int, int], object]]) -> tuple[np.ndarray, int]:
    """The sample's valid mask less the footprints cut by an edge shared with a chip of another group.

    Args:
        sample: A loaded Banepa or Kampala chip (``targets["instances"]`` needed).
        group: ``{city: {cell: group}}`` of every labelled chip that matters (a fold index, or a split
            name); chips absent from it are not neighbours.

    Returns:
        ``(valid, n_dropped)`` of :func:`rsviz.datasets.blocks.buffered_valid`.
    """
    city, cell = grid_cell(sample)
    sides = cut_sides(cell, group[city]) if cell in group[city] else ()
    valid = sample.valid.astype(bool) if sample.valid is not None else np.ones(sample.image.shape[1:], bool)
    return buffered_valid(sample.targets["instances"], valid, sides)


def split_groups(zoom: int = 20) -> dict[str, dict[tuple[int, int], object]]:
    """``{city: {cell: split}}`` of every labelled Banepa and Kampala chip (for buffering the test blocks).

    Raises:
        SplitError: If ``zoom`` is under 20.
    """
    _check_grid_zoom(zoom)
    out: dict[str, dict[tuple[int, int], object]] = {"banepa": {}, "kampala": {}}
    for ref in [*banepa_scenes(), *kampala_scenes(zoom)]:
        if ref.split != "predict":
            city, cell = grid_cell(ref)
            out[city][cell] = ref.split
    return out


def stack_counts(scenes: list[SceneRef]) -> dict[str, int]:
    """Number of scenes per split."""
    out: dict[str, int] = {}
    for s in scenes:
        out[s.split] = out.get(s.split, 0) + 1
    return out


__all__ = [
    "BUILDING_CLASSES",
    "banepa_scenes",
    "kampala_scenes",
    "joplin_scenes",
    "tanzania_austin_scenes",
    "banepa_split",
    "building_cv_folds",
    "grid_cell",
    "scoring_valid",
    "split_groups",
    "kampala_split",
    "stack_counts",
    "np",
]
