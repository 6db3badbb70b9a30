"""Area-size sample scenes: the catalog's contiguous chips mosaicked on one grid, with their targets.

The building chips of the sample data are small (256-1024 px) but lie side by side on a common
grid, so an analyst can pan across a whole block. A :class:`Mosaic` is built into the derived
cache (:func:`rsviz.resources.cache_dir`, ``<cache>/mosaics/<name>/``), never into the data
mirror, from:

* **Banepa** (``banepa-block``): all 64 zoom-19 chips (train / val / test / predict). The chips
  are XYZ web-mercator tiles stored in EPSG:4326 (each chip's bounds are its tile's bounds to
  1e-12 degree, rows linear in latitude); the mosaic grid follows the tile grid: EPSG:3857,
  512 px per zoom-19 tile (0.149 m mercator pixels, ~0.13 m on the ground). Within one tile,
  latitude-linear and mercator-linear rows differ by under 4e-4 px, so each chip is placed 1:1.
* **Kampala** (``kampala-<k>``): the zoom-20 tiles (the loader's default zoom, as the bundled
  models were trained), one mosaic per group of edge-adjacent tiles: EPSG:3857, 256 px per tile.
* **Joplin** (``joplin-<k>``): the 1024 px tiles (EPSG:26915, 0.6 m) per edge-adjacent group.

Each mosaic has:

* ``image``: a GDAL VRT referencing the mirror's chip files (no pixel copy), 3 bands RGB uint8,
  with a dataset mask (255 where a chip covers and, for RGBA chips, its alpha is non-zero; 0 in
  the gaps), and external overviews (``image.vrt.ovr``, built into the cache) for zoomed-out views.
* ``targets["buildings"]``: uint8 COG, 1 = building, 0 = background, 255 = nodata where no
  *labelled* chip covers (gaps between chips and the unlabelled ``predict`` chips: the Banepa
  footprints stop at the labelled area).
* ``targets["instances"]``: int32 COG, one id per footprint (its 1-based position among the valid
  polygons of the footprint file, exactly the chip loader's ids), 0 background, -1 nodata.
* ``splits``: GeoJSON (EPSG:4326) with one polygon per chip, properties ``split``, ``id``,
  ``dataset`` and ``window`` (``[col, row, width, height]`` of the chip in the mosaic).

Targets are burned chip by chip, each on the chip's own grid exactly as the chip loaders do
(:func:`rsviz.labels.rasterize_instances`: pixel centre inside polygon, later polygons win), so on
every chip window the mosaic's targets equal the loader's ``targets["buildings"]`` and
``targets["instances"]`` pixel for pixel. Only the footprints whose bounding box meets the chip
(a shapely STRtree query) are burned, and each chip window is written on its own, so no
whole-mosaic array is ever held.

Builds are idempotent: a finished build is reused while the manifest (``manifest.json``: every
input's path, size and sha256, and the build version) matches; otherwise it is rebuilt into a
temporary folder that replaces the old one only on success.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import warnings
import xml.sax.saxutils as sx
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from rasterio.transform import array_bounds, from_bounds
from rasterio.warp import transform_geom
from rasterio.windows import Window
from shapely import STRtree
from shapely.geometry import box, mapping, shape

from rsviz.data import catalog
from rsviz.datasets.base import ClassInfo
from rsviz.datasets.buildings import (
    BANEPA,
    BANEPA_OSM,
    BUILDING_CLASSES,
    JOPLIN,
    KAMPALA,
    KAMPALA_DIR,
    banepa_split,
    kampala_split,
)
from rsviz.errors import DataMissingError, GridMismatchError, unknown_name
from rsviz.geo import WEB_MERCATOR, WGS84, parse_oam_tile_name, tile_bounds_3857, tile_bounds_lonlat
from rsviz.labels import read_geojson_features
from rsviz.resources import cache_dir

__all__ = ["Mosaic", "mosaic_names", "describe", "build_mosaic", "build_all", "BUILD_VERSION", "KAMPALA_ZOOM"]

#: Bumped whenever the layout or burn rule of the built files changes: older builds are rebuilt.
BUILD_VERSION = 1
#: Zoom of the Kampala tiles that are mosaicked (the chip loader's and the training recipes' default).
KAMPALA_ZOOM = 20
#: Nodata of the building mask and of the instance ids.
BUILDINGS_NODATA = 255
INSTANCES_NODATA = -1
#: Overview factors of the image and the targets (down to 1/32: the Banepa block fits ~176 x 128 px).
OVERVIEW_FACTORS = (2, 4, 8, 16, 32)
JOPLIN_FOOTPRINTS = "tests/data/misc/joplin.geojson"
KAMPALA_FOOTPRINTS = f"{KAMPALA_DIR}/labels.geojson"
_IMAGE, _BUILDINGS, _INSTANCES, _SPLITS, _MANIFEST = (
    "image.vrt",
    "buildings.tif",
    "instances.tif",
    "splits.geojson",
    "manifest.json",
)


@dataclass(frozen=True)
class Mosaic:
    """A built mosaic scene and its targets (all files in the derived cache).

    Attributes:
        name: Mosaic name, e.g. ``"banepa-block"``, ``"kampala-1"``, ``"joplin-1"``.
        dataset: Catalog dataset it is built from.
        title: Human label, e.g. ``"Banepa block (64 chips, 0.13 m)"``.
        image: VRT of the chips: 3 bands RGB uint8, dataset mask 0 where no chip covers, overviews.
        targets: ``"buildings"``: uint8 COG (1 building, 0 background, 255 nodata);
            ``"instances"``: int32 COG (footprint ids, 0 background, -1 nodata). Same grid as ``image``.
        splits: GeoJSON (EPSG:4326) of the chip outlines, properties ``split`` / ``id`` / ``dataset`` /
            ``window``.
        classes: Class legend of ``targets["buildings"]`` (background, building).
        task: ``"buildings"``.
        band_names: Names of the image bands.
    """

    name: str
    dataset: str
    title: str
    image: Path
    targets: dict[str, Path]
    splits: Path
    classes: tuple[ClassInfo, ...]
    task: str
    band_names: tuple[str, ...]


@dataclass(frozen=True)
class _Chip:
    """One chip of a mosaic.

    ``transform`` / ``crs`` / ``shape`` are the chip's own grid as its loader reads it (targets are
    burned on it); ``grid_bounds`` are its bounds in the mosaic CRS (where it is placed).
    """

    id: str
    split: str
    path: Path
    relpath: str
    transform: Affine
    crs: CRS
    shape: tuple[int, int]
    grid_bounds: tuple[float, float, float, float]
    alpha: bool

    @property
    def labelled(self) -> bool:
        return self.split != "predict"


@dataclass(frozen=True)
class _Spec:
    """What a mosaic is made of: its chips (one contiguous group) and the grid they share."""

    name: str
    dataset: str
    title: str
    chips: tuple[_Chip, ...]
    footprints: str
    crs: CRS
    transform: Affine
    width: int
    height: int
    windows: tuple[Window, ...]


# ---------------------------------------------------------------------------------------------
# chips of each dataset


def _tile_chip(e: catalog.FileEntry, split: str, georef_from_file: bool) -> _Chip:
    """A chip that is an XYZ tile: placed by its tile bounds in EPSG:3857."""
    path = catalog.data_dir() / e.path
    x, y, z = parse_oam_tile_name(path.stem)
    with _quiet_open(path) as ds:
        shp, count = (ds.height, ds.width), ds.count
        transform, crs = ds.transform, ds.crs
    if georef_from_file:  # Banepa: EPSG:4326 GeoTIFF whose bounds must be the tile's
        tb = tile_bounds_lonlat(x, y, z)
        b = array_bounds(shp[0], shp[1], transform)
        if crs != WGS84 or max(abs(b[i] - tb[i]) for i in range(4)) > 1e-9:
            raise GridMismatchError(
                f"{e.path} is not the XYZ tile {x}/{y}/{z} in EPSG:4326 (bounds {b}, tile {tb}); "
                "it cannot be placed on the tile grid"
            )
    else:  # Kampala: PNG georeferenced from its name, as load_kampala does
        transform, crs = from_bounds(*tile_bounds_3857(x, y, z), shp[1], shp[0]), WEB_MERCATOR
    return _Chip(path.stem, split, path, e.path, transform, crs, shp, tile_bounds_3857(x, y, z), count == 4)


def _banepa_chips() -> list[_Chip]:
    out = []
    for e in catalog.files(BANEPA):
        if e.path.endswith(".tif"):
            x, y, _ = parse_oam_tile_name(Path(e.path).stem)
            split = "predict" if "/predict/" in e.path else banepa_split(x, y)
            out.append(_tile_chip(e, split, georef_from_file=True))
    return out


def _kampala_chips() -> list[_Chip]:
    out = []
    for e in catalog.files(KAMPALA):
        if e.path.endswith(".png"):
            x, y, z = parse_oam_tile_name(Path(e.path).stem)
            if z == KAMPALA_ZOOM:
                split = "predict" if "/prediction/" in e.path else kampala_split(x, y, z)
                out.append(_tile_chip(e, split, georef_from_file=False))
    return out


def _joplin_chips() -> list[_Chip]:
    out = []
    for e in catalog.files(JOPLIN):
        if e.path.endswith(".tif"):
            path = catalog.data_dir() / e.path
            with _quiet_open(path) as ds:
                b = ds.bounds
                out.append(
                    _Chip(
                        path.stem,
                        "test",
                        path,
                        e.path,
                        ds.transform,
                        ds.crs,
                        (ds.height, ds.width),
                        (b.left, b.bottom, b.right, b.top),
                        ds.count == 4,
                    )
                )
    return out


@contextlib.contextmanager
def _quiet_open(path: Path) -> Iterator[rasterio.io.DatasetReader]:
    """``rasterio.open`` for reading, with the not-georeferenced warning of the PNG tiles silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = rasterio.open(path)
    try:
        yield ds
    finally:
        ds.close()


