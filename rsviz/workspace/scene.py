"""Scenes: rasters on disk with optional ground truth on their grid, read by windows only.

A :class:`Scene` never holds pixels. It names an image file any GDAL driver reads (GeoTIFF, COG, VRT,
JPEG2000...) and, per ground-truth target, a single-band raster on exactly the image grid. Pixels are
read by :meth:`Scene.read` for one window at a time, refused above :data:`MAX_READ_PX` (the largest
buffer held at once), so a 20,000 x 20,000 px orthomosaic opens as fast as a 512 px chip.

Opening a scene records it under ``<workspace>/scenes/<key>/scene.json`` (the key is an opaque hash of
what was opened), so the app can reopen it from a URL after a reload or a restart. What the workspace
writes there:

* a tiled copy with internal overviews of an image larger than :data:`OVERVIEW_SIDE` px that has none (the
  map's zoomed-out tiles would otherwise read full resolution), block by block with progress;
* ground truth normalised to the conventions of :mod:`rsviz.labels`: ``buildings``/``roads`` uint8 0/1,
  ``classes`` uint8 ids, ``instances`` int32 ids, ``height`` float32, 255 (NaN for heights) = nodata,
  written window by window;
* for catalog chips, the chip's image and targets as the dataset loader gives them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from rsviz.datasets.base import Sample, SceneRef
from rsviz.errors import (
    ExtentError,
    GeometryTypeError,
    GridMismatchError,
    RasterReadError,
    RsvizError,
    UnknownNameError,
)
from rsviz.raster import dtype_range, grid_window_from_bounds, open_raster, read_failed, read_raster
from rsviz.resources import workspace_dir
from rsviz.types import NODATA_CLASS, BBox, ClassInfo

#: Largest window (pixels) :meth:`Scene.read` holds in memory at once.
MAX_READ_PX = 64_000_000
#: Largest extent (pixels) run from the app, by device type. Runs stream to a COG window by window (memory is
#: O(tile x extent width)), so the caps bound the wait, not memory: 64 MPx is about two minutes of the bundled
#: building model on a 2-core CPU.
MAX_EXTENT_PX = {"cpu": 64_000_000, "mps": 256_000_000, "cuda": 400_000_000}
#: Images with a side above this and no overviews get a COG copy with overviews in the workspace.
OVERVIEW_SIDE = 2048
#: Block side of the workspace's windowed writes and scans.
BLOCK = 2048

ProgressFn = Callable[[int, int], None]

#: Targets holding class ids, where 255 is nodata.
CLASS_TARGETS = ("buildings", "roads", "classes")


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def _file_stamp(p: Path) -> tuple[str, int, int]:
    st = p.stat()
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def _scenes_root() -> Path:
    d = workspace_dir() / "scenes"
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass(frozen=True)
class Scene:
    """A raster scene on disk, opened in the workspace.

    Attributes:
        key: Opaque id (16 hex digits) of what was opened; keys runs and URLs.
        name: Display name.
        image: The raster read for pixels and tiles.
        height: Rows.
        width: Columns.
        count: Bands.
        dtype: NumPy dtype name of the bands.
        transform: Pixel-to-CRS affine transform.
        crs: CRS, or None for an image without georeferencing (then only whole-image views work).
        band_names: One name per band.
        scale: Nominal value range of the pixels (e.g. ``(0, 255)``).
        targets: Ground-truth target name -> single-band raster on the image grid (see module docstring).
        classes: Class legend of the class targets.
        task: ``buildings``, ``roads``, ``landcover``, ``height`` or ``unknown`` (no ground truth).
        dataset: Catalog dataset, or ``user``.
        split: ``train`` / ``val`` / ``test`` / ``predict`` for catalog scenes; ``predict`` otherwise.
        height_units: Units of the ``height`` target.
        source: How it was opened: ``sample:<dataset>/<id>``, ``mosaic:<name>``, ``path:<file>``, ``upload:<file>``.
        splits: GeoJSON outlining the dataset's train/val/test areas on this scene, or None.
        gsd_m: Ground sampling distance in metres when known without a CRS (e.g. the ETH road tiles).
    """

    key: str
    name: str
    image: Path
    height: int
    width: int
    count: int
    dtype: str
    transform: Affine
    crs: CRS | None
    band_names: tuple[str, ...]
    scale: tuple[float, float]
    targets: Mapping[str, Path] = field(default_factory=dict)
    classes: tuple[ClassInfo, ...] = ()
    task: str = "unknown"
    dataset: str = "user"
    split: str = "predict"
    height_units: str = ""
    source: str = ""
    splits: Path | None = None
    gsd_m: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return self.height, self.width

    @property
    def pixels(self) -> int:
        """``height * width``."""
        return self.height * self.width

    @property
    def georeferenced(self) -> bool:
        """True when the image has a CRS (it can go on the map)."""
        return self.crs is not None

    @property
    def gsd(self) -> float | None:
        """Ground sampling distance in metres (from the CRS, else :attr:`gsd_m`)."""
        if self.crs is None:
            return self.gsd_m
        from rsviz.geo import gsd_metres

        return gsd_metres(self.transform, self.crs, self.height, self.width)

    @property
    def bounds_4326(self) -> BBox | None:
        """EPSG:4326 ``(west, south, east, north)`` of the whole scene, or None without CRS."""
        if self.crs is None:
            return None
        from rsviz.geo import reproject_bounds
        from rsviz.raster import _bounds

        return reproject_bounds(_bounds(self.transform, self.height, self.width), self.crs, "EPSG:4326")

    def read(self, window: Window | None = None, *, with_targets: bool = True) -> Sample:
        """Read one window of the image and its targets.

        Args:
            window: Integer pixel window (None: the whole scene, allowed only up to :data:`MAX_READ_PX`).
            with_targets: Also read the ground truth.

        Returns:
            :class:`~rsviz.datasets.base.Sample` of the window: ``image`` ``(bands, h, w)`` in the file dtype,
            the window's transform, ``valid`` False on image nodata and on ground-truth nodata (255 in class
            targets), targets as in :mod:`rsviz.datasets` (``edges`` derived from the footprints).

        Raises:
            ExtentError: The window is larger than :data:`MAX_READ_PX` or outside the scene.
            RasterReadError: A file became unreadable.
        """
        win = Window(0, 0, self.width, self.height) if window is None else window
        px = int(win.width) * int(win.height)
        if px > MAX_READ_PX:
            raise ExtentError(
                f"a {int(win.width)} x {int(win.height)} px window ({px / 1e6:.0f} MPx) is more than the "
                f"{MAX_READ_PX / 1e6:.0f} MPx rsviz holds in memory at once; draw a smaller extent, or use "
                "`rsviz predict` / `rsviz evaluate`, which stream by windows"
            )
        if (
            win.col_off < 0
            or win.row_off < 0
            or win.col_off + win.width > self.width
            or win.row_off + win.height > self.height
        ):
            raise ExtentError(f"window {win} is outside the {self.width} x {self.height} px scene")
        r = read_raster(self.image, window=win, band_names=self.band_names or None)
        valid = r.valid_mask.copy()
        targets: dict[str, np.ndarray] = {}
        if with_targets:
            for name, p in self.targets.items():
                t = read_raster(p, window=win, bands=[1])
                a = t.array[0]
                valid &= t.valid_mask  # the file's own nodata (e.g. 0 in a WorldCover-style class raster)
                if name in CLASS_TARGETS:
                    a = a.astype(np.uint8, copy=False)
                    valid &= a != NODATA_CLASS
                elif name == "height":
                    a = a.astype(np.float32, copy=False)
                    valid &= np.isfinite(a)
                targets[name] = a
            base = targets.get("instances", targets.get("buildings"))
            if base is not None and "edges" not in targets:
                from rsviz.labels import edges_from_mask

                targets["edges"] = edges_from_mask(
                    np.where(base == NODATA_CLASS, 0, base) if base.dtype == np.uint8 else base
                )
        return Sample(
            id=self.name,
            dataset=self.dataset,
            split=self.split,
            image=r.array,
            band_names=r.band_names,
            scale=self.scale,
            transform=r.transform,
            crs=self.crs,
            valid=valid,
            targets=targets,
            classes=self.classes,
            height_units=self.height_units,
            path=self.image,
            extra={"gsd_m": self.gsd_m} if self.gsd_m else {},
        )

    # ------------------------------------------------------------------ record

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record (paths as strings, CRS as WKT)."""
        return {
            "key": self.key,
            "name": self.name,
            "image": str(self.image),
            "height": self.height,
            "width": self.width,
            "count": self.count,
            "dtype": self.dtype,
            "transform": list(self.transform)[:6],
            "crs": self.crs.to_wkt() if self.crs is not None else None,
            "band_names": list(self.band_names),
            "scale": list(self.scale),
            "targets": {k: str(v) for k, v in self.targets.items()},
            "classes": [[c.id, c.name, list(c.color)] for c in self.classes],
            "task": self.task,
            "dataset": self.dataset,
            "split": self.split,
            "height_units": self.height_units,
            "source": self.source,
            "splits": str(self.splits) if self.splits else None,
            "gsd_m": self.gsd_m,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scene:
        """Inverse of :meth:`to_dict`."""
        return cls(
            key=d["key"],
            name=d["name"],
            image=Path(d["image"]),
            height=int(d["height"]),
            width=int(d["width"]),
            count=int(d["count"]),
            dtype=d["dtype"],
            transform=Affine(*d["transform"]),
            crs=CRS.from_wkt(d["crs"]) if d.get("crs") else None,
            band_names=tuple(d.get("band_names", ())),
            scale=(float(d["scale"][0]), float(d["scale"][1])),
            targets={k: Path(v) for k, v in d.get("targets", {}).items()},
            classes=tuple(ClassInfo(int(i), n, tuple(c)) for i, n, c in d.get("classes", [])),
            task=d.get("task", "unknown"),
            dataset=d.get("dataset", "user"),
            split=d.get("split", "predict"),
            height_units=d.get("height_units", ""),
            source=d.get("source", ""),
            splits=Path(d["splits"]) if d.get("splits") else None,
            gsd_m=d.get("gsd_m"),
        )


def scene_dir(key: str) -> Path:
    """Folder of a scene's record and derived files."""
    return _scenes_root() / key


def _stamps(scene: Scene) -> list[list[Any]]:
    return [list(_file_stamp(f)) for f in (scene.image, *scene.targets.values())]


_OPEN_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_GUARD = threading.Lock()


def _opening(key: str) -> threading.Lock:
    """One lock per scene key: two sessions opening the same file wait for one build of its workspace files."""
    with _GUARD:
        return _OPEN_LOCKS[key]


def _recorded(key: str, build: Callable[[], Scene]) -> Scene:
    """The scene recorded under ``key``, else ``build()``'s, saved: built once, under the key's lock."""
    with _opening(key):
        try:
            return load_scene(key)
        except UnknownNameError:
            pass
        folder = scene_dir(key)
        fresh = not folder.exists()
        try:
            scene = build()
        except BaseException:
            if fresh:  # a refused or cancelled scene leaves nothing behind (no half-made copy, no overviews)
                shutil.rmtree(folder, ignore_errors=True)
            raise
        save_scene(scene)
        return scene


def save_scene(scene: Scene) -> None:
    """Write the scene's record (atomically: a reader never sees half a file), with the size and modification
    time of each of its files, so a file changed since cannot be reopened under the old record."""
    d = scene_dir(scene.key)
    d.mkdir(parents=True, exist_ok=True)
    _write_json(d / "scene.json", {**scene.to_dict(), "stamps": _stamps(scene)})


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def load_scene(key: str) -> Scene:
    """Reopen a scene recorded in the workspace.

    Raises:
        UnknownNameError: No such scene, or its files are gone (the message says which).
    """
    if not key or not all(c in "0123456789abcdef" for c in key) or len(key) != 16:
        raise UnknownNameError(f"{key!r} is not a scene id of this workspace")
    p = _scenes_root() / key / "scene.json"
    if not p.is_file():
        raise UnknownNameError(f"scene {key} is not in this workspace ({workspace_dir()}); open it again")
    try:
        d = json.loads(p.read_text())
        s = Scene.from_dict(d)
    except (ValueError, KeyError, TypeError) as exc:
        raise UnknownNameError(f"the record of scene {key} is damaged ({exc}); open the scene again") from exc
    missing = [str(f) for f in (s.image, *s.targets.values()) if not f.exists()]
    if missing:
        raise UnknownNameError(f"files of scene {s.name} are gone: {', '.join(missing)}; open it again")
    if d.get("stamps") is not None and d["stamps"] != _stamps(s):
        raise UnknownNameError(f"the files of scene {s.name} changed since it was opened; open it again")
    return s


# --------------------------------------------------------------------------- extents


@dataclass(frozen=True)
class Extent:
    """A pixel window of a scene and, when georeferenced, its EPSG:4326 bounds."""

    window: Window
    bounds: BBox | None

    @property
    def pixels(self) -> int:
        """Number of pixels."""
        return int(self.window.width * self.window.height)

    def key(self) -> str:
        """Cache key: ``col,row,width,height``."""
        w = self.window
        return f"{int(w.col_off)},{int(w.row_off)},{int(w.width)},{int(w.height)}"


def resolve_extent(scene: Scene, bounds: BBox | None) -> Extent:
    """The scene window covered by EPSG:4326 ``bounds`` (None: the whole scene).

    Raises:
        ExtentError: The extent does not overlap the scene.
        CRSError: ``bounds`` given for a scene without CRS.
    """
    h, w = scene.shape
    win = Window(0, 0, w, h) if bounds is None else grid_window_from_bounds(scene.transform, scene.crs, (h, w), bounds)
    b = None
    if scene.crs is not None:
        from rsviz.geo import reproject_bounds
        from rsviz.raster import _bounds

        t = scene.transform * Affine.translation(win.col_off, win.row_off)
        b = reproject_bounds(_bounds(t, int(win.height), int(win.width)), scene.crs, "EPSG:4326")
    return Extent(win, b)


def extent_area_m2(scene: Scene, extent: Extent) -> float | None:
    """Ground area of an extent in square metres (GSD^2 x pixels), or None when the GSD is unknown."""
    g = scene.gsd
    return None if g is None else g * g * extent.pixels


def check_extent_size(extent: Extent, device_type: str) -> None:
    """Refuse extents larger than one interactive run holds on this device (:data:`MAX_EXTENT_PX`).

    Raises:
        ExtentError: Naming the size, the cap, and what to do.
    """
    cap = MAX_EXTENT_PX.get(device_type, MAX_EXTENT_PX["cpu"])
    if extent.pixels > cap:
        raise ExtentError(
            f"the extent is {extent.pixels / 1e6:.1f} MPx, more than the {cap / 1e6:.0f} MPx the app runs on "
            f"{device_type.upper()}; draw a smaller rectangle, or run `rsviz predict` with --bounds on the file "
            "(or `rsviz batch` for many scenes)"
        )


# --------------------------------------------------------------------------- opening


@dataclass(frozen=True)
class _Info:
    height: int
    width: int
    count: int
    dtype: str
    transform: Affine
    crs: CRS | None
    band_names: tuple[str, ...]
    nodata: float | None
    overviews: bool


def _grid_of(info: _Info) -> dict[str, Any]:
    """The :class:`Scene` fields a raster's header gives: size, bands, dtype and its value range, grid, CRS."""
    lo, hi = dtype_range(np.dtype(info.dtype))
    return {
        "height": info.height,
        "width": info.width,
        "count": info.count,
        "dtype": info.dtype,
        "transform": info.transform,
        "crs": info.crs,
        "band_names": info.band_names,
        "scale": (lo, hi),
    }


def _probe(ds: Any, path: Path) -> None:
    """Read the first and last block of every band (and the coarsest overview): a truncated or damaged file is
    refused when it is opened, not at its first tile or run. Two blocks, whatever the raster's size."""
    from rasterio.errors import RasterioIOError

    try:
        rows, cols = ds.block_shapes[0]
        c0, r0 = ((ds.width - 1) // cols) * cols, ((ds.height - 1) // rows) * rows  # block of the last pixel
        first = Window(0, 0, min(cols, ds.width), min(rows, ds.height))
        for w in (first, Window(c0, r0, min(cols, ds.width - c0), min(rows, ds.height - r0))):
            ds.read(window=w)
        if factors := ds.overviews(1):
            ds.read(1, out_shape=(max(1, ds.height // factors[-1]), max(1, ds.width // factors[-1])))
    except RasterioIOError as exc:
        raise read_failed(path, exc) from exc


def _inspect(path: Path) -> _Info:
    with open_raster(path) as ds:
        _probe(ds, path)
        names = tuple(
            d or (ci.name if ci.name not in ("undefined", "gray") else f"band{i}")
            for i, (d, ci) in enumerate(zip(ds.descriptions, ds.colorinterp, strict=False), 1)
        )
        return _Info(
            ds.height,
            ds.width,
            ds.count,
            str(ds.dtypes[0]),
            ds.transform,
            ds.crs,
            names,
            ds.nodata,
            bool(ds.overviews(1)),
        )


def _copy_with_overviews(src: Path, dst: Path, resampling: str, progress: ProgressFn | None = None) -> Path:
    """Copy ``src`` block by block into a tiled, deflate-compressed GeoTIFF with internal overviews, under a
    temporary name renamed when complete.

    ``progress(done, total)`` counts the blocks copied, then one last step for the overviews (GDAL builds them
    in one call; rasterio exposes no progress for it). The copy keeps the bands, dtype, nodata, masks, CRS and
    transform; overviews use ``resampling`` (``AVERAGE`` for imagery, ``NEAREST`` for class ids).
    """
    from rasterio.enums import Resampling

    from rsviz.inference.cogwriter import overview_levels

    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open_raster(src) as ds:
            prof = ds.profile.copy()
            prof.update(
                driver="GTiff", tiled=True, blockxsize=512, blockysize=512, compress="deflate", BIGTIFF="IF_SAFER"
            )
            if ds.count != 3:
                prof.pop("photometric", None)
            blocks = list(_blocks(ds.height, ds.width, 1024))
            total = len(blocks) + 1
            masked = ds.nodata is None and any(MaskFlags.per_dataset in f for f in ds.mask_flag_enums)
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(tmp, "w", **prof) as out:
                for i, w in enumerate(blocks):
                    out.write(ds.read(window=w), window=w)
                    if masked:
                        out.write_mask(ds.dataset_mask(window=w), window=w)
                    if progress:
                        progress(i + 1, total)
                factors = [f for f, _, _ in overview_levels(ds.height, ds.width)]
                out.build_overviews(factors, Resampling[resampling.lower()])
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if progress:
        progress(total, total)
    return dst


def _with_overviews(
    path: Path, folder: Path, info: _Info, resampling: str, stem: str, progress: ProgressFn | None = None
) -> Path:
    """``path`` itself when it has overviews or is small, else its copy with overviews in the workspace (made once)."""
    if info.overviews or max(info.height, info.width) <= OVERVIEW_SIDE:
        return path
    dst = folder / f"{stem}.tif"
    return dst if dst.exists() else _copy_with_overviews(path, dst, resampling, progress)


def _same_grid(info: _Info, g: _Info, what: str) -> None:
    if (g.height, g.width) != (info.height, info.width):
        raise GridMismatchError(
            f"{what} is {g.width} x {g.height} px but the image is {info.width} x {info.height} px; resample the "
            f"{what} onto the image grid (e.g. gdalwarp -te/-ts) first"
        )
    if (g.crs is None) != (info.crs is None) or (g.crs is not None and g.crs != info.crs):
        raise GridMismatchError(f"{what} CRS {g.crs} differs from the image CRS {info.crs}; reproject it first")
    if not g.transform.almost_equals(info.transform, precision=1e-9 * max(1.0, abs(info.transform.c))):
        raise GridMismatchError(f"{what} transform {tuple(g.transform)[:6]} differs from the image's; align the grids")


def _blocks(height: int, width: int, block: int = BLOCK) -> Iterator[Window]:
    for r in range(0, height, block):
        for c in range(0, width, block):
            yield Window(c, r, min(block, width - c), min(block, height - r))


def _write_blocks(
    dst: Path,
    info: _Info,
    dtype: str,
    fill: Callable[[Window], np.ndarray],
    nodata: float | None,
    progress: ProgressFn | None = None,
) -> Path:
    """Write a single-band COG on the scene grid block by block (``fill(window) -> (h, w)``), with nearest
    overviews (class ids stay ids), under a temporary name renamed on success."""
    from rsviz.inference.cogwriter import StreamedCOG

    tmpdir = Path(tempfile.mkdtemp(prefix=".rsviz-", dir=dst.parent))
    try:
        out = StreamedCOG(tmpdir, info.height, info.width, 1, dtype, info.transform, info.crs, nodata=nodata)
        blocks = list(_blocks(info.height, info.width))
        for i, w in enumerate(blocks):
            out.write(fill(w)[None].astype(dtype, copy=False), int(w.row_off), int(w.col_off))
            if progress:
                progress(i + 1, len(blocks))
        tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
        out.finish(tmp, "deflate", True)
        out.close()
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return dst


def _scan_values(path: Path, info: _Info, progress: ProgressFn | None = None) -> tuple[set[int], bool]:
    """Distinct integer values of band 1 (by blocks; at most 257 kept) and whether it is a float raster."""
    if np.issubdtype(np.dtype(info.dtype), np.floating):
        return set(), True
    vals: set[int] = set()
    with open_raster(path) as ds:
        blocks = list(_blocks(info.height, info.width))
        for i, w in enumerate(blocks):
            vals |= set(np.unique(ds.read(1, window=w)).tolist())
            if progress:
                progress(i + 1, len(blocks))
            if len(vals) > 256:
                break
    return vals, False


def _raster_ground_truth(
    gt: Path, info: _Info, folder: Path, progress: ProgressFn | None
) -> tuple[dict[str, Path], str, tuple[ClassInfo, ...]]:
    """Normalise a ground-truth raster: binary masks to 0/1 (255 nodata), class ids as they are, floats as heights.

    The rule for binary masks: values within {0, 1, 255} with 1 present are 0 background / 1 positive / 255 nodata;
    values within {0, 255} are a 0/255 mask (255 positive); the file's own nodata value is always nodata.
    """
    g = _inspect(gt)
    _same_grid(info, g, f"ground truth {gt.name}")
    vals, floating = _scan_values(gt, g)
    if floating:
        return {"height": _with_overviews(gt, folder, g, "NEAREST", "gt-height")}, "height", ()
    nd = None if g.nodata is None else int(g.nodata)
    data_vals = vals - ({nd} if nd is not None else set())
    if data_vals <= {0, 1} and nd is None:  # already 0/1 without nodata: used where it is
        from rsviz.datasets.buildings import BUILDING_CLASSES

        p = _with_overviews(gt, folder, g, "NEAREST", "gt-mask")
        return {"buildings": p, "roads": p}, "buildings", BUILDING_CLASSES
    if data_vals <= {0, 1, 255}:
        positive = 255 if (data_vals <= {0, 255} and 255 in data_vals) else 1

        def fill(w: Window) -> np.ndarray:
            with open_raster(gt) as ds:
                a = ds.read(1, window=w)
            out = np.where(a == positive, 1, 0).astype(np.uint8)
            out[(a == 255) & (positive != 255)] = NODATA_CLASS
            if nd is not None:
                out[a == nd] = NODATA_CLASS
            return out

        p = _write_blocks(folder / "gt-mask.tif", info, "uint8", fill, NODATA_CLASS, progress)
        from rsviz.datasets.buildings import BUILDING_CLASSES

        # a binary mask is the positive class of whichever binary model is scored against it
        return {"buildings": p, "roads": p}, "buildings", BUILDING_CLASSES
    if max(data_vals) > 255 or min(data_vals) < 0:
        raise RasterReadError(
            f"ground truth {gt.name} holds values {min(data_vals)}..{max(data_vals)}; class ids must be 0-254 "
            "(255 = nodata), masks 0/1, heights float"
        )
    p = _with_overviews(gt, folder, g, "NEAREST", "gt-classes")
    classes = tuple(ClassInfo(i, str(i), (128, 128, 128)) for i in sorted(data_vals) if i != NODATA_CLASS)
    return {"classes": p}, "landcover", classes


def _in_window(tree: Any, info: _Info, w: Window) -> tuple[Affine, np.ndarray]:
    """The window's own transform and the indices of the ``STRtree``'s geometries (scene CRS) that meet it."""
    from shapely import box

    x0, y0 = info.transform * (w.col_off, w.row_off)
    x1, y1 = info.transform * (w.col_off + w.width, w.row_off + w.height)
    idx = tree.query(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return info.transform * Affine.translation(w.col_off, w.row_off), idx


def _vector_ground_truth(
    gt: Path, info: _Info, folder: Path, progress: ProgressFn | None
) -> tuple[dict[str, Path], str, tuple[ClassInfo, ...]]:
    """Burn building polygons onto the scene grid by blocks: ``instances`` (one id per polygon) and ``buildings``;
    a file of lines only is road ground truth (:func:`_road_ground_truth`).

    Raises:
        GeometryTypeError: Points, or lines mixed with polygons (the message counts them).
        RasterReadError: A geometry shapely cannot read, or no non-empty geometry.
    """
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom
    from shapely import STRtree, make_valid
    from shapely.errors import ShapelyError
    from shapely.geometry import mapping, shape

    from rsviz.datasets.buildings import BUILDING_CLASSES
    from rsviz.labels import read_geojson_features

    if info.crs is None:
        raise GridMismatchError("vector ground truth needs a georeferenced image; this image has no CRS")
    feats, src_crs = read_geojson_features(gt)
    try:
        geoms = [shape(f["geometry"]) for f in feats]
    except (ShapelyError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise RasterReadError(
            f"{gt.name} holds a geometry shapely cannot read ({exc}); fix or drop that feature"
        ) from exc
    kinds = {g.geom_type for g in geoms if not g.is_empty}
    if kinds and kinds <= {"LineString", "MultiLineString"}:  # road centre lines
        lines = geoms if CRS.from_user_input(src_crs) == info.crs else [
            shape(transform_geom(src_crs, info.crs, mapping(g))) for g in geoms
        ]  # fmt: skip
        return _road_ground_truth(lines, info, folder, progress)
    others = sorted({g.geom_type for g in geoms if g.geom_type not in ("Polygon", "MultiPolygon")})
    if others:  # points or lines burned as one-pixel "buildings" would be silently wrong
        n = sum(g.geom_type in others for g in geoms)
        raise GeometryTypeError(
            f"{gt.name} holds {n} feature(s) of type {', '.join(others)}; building ground truth must be Polygon "
            "or MultiPolygon footprints only: drop the other features or give them as a separate file"
        )
    # self-intersecting rings (common in digitised footprints) are repaired, keeping their polygonal part
    polys = [g if g.is_valid else make_valid(g) for g in geoms if not g.is_empty]
    polys = [g for g in polys if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty]
    if not polys:
        raise RasterReadError(f"{gt.name} has no footprints (no non-empty polygons); check the file")
    if CRS.from_user_input(src_crs) != info.crs:
        polys = [shape(transform_geom(src_crs, info.crs, mapping(g))) for g in polys]
    tree = STRtree(polys)

    def inst(w: Window) -> np.ndarray:
        t, idx = _in_window(tree, info, w)
        if len(idx) == 0:
            return np.zeros((int(w.height), int(w.width)), np.int32)
        idx = np.sort(idx)  # later polygons win on overlap, as rasterize_instances does
        return rasterize(
            ((mapping(polys[i]), int(i) + 1) for i in idx),
            out_shape=(int(w.height), int(w.width)),
            transform=t,
            fill=0,
            dtype="int32",
        )

    pi = _write_blocks(folder / "gt-instances.tif", info, "int32", inst, None, progress)

    def mask(w: Window) -> np.ndarray:
        with open_raster(pi) as ds:
            return (ds.read(1, window=w) > 0).astype(np.uint8)

    pb = _write_blocks(folder / "gt-buildings.tif", info, "uint8", mask, NODATA_CLASS)
    return {"buildings": pb, "instances": pi}, "buildings", BUILDING_CLASSES


#: Half the width of a road burned from a centre line, metres (SpaceNet's road masks are about 4 m wide, and the
#: APLS snapping buffer is 4 m).
ROAD_HALF_WIDTH_M = 2.0


def _road_ground_truth(
    lines: list[Any], info: _Info, folder: Path, progress: ProgressFn | None
) -> tuple[dict[str, Path], str, tuple[ClassInfo, ...]]:
    """Burn road centre lines (in the scene's CRS) as a road mask, by blocks: each line buffered by
    :data:`ROAD_HALF_WIDTH_M` (at least one pixel). The Metrics page scores pixels against the mask and APLS
    against its skeleton graph, like any road mask."""
    from rasterio.features import rasterize
    from shapely import STRtree
    from shapely.geometry import mapping

    from rsviz.datasets.roads import ROAD_CLASSES
    from rsviz.geo import gsd_metres

    px = abs(info.transform.a)  # one pixel in CRS units
    metres = gsd_metres(info.transform, info.crs, info.height, info.width)  # one pixel in metres
    half = max(px, ROAD_HALF_WIDTH_M * px / metres)
    roads = [g.buffer(half) for g in lines]
    tree = STRtree(roads)

    def fill(w: Window) -> np.ndarray:
        t, idx = _in_window(tree, info, w)
        shape_ = (int(w.height), int(w.width))
        if len(idx) == 0:
            return np.zeros(shape_, np.uint8)
        return rasterize(((mapping(roads[i]), 1) for i in idx), out_shape=shape_, transform=t, fill=0, dtype="uint8")

    p = _write_blocks(folder / "gt-roads.tif", info, "uint8", fill, NODATA_CLASS, progress)
    return {"roads": p}, "roads", ROAD_CLASSES


#: ``RSVIZ_LOCAL_PATHS``: the folders (``os.pathsep``-separated) the app's Local path may open files from. Unset:
#: :func:`local_path_roots`' defaults (the data cache, the derived cache, the workspace and the user's home).
LOCAL_PATHS_ENV = "RSVIZ_LOCAL_PATHS"


def local_path_roots() -> list[Path]:
    """The folders Map -> Local path opens files from, resolved (symlinks followed).

    ``$RSVIZ_LOCAL_PATHS`` when set (``/`` allows any file this process can read); else the sample-data cache
    (:func:`rsviz.data.catalog.data_dir`), :func:`~rsviz.resources.cache_dir`, :func:`~rsviz.resources.workspace_dir`
    and the user's home folder.
    """
    from rsviz.data.catalog import data_dir
    from rsviz.resources import cache_dir

    env = os.environ.get(LOCAL_PATHS_ENV)
    if env is not None and env.strip():
        raw = [Path(r) for r in env.split(os.pathsep) if r.strip()]
    else:
        raw = [data_dir(), cache_dir(), workspace_dir(), Path.home()]
    out: list[Path] = []
    for r in raw:
        q = r.expanduser().resolve()
        if q not in out:
            out.append(q)
    return out


def check_local_path(path: str | os.PathLike[str]) -> Path:
    """Refuse a path outside the folders the app may open files from (:func:`local_path_roots`), so that an app
    served to others (e.g. behind a reverse proxy) reads only the data folders meant for them.

    The path is resolved first (``..`` and symlinks followed), so a link inside an allowed folder that points
    outside it is refused too.

    Returns:
        The resolved path.

    Raises:
        RasterReadError: The path lies outside every allowed folder (the message lists them and names
            ``RSVIZ_LOCAL_PATHS``).
    """
    p = Path(path).expanduser().resolve()
    roots = local_path_roots()
    if not any(p.is_relative_to(r) for r in roots):
        raise RasterReadError(
            f"{path} is outside the folders this app opens files from ({', '.join(map(str, roots))}); copy it "
            f"into one of them, or ask whoever runs the app to add its folder to {LOCAL_PATHS_ENV}"
        )
    return p


def open_path(
    path: str | os.PathLike[str],
    gt: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
    source: str | None = None,
    progress: ProgressFn | None = None,
) -> Scene:
    """Open a raster on this machine, with optional ground truth, as a workspace scene.

    Nothing is read whole: the image is inspected (size, CRS, bands), copied to a COG with overviews only
    when it is large and has none, and the ground truth is checked against the image grid from its
    metadata and normalised block by block. Reopening the same files (same size and modification time)
    returns the recorded scene at once.

    Args:
        path: Any raster GDAL reads (GeoTIFF, COG, VRT, JPEG2000, PNG...).
        gt: Ground truth: a raster on exactly the image grid (class ids, a 0/1 or 0/255 mask, or float
            heights; 255 = nodata) or a GeoJSON (any CRS) of building polygons (a buildings scene) or of road
            centre lines only (a roads scene: lines burned :data:`ROAD_HALF_WIDTH_M` to each side).
        name: Display name (default: the file name).
        source: Recorded origin (default ``path:<path>``).
        progress: ``progress(done, total)`` over the blocks written.

    Returns:
        The :class:`Scene`.

    Raises:
        RasterReadError: Not a raster (or GeoJSON) GDAL can read; ground truth with invalid values.
        GridMismatchError: Ground truth on another grid, or vector ground truth for an image without CRS.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise RasterReadError(f"raster file not found: {p}; check the path")
    g = Path(gt).expanduser() if gt else None
    if g is not None and not g.is_file():
        raise RasterReadError(f"ground-truth file not found: {g}; check the path")
    key = _digest("path", *_file_stamp(p), *(_file_stamp(g) if g else ()))
    return _recorded(key, lambda: _open_path(key, p, g, name, source, progress))


def _open_path(
    key: str, p: Path, g: Path | None, name: str | None, source: str | None, progress: ProgressFn | None
) -> Scene:
    info = _inspect(p)
    folder = scene_dir(key)
    folder.mkdir(parents=True, exist_ok=True)
    image = _with_overviews(p, folder, info, "AVERAGE", "image", progress)
    targets: dict[str, Path] = {}
    task, classes = "unknown", tuple[ClassInfo, ...]()
    if g is not None:
        if g.suffix.lower() in (".geojson", ".json"):
            targets, task, classes = _vector_ground_truth(g, info, folder, progress)
        else:
            targets, task, classes = _raster_ground_truth(g, info, folder, progress)
    return Scene(
        key=key,
        name=name or p.name,
        image=image,
        **_grid_of(info),
        targets=targets,
        classes=classes,
        task=task,
        split="test" if targets else "predict",
        source=source or f"path:{p}",
    )


def _stream_to(dst: Path, data: bytes | BinaryIO, max_bytes: int | None = None) -> str:
    """Write bytes or a file-like object to ``dst`` in chunks; returns the sha256 (16 hex).

    Raises:
        ValueError: More than ``max_bytes`` (when given); nothing is left at ``dst``.
    """
    h = hashlib.sha256()
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
    written = 0
    try:
        with open(tmp, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                if max_bytes is not None and len(data) > max_bytes:
                    raise ValueError(f"{len(data)} bytes, more than {max_bytes}")
                h.update(data)
                f.write(data)
            else:
                data.seek(0)
                while chunk := data.read(1 << 22):
                    written += len(chunk)
                    if max_bytes is not None and written > max_bytes:
                        raise ValueError(f"more than {max_bytes} bytes")
                    h.update(chunk)
                    f.write(chunk)
    except ValueError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dst)
    return h.hexdigest()[:16]


def open_upload(
    image_name: str,
    image: bytes | BinaryIO,
    gt_name: str | None = None,
    gt: bytes | BinaryIO | None = None,
    *,
    progress: ProgressFn | None = None,
) -> Scene:
    """Open an uploaded raster (and optional ground truth) as a workspace scene.

    The files are streamed into ``<workspace>/uploads/`` (never held in memory whole beyond what the upload
    widget holds) and opened with :func:`open_path`.

    Raises:
        RasterReadError, GridMismatchError: See :func:`open_path`.
    """
    up = workspace_dir() / "uploads"
    up.mkdir(parents=True, exist_ok=True)
    _sweep_stale(up)
    tmp = Path(tempfile.mkdtemp(prefix=".upload-", dir=up))
    created = False
    try:
        ip = tmp / Path(image_name).name
        digest = _digest(Path(image_name).name, _stream_to(ip, image))
        gp = None
        if gt is not None and gt_name:
            gp = tmp / f"gt-{Path(gt_name).name}"
            digest = _digest(digest, Path(gt_name).name, _stream_to(gp, gt))
        final = up / digest
        if not final.exists():
            os.replace(tmp, final)
            created = True
        ip = final / ip.name
        gp = final / gp.name if gp is not None else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        return open_path(ip, gp, name=f"upload / {image_name}", source=f"upload:{image_name}", progress=progress)
    except RsvizError as exc:
        if created:  # a refused upload is not kept: nothing of it stays on the server
            shutil.rmtree(final, ignore_errors=True)
        # the message names the user's files, not where the server put them
        msg = str(exc).replace(str(ip), image_name)
        if gp is not None and gt_name:
            msg = msg.replace(str(gp), gt_name).replace(gp.name, gt_name)
        raise type(exc)(msg.replace(str(final), "the upload")) from exc


#: Temporary upload folders older than this (seconds) belong to a process that died mid-upload.
STALE_UPLOAD_S = 3600.0


def _sweep_stale(up: Path) -> None:
    """Remove ``.upload-*`` folders left by a process killed mid-upload (older than :data:`STALE_UPLOAD_S`)."""
    now = time.time()
    for d in up.glob(".upload-*"):
        try:
            if now - d.stat().st_mtime > STALE_UPLOAD_S:
                shutil.rmtree(d, ignore_errors=True)
        except FileNotFoundError:  # another session removed it first
            continue


def _write_array(
    dst: Path,
    arr: np.ndarray,
    transform: Affine,
    crs: CRS | None,
    nodata: float | None,
    valid: np.ndarray | None = None,
    descriptions: tuple[str, ...] = (),
) -> Path:
    """Write a small in-memory array (a catalog chip) as a tiled GeoTIFF with an internal mask for ``valid``."""
    a = arr if arr.ndim == 3 else arr[None]
    prof = {
        "driver": "GTiff",
        "height": a.shape[1],
        "width": a.shape[2],
        "count": a.shape[0],
        "dtype": str(a.dtype),
        "transform": transform,
        "crs": crs,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
    if crs is None:  # a chip without georeferencing (the ETH road tiles): pixel coordinates, said once
        del prof["transform"], prof["crs"]
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(tmp, "w", **prof) as ds:
        ds.write(a)
        for i, d in enumerate(descriptions, 1):
            ds.set_band_description(i, d)
        if valid is not None and not valid.all():
            ds.write_mask(valid.astype(np.uint8) * 255)
    os.replace(tmp, dst)
    return dst


def open_sample(ref: SceneRef) -> Scene:
    """Open a catalog scene (a chip: small enough to load) as a workspace scene.

    The chip's image and targets, as its dataset loader gives them, are written once into the workspace so
    that every later read, tile and run goes through files like any other scene.

    Raises:
        DataMissingError: The dataset is not in the data cache.
    """
    key = _digest("sample", ref.dataset, ref.id, *_file_stamp(ref.path))
    return _recorded(key, lambda: _open_sample(key, ref))


def _open_sample(key: str, ref: SceneRef) -> Scene:
    s = ref.load()
    folder = scene_dir(key)
    folder.mkdir(parents=True, exist_ok=True)
    transform = s.transform if s.crs is not None else Affine.identity()
    image = _write_array(folder / "image.tif", s.image, transform, s.crs, None, s.valid, s.band_names)
    targets: dict[str, Path] = {}
    for name, a in s.targets.items():
        if name == "edges":
            continue  # derived on read
        nodata = float("nan") if a.dtype.kind == "f" else None
        targets[name] = _write_array(folder / f"gt-{name}.tif", a, transform, s.crs, nodata)
    task = ref.task if ref.task else "unknown"
    if not targets:
        task = "unknown"
    elif task == "landcover" or "classes" in targets:
        task = "landcover" if "classes" in targets else task
    return Scene(
        key=key,
        name=f"{ref.dataset} / {ref.id}",
        image=image,
        height=s.shape[0],
        width=s.shape[1],
        count=s.image.shape[0],
        dtype=str(s.image.dtype),
        transform=transform,
        crs=s.crs,
        band_names=tuple(s.band_names),
        scale=(float(s.scale[0]), float(s.scale[1])),
        targets=targets,
        classes=tuple(s.classes),
        task=task,
        dataset=ref.dataset,
        split=ref.split,
        height_units=s.height_units,
        source=f"sample:{ref.dataset}/{ref.id}",
        gsd_m=None if s.crs is not None else s.extra.get("gsd_m"),
    )


__all__ = [
    "BLOCK",
    "MAX_EXTENT_PX",
    "MAX_READ_PX",
    "OVERVIEW_SIDE",
    "Extent",
    "Scene",
    "check_extent_size",
    "extent_area_m2",
    "load_scene",
    "open_path",
    "open_sample",
    "open_upload",
    "resolve_extent",
    "save_scene",
    "scene_dir",
]


def preview(scene: Scene, max_side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """A decimated view of the whole image, read from its overviews where it has them.

    Returns:
        ``(image, valid)``: ``(bands, h, w)`` in the file dtype with ``max(h, w) <= max_side``, and ``(h, w)`` bool.
    """
    f = max(1.0, max(scene.height, scene.width) / max_side)
    h, w = max(1, round(scene.height / f)), max(1, round(scene.width / f))
    with open_raster(scene.image) as ds:
        img = ds.read(out_shape=(ds.count, h, w))
        valid = ds.dataset_mask(out_shape=(h, w)) > 0
    return img, valid


def open_mosaic(mosaic: Any) -> Scene:
    """Open a mosaicked sample area (:class:`rsviz.datasets.mosaics.Mosaic`) as a workspace scene.

    The mosaic's own files (in the derived cache) are used as they are: its image (a VRT or COG with
    overviews), its target rasters and its train / val / test outline.
    """
    stamps = [_file_stamp(Path(mosaic.image)), *(_file_stamp(Path(p)) for p in mosaic.targets.values())]
    key = _digest("mosaic", mosaic.name, *stamps)
    return _recorded(key, lambda: _mosaic_scene(key, mosaic))


def _mosaic_scene(key: str, mosaic: Any) -> Scene:
    info = _inspect(Path(mosaic.image))
    grid = {**_grid_of(info), "band_names": tuple(mosaic.band_names) or info.band_names}
    return Scene(
        key=key,
        name=mosaic.title,
        image=Path(mosaic.image),
        **grid,
        targets={k: Path(v) for k, v in mosaic.targets.items()},
        classes=tuple(mosaic.classes),
        task=mosaic.task,
        dataset=mosaic.dataset,
        split="test",
        source=f"mosaic:{mosaic.name}",
        splits=Path(mosaic.splits) if mosaic.splits else None,
    )
