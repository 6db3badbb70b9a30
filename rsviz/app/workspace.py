"""The analyst's workspace: the open scene, the drawn extent, model runs and their metrics.

Everything here is plain Python (no widgets) so pages stay thin and tests can drive it.
A :class:`Scene` holds an image with optional ground truth on its grid; an extent is
EPSG:4326 bounds (from the map) or None for the whole scene; :func:`run_model` predicts
the extent and caches the result by (model, scene, extent, options), so revisiting an
earlier choice is instant.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from rasterio.windows import Window

from rsviz.datasets.base import ClassInfo, Sample
from rsviz.errors import ExtentError, GridMismatchError, RsvizError
from rsviz.raster import check_same_grid, grid_window_from_bounds, read_raster

#: Largest extent (pixels) run interactively, by device type.
MAX_EXTENT_PX = {"cpu": 4_000_000, "mps": 16_000_000, "cuda": 64_000_000}
#: Largest raster the app loads into memory.
MAX_SCENE_PX = 60_000_000


@dataclass
class Scene:
    """An image with optional ground truth, as opened in the app.

    Attributes:
        key: Stable id used in cache keys (dataset/scene id or upload hash).
        name: Display name.
        sample: Image, grid and targets (see :class:`~rsviz.datasets.base.Sample`).
        task: ``buildings``, ``roads``, ``landcover``, ``height`` or ``unknown``.
    """

    key: str
    name: str
    sample: Sample
    task: str = "unknown"

    @property
    def georeferenced(self) -> bool:
        """True when the image has a CRS."""
        return self.sample.crs is not None


def scene_from_sample(sample: Sample, task: str | None = None) -> Scene:
    """Wrap a catalog sample."""
    t = task or next((k for k in ("buildings", "roads", "classes", "height") if k in sample.targets), "unknown")
    t = {"classes": "landcover"}.get(t, t)
    return Scene(key=f"{sample.dataset}/{sample.id}", name=f"{sample.dataset} / {sample.id}", sample=sample, task=t)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def scene_from_upload(
    image_name: str,
    image_bytes: bytes,
    gt_name: str | None = None,
    gt_bytes: bytes | None = None,
    workdir: str | Path | None = None,
) -> Scene:
    """Open an uploaded raster (GeoTIFF/COG/PNG/JPEG) with optional ground truth.

    The ground truth is a raster on the same grid (class ids or a 0/255 mask) or a GeoJSON of
    building polygons, rasterized onto the image grid. Uploaded files are kept in ``workdir``.

    Raises:
        RasterReadError: Not a raster.
        GridMismatchError: Ground-truth raster on another grid.
        RsvizError: Raster too large for the app, or unreadable GeoJSON.
    """
    from rsviz.labels import edges_from_mask, rasterize_polygons, read_geojson_features

    wd = Path(workdir or tempfile.mkdtemp(prefix="rsviz-upload-"))
    wd.mkdir(parents=True, exist_ok=True)
    key = _digest(image_bytes + (gt_bytes or b""))
    ip = wd / f"{key}-{Path(image_name).name}"
    ip.write_bytes(image_bytes)
    r = read_raster(ip)
    if r.shape[0] * r.shape[1] > MAX_SCENE_PX:
        raise RsvizError(
            f"{image_name} has {r.shape[0] * r.shape[1] / 1e6:.0f} MPx; the app opens rasters up to "
            f"{MAX_SCENE_PX / 1e6:.0f} MPx. Crop it, or run `python -m rsviz predict` on the full file."
        )
    targets: dict[str, np.ndarray] = {}
    classes: tuple[ClassInfo, ...] = ()
    task = "unknown"
    if gt_bytes is not None and gt_name:
        gp = wd / f"{key}-gt-{Path(gt_name).name}"
        gp.write_bytes(gt_bytes)
        if gp.suffix.lower() in (".geojson", ".json"):
            feats, crs = read_geojson_features(gp)
            mask = rasterize_polygons([f["geometry"] for f in feats], r.transform, r.shape, r.crs, crs)
            targets, task = {"buildings": mask, "edges": edges_from_mask(mask)}, "buildings"
        else:
            g = read_raster(gp, bands=[1])
            check_same_grid(r, g, what=f"ground truth {gt_name}")
            vals = np.unique(g.array[0])
            if set(vals.tolist()) <= {0, 1, 255}:
                mask = (g.array[0] > 0).astype(np.uint8)
                targets, task = {"buildings": mask, "edges": edges_from_mask(mask)}, "buildings"
            else:
                cls = g.array[0].astype(np.uint8)
                targets, task = {"classes": cls, "edges": edges_from_mask(cls)}, "landcover"
        from rsviz.datasets.buildings import BUILDING_CLASSES

        classes = BUILDING_CLASSES if task == "buildings" else ()
    s = Sample(
        id=Path(image_name).stem,
        dataset="upload",
        split="predict" if not targets else "test",
        image=r.array,
        band_names=r.band_names,
        scale=r.scale,
        transform=r.transform,
        crs=r.crs,
        valid=r.valid,
        targets=targets,
        classes=classes,
        path=ip,
    )
    return Scene(key=f"upload/{key}", name=f"upload / {image_name}", sample=s, task=task)


def scene_from_path(path: str | Path) -> Scene:
    """Open a raster from a local path (no ground truth)."""
    p = Path(path).expanduser()
    return scene_from_upload(p.name, p.read_bytes())


# --------------------------------------------------------------------------- extents


@dataclass(frozen=True)
class Extent:
    """A pixel window of a scene and, when georeferenced, its EPSG:4326 bounds."""

    window: Window
    bounds: tuple[float, float, float, float] | None

    @property
    def pixels(self) -> int:
        """Number of pixels."""
        return int(self.window.width * self.window.height)

    def key(self) -> str:
        """Cache key."""
        w = self.window
        return f"{int(w.col_off)},{int(w.row_off)},{int(w.width)},{int(w.height)}"


def resolve_extent(scene: Scene, bounds: tuple[float, float, float, float] | None) -> Extent:
    """The scene window covered by EPSG:4326 ``bounds`` (None: the whole scene).

    Raises:
        ExtentError: The extent does not overlap the scene.
        CRSError: ``bounds`` given for a scene without CRS.
    """
    s = scene.sample
    h, w = s.shape
    if bounds is None:
        win = Window(0, 0, w, h)
    else:
        win = grid_window_from_bounds(s.transform, s.crs, (h, w), bounds)
    b = None
    if s.crs is not None:
        from rsviz.geo import reproject_bounds
        from rsviz.raster import _bounds

        t = s.transform * s.transform.translation(win.col_off, win.row_off)
        b = reproject_bounds(_bounds(t, int(win.height), int(win.width)), s.crs, "EPSG:4326")
    return Extent(win, b)


def extent_area_m2(scene: Scene, extent: Extent) -> float | None:
    """Ground area of an extent in square metres (GSD^2 x pixels), or None without CRS."""
    g = scene.sample.gsd
    return None if g is None else g * g * extent.pixels


def check_extent_size(extent: Extent, device_type: str) -> None:
    """Refuse extents too large to run interactively on this device.

    Raises:
        ExtentError: Naming the size, the cap, and what to do.
    """
    cap = MAX_EXTENT_PX.get(device_type, MAX_EXTENT_PX["cpu"])
    if extent.pixels > cap:
        raise ExtentError(
            f"the extent is {extent.pixels / 1e6:.1f} MPx, more than the {cap / 1e6:.0f} MPx the app runs on "
            f"{device_type.upper()}; draw a smaller rectangle, or run `python -m rsviz predict` with --bounds on the file"
        )


def crop(scene: Scene, extent: Extent) -> Sample:
    """The scene cropped to the extent (image, valid mask, targets, transform)."""
    s = scene.sample
    w = extent.window
    r0, r1 = int(w.row_off), int(w.row_off + w.height)
    c0, c1 = int(w.col_off), int(w.col_off + w.width)
    return Sample(
        id=s.id,
        dataset=s.dataset,
        split=s.split,
        image=s.image[:, r0:r1, c0:c1],
        band_names=s.band_names,
        scale=s.scale,
        transform=s.transform * s.transform.translation(c0, r0),
        crs=s.crs,
        valid=s.valid[r0:r1, c0:c1],
        targets={k: v[r0:r1, c0:c1] for k, v in s.targets.items()},
        classes=s.classes,
        height_units=s.height_units,
        path=s.path,
        extra=s.extra,
    )


# --------------------------------------------------------------------------- runs


@dataclass
class RunOptions:
    """Inference options chosen in the app."""

    tile: int | None = None
    overlap: float | None = None
    tta: bool | None = None  # None: as the model card recommends
    device: str = "auto"
    blend: str = "gaussian"

    def key(self) -> str:
        """Cache key."""
        return json.dumps(self.__dict__, sort_keys=True)


@dataclass
class RunResult:
    """A model's prediction over an extent, with timing.

    Attributes:
        model: Model name.
        scene_key: :attr:`Scene.key`.
        extent: The :class:`Extent`.
        options: :class:`RunOptions`.
        prediction: :class:`~rsviz.inference.Prediction` (heads on the extent grid).
        seconds: Wall time of the run.
        created: UNIX time.
    """

    model: str
    scene_key: str
    extent: Extent
    options: RunOptions
    prediction: object
    seconds: float
    created: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        """Cache key of this run."""
        return run_key(self.model, self.scene_key, self.extent, self.options)


def run_key(model: str, scene_key: str, extent: Extent, options: RunOptions) -> str:
    """Cache key of a (model, scene, extent, options) combination."""
    return f"{model}|{scene_key}|{extent.key()}|{options.key()}"


class RunCache:
    """Least-recently-used cache of :class:`RunResult` (bounded by count)."""

    def __init__(self, max_items: int = 24) -> None:
        self.max_items = max_items
        self._d: OrderedDict[str, RunResult] = OrderedDict()

    def get(self, key: str) -> RunResult | None:
        """Cached result or None (marks it recently used)."""
        r = self._d.get(key)
        if r is not None:
            self._d.move_to_end(key)
        return r

    def put(self, result: RunResult) -> None:
        """Store a result, evicting the oldest beyond ``max_items``."""
        self._d[result.key] = result
        self._d.move_to_end(result.key)
        while len(self._d) > self.max_items:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


RUN_CACHE = RunCache()


def run_model(
    model: str,
    scene: Scene,
    extent: Extent,
    options: RunOptions,
    progress: Callable[[int, int], None] | None = None,
    cache: RunCache = RUN_CACHE,
) -> tuple[RunResult, bool]:
    """Predict ``model`` over ``extent`` of ``scene`` (cached).

    Returns:
        ``(result, from_cache)``.

    Raises:
        ExtentError: Extent too large for the device.
        BandCountError, ModelInputError: Scene does not fit the model card.
    """
    from rsviz.inference import predict

    key = run_key(model, scene.key, extent, options)
    hit = cache.get(key)
    if hit is not None:
        return hit, True
    from rsviz.models.api import load_model_cached

    lm = load_model_cached(model, options.device)
    check_extent_size(extent, lm.device.type)
    sub = crop(scene, extent)
    t0 = time.perf_counter()
    pred = predict(
        lm,
        sub.raster_data(),
        tile=options.tile,
        overlap=options.overlap,
        tta=options.tta,
        blend=options.blend,
        progress=progress,
    )
    res = RunResult(model, scene.key, extent, options, pred, time.perf_counter() - t0)
    cache.put(res)
    return res, False


def target_for(scene: Scene, card) -> tuple[str, np.ndarray | None]:
    """The evaluation task (its name, ``none`` when nothing fits) and ground-truth array for a model and a scene."""
    from rsviz.evaluation import target_spec

    spec = target_spec(card, scene.sample.targets)
    return (spec.task.value, scene.sample.targets[spec.target]) if spec is not None else ("none", None)


def evaluate_run(scene: Scene, result: RunResult, card):
    """Metrics of a run inside its extent (an :class:`~rsviz.evaluation.EvalResult` with the object matching
    and road graphs kept for display), or None when the scene has no ground truth this model fits."""
    from rsviz.evaluation import evaluate_sample

    return evaluate_sample(card, result.prediction.heads, crop(scene, result.extent), with_artifacts=True)


__all__ = [
    "Scene",
    "Extent",
    "RunOptions",
    "RunResult",
    "RunCache",
    "RUN_CACHE",
    "scene_from_sample",
    "scene_from_upload",
    "scene_from_path",
    "resolve_extent",
    "check_extent_size",
    "crop",
    "run_model",
    "evaluate_run",
    "target_for",
    "extent_area_m2",
    "GridMismatchError",
    "ExtentError",
]