# ---------------------------------------------------------------------------------------------
# grouping and grids


def _groups(chips: list[_Chip]) -> list[list[_Chip]]:
    """Groups of edge-adjacent (or overlapping) chips, by their grid bounds; largest first, then west first."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(len(chips)))
    for i, a in enumerate(chips):
        tol = 1e-3 * (a.grid_bounds[2] - a.grid_bounds[0]) / a.shape[1]  # 1/1000 px
        for j in range(i + 1, len(chips)):
            b = chips[j]
            ox = min(a.grid_bounds[2], b.grid_bounds[2]) - max(a.grid_bounds[0], b.grid_bounds[0])
            oy = min(a.grid_bounds[3], b.grid_bounds[3]) - max(a.grid_bounds[1], b.grid_bounds[1])
            # share an edge of positive length (ox > 0 and oy ~ 0, or the other way), or overlap
            if ox > -tol and oy > -tol and max(ox, oy) > tol:
                g.add_edge(i, j)
    comps = [sorted((chips[i] for i in c), key=lambda c: c.id) for c in nx.connected_components(g)]
    return sorted(comps, key=lambda c: (-len(c), min(ch.grid_bounds[0] for ch in c)))


def _grid(name: str, chips: list[_Chip], crs: CRS) -> tuple[Affine, int, int, tuple[Window, ...]]:
    """The common grid of ``chips`` (north-up, their shared pixel size) and each chip's window on it.

    Raises:
        GridMismatchError: If the chips differ in pixel size or do not sit on whole-pixel offsets.
    """
    c0 = chips[0]
    if c0.crs == crs:  # the chips' own pixel size, not one recomputed from bounds (exact for Joplin's 0.6 m)
        rx, ry = c0.transform.a, -c0.transform.e
    else:
        rx = (c0.grid_bounds[2] - c0.grid_bounds[0]) / c0.shape[1]
        ry = (c0.grid_bounds[3] - c0.grid_bounds[1]) / c0.shape[0]
    x0 = min(c.grid_bounds[0] for c in chips)
    y0 = max(c.grid_bounds[3] for c in chips)
    windows = []
    for c in chips:
        cx = (c.grid_bounds[2] - c.grid_bounds[0]) / c.shape[1]
        cy = (c.grid_bounds[3] - c.grid_bounds[1]) / c.shape[0]
        if abs(cx - rx) > 1e-9 * rx or abs(cy - ry) > 1e-9 * ry:
            raise GridMismatchError(f"{name}: chip {c.id} has pixel size {(cx, cy)}, others {(rx, ry)}")
        col, row = (c.grid_bounds[0] - x0) / rx, (y0 - c.grid_bounds[3]) / ry
        if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
            raise GridMismatchError(f"{name}: chip {c.id} is offset by a fraction of a pixel ({col}, {row})")
        windows.append(Window(round(col), round(row), c.shape[1], c.shape[0]))
    width = max(int(w.col_off + w.width) for w in windows)
    height = max(int(w.row_off + w.height) for w in windows)
    return Affine(rx, 0.0, x0, 0.0, -ry, y0), width, height, tuple(windows)


def _gsd_label(transform: Affine, crs: CRS, height: int, width: int) -> str:
    from rsviz.geo import gsd_metres

    g = gsd_metres(transform, crs, height, width)
    return f"{g:.2f} m"


def _make_spec(name: str, dataset: str, what: str, chips: list[_Chip], footprints: str, crs: CRS) -> _Spec:
    transform, width, height, windows = _grid(name, chips, crs)
    splits = sorted({c.split for c in chips}, key=["train", "val", "test", "predict"].index)
    title = f"{what} ({len(chips)} chips, {_gsd_label(transform, crs, height, width)}; {'/'.join(splits)})"
    return _Spec(name, dataset, title, tuple(chips), footprints, crs, transform, width, height, windows)


def _specs_of(dataset: str) -> list[_Spec]:
    """The mosaics of one dataset (reads only the chips' headers)."""
    if dataset == BANEPA:
        return [
            _make_spec(
                "banepa-block", BANEPA, "Banepa block, all zoom-19 chips", _banepa_chips(), BANEPA_OSM, WEB_MERCATOR
            )
        ]
    if dataset == KAMPALA:
        groups = _groups(_kampala_chips())
        return [
            _make_spec(
                f"kampala-{k}",
                KAMPALA,
                f"Kampala cluster {k}, zoom {KAMPALA_ZOOM}",
                g,
                KAMPALA_FOOTPRINTS,
                WEB_MERCATOR,
            )
            for k, g in enumerate(groups, 1)
        ]
    if dataset == JOPLIN:
        chips = _joplin_chips()
        crss = {c.crs for c in chips}
        if len(crss) != 1:
            raise GridMismatchError(f"Joplin tiles are in several CRSs ({crss}); no common mosaic grid")
        return [
            _make_spec(f"joplin-{k}", JOPLIN, f"Joplin tiles {k}", g, JOPLIN_FOOTPRINTS, chips[0].crs)
            for k, g in enumerate(_groups(chips), 1)
        ]
    raise unknown_name("mosaic dataset", dataset, list(MOSAIC_DATASETS))


#: Datasets that have mosaics, in the order :func:`mosaic_names` lists them.
MOSAIC_DATASETS: tuple[str, ...] = (BANEPA, KAMPALA, JOPLIN)

_SPEC_CACHE: dict[tuple[str, str], list[_Spec]] = {}


def _specs(dataset: str) -> list[_Spec]:
    """:func:`_specs_of`, cached per data folder (raises DataMissingError if the dataset is not fetched)."""
    catalog.require(dataset)
    key = (str(catalog.data_dir()), dataset)
    if key not in _SPEC_CACHE:
        _SPEC_CACHE[key] = _specs_of(dataset)
    return _SPEC_CACHE[key]


def mosaic_names() -> list[str]:
    """Names of the mosaics that can be built from the datasets in the data cache.

    Cheap: checks that each dataset's files are present (:func:`rsviz.data.catalog.require`) and
    reads chip headers once per data folder; builds nothing.

    Returns:
        E.g. ``["banepa-block", "kampala-1", "kampala-2", "joplin-1"]`` (datasets in
        :data:`MOSAIC_DATASETS` order; only those whose files are all present).
    """
    out: list[str] = []
    for d in MOSAIC_DATASETS:
        try:
            out += [s.name for s in _specs(d)]
        except DataMissingError:
            continue
    return out


def _spec(name: str) -> _Spec:
    """The spec of mosaic ``name``.

    Raises:
        UnknownNameError: ``name`` is no mosaic of any dataset (the message lists the valid names).
        DataMissingError: The dataset of ``name`` is not (completely) fetched.
    """
    prefix = {"banepa": BANEPA, "kampala": KAMPALA, "joplin": JOPLIN}
    dataset = prefix.get(name.split("-")[0])
    if dataset is not None:
        for s in _specs(dataset):
            if s.name == name:
                return s
    raise unknown_name("mosaic", name, mosaic_names())


def describe(name: str) -> dict:
    """What a mosaic is, without building it (for listings such as ``rsviz data mosaics``).

    Returns:
        ``name``, ``dataset``, ``title``, ``width`` / ``height`` (px), ``crs`` (e.g. ``"EPSG:3857"``),
        ``chips`` (count), ``splits`` (chips per split), ``path`` (its cache folder) and ``built``
        (True when a complete build matching the current inputs is there; hashes the inputs).

    Raises:
        UnknownNameError: Unknown ``name``.
        DataMissingError: Its dataset is not fetched.
    """
    spec = _spec(name)
    folder = _mosaics_root() / spec.name
    splits: dict[str, int] = {}
    for c in spec.chips:
        splits[c.split] = splits.get(c.split, 0) + 1
    return {
        "name": spec.name,
        "dataset": spec.dataset,
        "title": spec.title,
        "width": spec.width,
        "height": spec.height,
        "crs": spec.crs.to_string(),
        "chips": len(spec.chips),
        "splits": splits,
        "path": folder,
        "built": _is_complete(folder, _manifest(spec)),
    }


# ---------------------------------------------------------------------------------------------
# building


def _mosaic_of(spec: _Spec, folder: Path) -> Mosaic:
    return Mosaic(
        name=spec.name,
        dataset=spec.dataset,
        title=spec.title,
        image=folder / _IMAGE,
        targets={"buildings": folder / _BUILDINGS, "instances": folder / _INSTANCES},
        splits=folder / _SPLITS,
        classes=BUILDING_CLASSES,
        task="buildings",
        band_names=("red", "green", "blue"),
    )


def _inputs(spec: _Spec) -> list[dict]:
    """Path, size and sha256 of every input file of a mosaic (chips, their side-car files, footprints)."""
    paths = [c.path for c in spec.chips]
    paths += [p.with_name(p.name + ".aux.xml") for p in paths if p.with_name(p.name + ".aux.xml").exists()]
    paths.append(catalog.local_path(spec.dataset, spec.footprints))
    return [{"path": str(p), "size": p.stat().st_size, "sha256": catalog.sha256sum(p)} for p in sorted(paths)]


def _manifest(spec: _Spec) -> dict:
    return {
        "build_version": BUILD_VERSION,
        "name": spec.name,
        "dataset": spec.dataset,
        "crs": spec.crs.to_string(),
        "transform": list(spec.transform)[:6],
        "width": spec.width,
        "height": spec.height,
        "inputs": _inputs(spec),
    }


def _mosaics_root() -> Path:
    return cache_dir() / "mosaics"


def build_mosaic(name: str, *, progress: Callable[[int, int], None] | None = None, force: bool = False) -> Mosaic:
    """Build (or reuse) a mosaic in the derived cache.

    A complete previous build whose manifest matches (same inputs by path, size and sha256, same
    :data:`BUILD_VERSION`) is reused: the call then only hashes the inputs. Otherwise the mosaic is
    built into a temporary folder beside the final one, which replaces it only on success.

    Args:
        name: A name from :func:`mosaic_names`.
        progress: Optional ``(done, total)`` callback: one step per chip window, then the overviews,
            the COG conversion and the outlines.
        force: Rebuild even if a matching build exists.

    Returns:
        The :class:`Mosaic` (its files exist).

    Raises:
        UnknownNameError: Unknown ``name`` (the message lists the valid names).
        DataMissingError: The dataset is not fetched (the message names the fetch command).
        GridMismatchError: The chips do not share a pixel grid.
    """
    spec = _spec(name)
    root = _mosaics_root()
    final = root / spec.name
    manifest = _manifest(spec)
    total = len(spec.chips) + 3
    if not force and _is_complete(final, manifest):
        if progress:
            progress(total, total)
        return _mosaic_of(spec, final)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", suffix=".tmp", dir=root))
    tmp.chmod(0o755)
    try:
        stats = _build_into(spec, tmp, progress, total)
        manifest["build_stats"] = stats
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        _replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _mosaic_of(spec, final)


def build_all(progress: Callable[[int, int], None] | None = None) -> list[Mosaic]:
    """Build (or reuse) every mosaic of :func:`mosaic_names`; ``progress`` counts mosaics."""
    names = mosaic_names()
    out = []
    for i, n in enumerate(names):
        out.append(build_mosaic(n))
        if progress:
            progress(i + 1, len(names))
    return out


def _is_complete(folder: Path, manifest: Mapping) -> bool:
    mf = folder / _MANIFEST
    if not mf.exists():
        return False
    try:
        old = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    old.pop("build_stats", None)
    files = [_IMAGE, _IMAGE + ".ovr", _BUILDINGS, _INSTANCES, _SPLITS]
    return old == json.loads(json.dumps(manifest)) and all((folder / f).exists() for f in files)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``, replacing an older build (moved aside first, then deleted)."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}.{time.monotonic_ns()}")
        try:
            final.rename(old)
        except FileNotFoundError:  # another process moved it aside first
            old = None
    try:
        tmp.rename(final)
    except OSError:  # another process's build landed in between: keep it, unless it is incomplete
        if not (final / _MANIFEST).exists():
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build_into(spec: _Spec, folder: Path, progress, total: int) -> dict:
    t0 = time.perf_counter()
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):  # no .aux.xml side-car written beside the VRT (or any chip)
        _write_vrt(spec, folder / _IMAGE)
        t_vrt = time.perf_counter()
        _write_targets(spec, folder, progress, total)
        t_targets = time.perf_counter()
        _build_vrt_overviews(folder / _IMAGE)
        if progress:
            progress(len(spec.chips) + 2, total)
        t_ovr = time.perf_counter()
    _write_splits(spec, folder / _SPLITS)
    if progress:
        progress(total, total)
    return {
        "seconds_vrt": round(t_vrt - t0, 3),
        "seconds_targets": round(t_targets - t_vrt, 3),
        "seconds_image_overviews": round(t_ovr - t_targets, 3),
        "seconds_total": round(time.perf_counter() - t0, 3),
    }


# --- image: VRT --------------------------------------------------------------------------------


def _source_xml(chip: _Chip, band: int, win: Window, *, constant: int | None = None) -> str:
    h, w = chip.shape
    rect = (
        f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
        f'<DstRect xOff="{int(win.col_off)}" yOff="{int(win.row_off)}" xSize="{w}" ySize="{h}"/>'
    )
    src = (
        f'<SourceFilename relativeToVRT="0">{sx.escape(str(chip.path))}</SourceFilename><SourceBand>{band}</SourceBand>'
    )
    if constant is None:
        return f"<SimpleSource>{src}{rect}</SimpleSource>"
    # value * 0 + constant: a chip without alpha is valid everywhere it covers
    return f"<ComplexSource>{src}{rect}<ScaleOffset>{constant}</ScaleOffset><ScaleRatio>0</ScaleRatio></ComplexSource>"


def _write_vrt(spec: _Spec, path: Path) -> None:
    """The image VRT: RGB from each chip's bands 1-3 at its window, a dataset mask from alpha (or 255)."""
    gt = spec.transform
    bands = []
    for b, ci in enumerate(("Red", "Green", "Blue"), 1):
        srcs = "".join(_source_xml(c, b, w) for c, w in zip(spec.chips, spec.windows))
        bands.append(f'<VRTRasterBand dataType="Byte" band="{b}"><ColorInterp>{ci}</ColorInterp>{srcs}</VRTRasterBand>')
    mask = "".join(
        _source_xml(c, 4, w) if c.alpha else _source_xml(c, 1, w, constant=255)
        for c, w in zip(spec.chips, spec.windows)
    )
    xml = (
        f'<VRTDataset rasterXSize="{spec.width}" rasterYSize="{spec.height}">'
        f'<SRS dataAxisToSRSAxisMapping="1,2">{sx.escape(spec.crs.to_wkt())}</SRS>'
        f"<GeoTransform>{gt.c!r}, {gt.a!r}, {gt.b!r}, {gt.f!r}, {gt.d!r}, {gt.e!r}</GeoTransform>"
        + "".join(bands)
        + f'<MaskBand><VRTRasterBand dataType="Byte">{mask}</VRTRasterBand></MaskBand>'
        "</VRTDataset>"
    )
    path.write_text(xml, encoding="utf-8")


def _build_vrt_overviews(path: Path) -> None:
    """External overviews of the image VRT (``<vrt>.ovr``: factors :data:`OVERVIEW_FACTORS`, average).

    They are for display only, so they are JPEG (YCbCr, quality 90) like the chips themselves; the
    full resolution stays the chips' own pixels. The VRT's mask needs no overviews: GDAL derives it
    from the chips' footprints at any scale.
    """
    env = {
        "COMPRESS_OVERVIEW": "JPEG",
        "PHOTOMETRIC_OVERVIEW": "YCBCR",
        "INTERLEAVE_OVERVIEW": "PIXEL",
        "JPEG_QUALITY_OVERVIEW": "90",
        "GDAL_TIFF_OVR_BLOCKSIZE": "512",
    }
    with rasterio.Env(**env), rasterio.open(path, "r+") as ds:  # a VRT's overviews go to an external .ovr
        ds.build_overviews(list(OVERVIEW_FACTORS), rasterio.enums.Resampling.average)


# --- targets: windowed burn ---------------------------------------------------------------------


def _valid_geometry(g: Mapping | None) -> bool:
    """The chip loaders' rule (:mod:`rsviz.labels`): a non-empty geometry with coordinates shapely can read."""
    if not g or not g.get("coordinates"):
        return False
    try:
        return not shape(g).is_empty
    except (ValueError, TypeError, AttributeError, IndexError):
        return False


class _Footprints:
    """The valid footprints of a file with their loader ids (1-based), reprojected per CRS on demand,
    each CRS's copy indexed by an STRtree of the polygons' bounding boxes."""

    def __init__(self, path: Path) -> None:
        feats, self.crs = read_geojson_features(path)
        self.geoms = [f["geometry"] for f in feats if _valid_geometry(f["geometry"])]
        self._by_crs: dict[str, tuple[list[Mapping], STRtree]] = {}

    def _in(self, crs: CRS) -> tuple[list[Mapping], STRtree]:
        key = crs.to_wkt()
        if key not in self._by_crs:
            geoms = (
                self.geoms
                if CRS.from_user_input(self.crs) == crs
                else [transform_geom(self.crs, crs, g) for g in self.geoms]
            )
            self._by_crs[key] = (geoms, STRtree([box(*shape(g).bounds) for g in geoms]))
        return self._by_crs[key]

    def burn(self, transform: Affine, shp: tuple[int, int], crs: CRS) -> np.ndarray:
        """Instance ids on a grid: ``(height, width)`` int32, burned like :func:`rsviz.labels.rasterize_instances`
        (ids in file order, later wins) but only from the footprints whose bounds meet the grid."""
        geoms, tree = self._in(crs)
        h, w = shp
        west, north = transform * (0, 0)
        east, south = transform * (w, h)
        idx = np.sort(tree.query(box(min(west, east), min(south, north), max(west, east), max(south, north))))
        if idx.size == 0:
            return np.zeros(shp, dtype=np.int32)
        return rasterize(
            ((geoms[i], int(i) + 1) for i in idx), out_shape=shp, transform=transform, fill=0, dtype="int32"
        )


def _target_profile(spec: _Spec, dtype: str, nodata: int) -> dict:
    return {
        "driver": "GTiff",
        "width": spec.width,
        "height": spec.height,
        "count": 1,
        "dtype": dtype,
        "nodata": nodata,
        "crs": spec.crs,
        "transform": spec.transform,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "sparse_ok": True,
    }


def _cells(spec: _Spec) -> Iterator[tuple[Window, _Chip | None]]:
    """The windows the targets are written by: each chip's window, then the uncovered 512 px blocks
    (and parts of blocks) as ``(window, None)``."""
    yield from zip(spec.windows, spec.chips)
    covered = np.zeros((-(-spec.height // 512), -(-spec.width // 512)), dtype=bool)
    # a block is covered when the chips' windows fill it completely: check by pixel counts per block
    counts = np.zeros_like(covered, dtype=np.int64)
    for w in spec.windows:
        r0, c0, r1, c1 = int(w.row_off), int(w.col_off), int(w.row_off + w.height), int(w.col_off + w.width)
        for br in range(r0 // 512, (r1 - 1) // 512 + 1):
            for bc in range(c0 // 512, (c1 - 1) // 512 + 1):
                rr = min(r1, (br + 1) * 512) - max(r0, br * 512)
                cc = min(c1, (bc + 1) * 512) - max(c0, bc * 512)
                counts[br, bc] += rr * cc
    for br in range(covered.shape[0]):
        for bc in range(covered.shape[1]):
            bw = min(512, spec.width - bc * 512)
            bh = min(512, spec.height - br * 512)
            if counts[br, bc] < bw * bh:  # partly or not covered: fill the block, chips are written over it later
                yield Window(bc * 512, br * 512, bw, bh), None


def _write_targets(spec: _Spec, folder: Path, progress, total: int) -> None:
    """Burn the targets window by window into tiled GeoTIFFs, then convert them to COGs."""
    fp = _Footprints(catalog.local_path(spec.dataset, spec.footprints))
    tmp_b, tmp_i = folder / "buildings.tmp.tif", folder / "instances.tmp.tif"
    cells = list(_cells(spec))
    # nodata fill first (blocks not wholly covered), then the chips over them
    order = [c for c in cells if c[1] is None] + [c for c in cells if c[1] is not None]
    done = 0
    with (
        rasterio.open(tmp_b, "w", **_target_profile(spec, "uint8", BUILDINGS_NODATA)) as db,
        rasterio.open(tmp_i, "w", **_target_profile(spec, "int32", INSTANCES_NODATA)) as di,
    ):
        for win, chip in order:
            shp = (int(win.height), int(win.width))
            if chip is None or not chip.labelled:
                db.write(np.full(shp, BUILDINGS_NODATA, np.uint8), 1, window=win)
                di.write(np.full(shp, INSTANCES_NODATA, np.int32), 1, window=win)
            else:
                inst = fp.burn(chip.transform, chip.shape, chip.crs)
                db.write((inst > 0).astype(np.uint8), 1, window=win)
                di.write(inst, 1, window=win)
            if chip is not None:
                done += 1
                if progress:
                    progress(done, total)
    _to_cog(tmp_b, folder / _BUILDINGS)
    _to_cog(tmp_i, folder / _INSTANCES)
    tmp_b.unlink()
    tmp_i.unlink()
    if progress:
        progress(len(spec.chips) + 1, total)


def _to_cog(src: Path, dst: Path) -> None:
    """Tiled GeoTIFF -> COG (deflate, 512 px blocks, nearest-neighbour overviews: ids are never averaged)."""
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    profile = cog_profiles.get("deflate")
    profile.update(blockxsize=512, blockysize=512)
    cog_translate(
        str(src),
        str(dst),
        profile,
        overview_resampling="nearest",
        overview_level=len(OVERVIEW_FACTORS),
        quiet=True,
        in_memory=False,
    )


# --- split outlines -----------------------------------------------------------------------------


def _write_splits(spec: _Spec, path: Path) -> None:
    """GeoJSON (EPSG:4326) of every chip's outline (edges densified, so projected outlines stay exact)."""
    feats = []
    for c, w in zip(spec.chips, spec.windows):
        poly = box(*c.grid_bounds).segmentize((c.grid_bounds[2] - c.grid_bounds[0]) / 8)
        geom = mapping(poly) if spec.crs == WGS84 else transform_geom(spec.crs, WGS84, mapping(poly))
        feats.append(
            {
                "type": "Feature",
                "geometry": geom,
                "properties": {
                    "split": c.split,
                    "id": c.id,
                    "dataset": spec.dataset,
                    "window": [int(w.col_off), int(w.row_off), int(w.width), int(w.height)],
                },
            }
        )
    obj = {"type": "FeatureCollection", "name": f"{spec.name} chips", "features": feats}
    path.write_text(json.dumps(obj), encoding="utf-8")
