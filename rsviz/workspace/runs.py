"""Model runs on disk: each run's heads in a COG under ``<workspace>/runs/<key>/``, with a JSON record.

A run is keyed by the model's weights (a hash of ``card.json`` and the weights file), the scene, the
extent's pixel window and the inference options, so asking for the same combination again, in this
process or after a restart, reopens the files instead of predicting. The COG has the band layout of
:func:`rsviz.inference.output_band_layout` (class ids in band 1) plus a float32 ``_height`` sidecar for
height heads; it is the one copy the map's tiles, the metrics and the exports read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rasterio.windows import Window

from rsviz.errors import RsvizError, UnknownNameError
from rsviz.resources import workspace_dir
from rsviz.workspace.scene import Extent, Scene, check_extent_size


@dataclass(frozen=True)
class RunOptions:
    """Inference options chosen for a run.

    Attributes:
        tile: Window side in pixels (None: the card's).
        overlap: Window overlap fraction in [0, 1) (None: the card's).
        tta: Test-time augmentation (None: as the model card recommends).
        device: ``auto``, ``cpu``, ``cuda``, ``mps``.
        blend: ``gaussian``, ``cosine`` or ``constant``.
        match_gsd: Predict a scene whose GSD lies outside the card's range at the model's GSD
            (:mod:`rsviz.inference.gsd`).
    """

    tile: int | None = None
    overlap: float | None = None
    tta: bool | None = None
    device: str = "auto"
    blend: str = "gaussian"
    match_gsd: bool = True

    def key(self) -> str:
        """Cache key (sorted JSON)."""
        return json.dumps(asdict(self), sort_keys=True)

    def predict_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`rsviz.inference.predict` these options set (the device is the
        loaded model's)."""
        return {
            "tile": self.tile,
            "overlap": self.overlap,
            "tta": self.tta,
            "blend": self.blend,
            "match_gsd": self.match_gsd,
        }


@functools.lru_cache(maxsize=64)
def _weights_hash(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _, _ in stamp:
        with open(Path(folder) / name, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


def weights_hash(model: str) -> str:
    """sha256 (16 hex) of a registered model's ``card.json`` and weights files (cached by size and mtime).

    Raises:
        UnknownNameError: Unknown model (listing the valid names).
    """
    from rsviz.models.api import model_dir

    d = model_dir(model)
    files = sorted(
        p
        for p in d.iterdir()
        if p.is_file() and (p.name == "card.json" or p.suffix in (".safetensors", ".onnx", ".pt2", ".pt", ".pth"))
    )
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _weights_hash(str(d), stamp)


@functools.lru_cache(maxsize=4)
def _loaded(model: str, device: str, weights: str) -> Any:
    """A model loaded once per (name, device, weights hash)."""
    from rsviz.models.api import load_model

    return load_model(model, device)


def run_key(model: str, scene_key: str, extent: Extent, options: RunOptions) -> str:
    """Opaque key (16 hex) of a (model weights, scene, extent window, options, rsviz version) combination."""
    from rsviz import __version__

    raw = "|".join((model, weights_hash(model), scene_key, extent.key(), options.key(), __version__))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _runs_root() -> Path:
    d = workspace_dir() / "runs"
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class RunResult:
    """A model's prediction over an extent of a scene, stored in the workspace.

    Attributes:
        key: :func:`run_key`.
        model: Model name.
        scene_key: :attr:`Scene.key`.
        extent: The :class:`Extent` predicted.
        options: :class:`RunOptions` asked for.
        path: The prediction COG (class ids in band 1; see :func:`rsviz.inference.output_band_layout`).
        seconds: Wall time of the prediction.
        run_options: What the engine used (tile, overlap, TTA, device, precision...).
        stats: Engine statistics (tiles, MPx/s).
        created: UNIX time.
    """

    key: str
    model: str
    scene_key: str
    extent: Extent
    options: RunOptions
    path: Path
    seconds: float
    run_options: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    @property
    def height_path(self) -> Path | None:
        """The float32 height sidecar, when the model has a height head."""
        p = self.path.with_name(self.path.stem + "_height.tif")
        return p if p.exists() else None

    @property
    def external(self) -> bool:
        """A prediction made elsewhere (:mod:`rsviz.workspace.external`), not by a model run here."""
        return (self.path.parent / "card.json").is_file()

    @property
    def card(self) -> Any:
        """The :class:`~rsviz.models.card.ModelCard` the run is shown and scored with: the run's own
        ``card.json`` for an external prediction, else its model's.

        Raises:
            UnknownNameError: The run's model is no longer registered.
        """
        from rsviz.models.api import get_model_card
        from rsviz.models.card import ModelCard

        own = self.path.parent / "card.json"
        return ModelCard.load(own) if own.is_file() else get_model_card(self.model)

    @functools.cached_property
    def bands(self) -> tuple[str, ...]:
        """Band names of the prediction COG (its ``rsviz_bands`` tag), e.g. ``("classes", "prob:building", ...)``."""
        from rsviz.raster import open_raster

        with open_raster(self.path) as ds:
            return tuple(ds.tags().get("rsviz_bands", "classes").split(","))

    @property
    def prediction(self) -> Any:
        """The run's heads decoded from its COG (:func:`rsviz.inference.export.read_prediction`): an
        :class:`~rsviz.inference.Prediction` on the extent grid with :attr:`run_options` and :attr:`stats`.
        Decoded at each access (float32 heads are several times the COG's size; nothing keeps them)."""
        from rsviz.inference.export import read_prediction

        p = read_prediction(self.path)
        p.options, p.stats = dict(self.run_options), dict(self.stats)
        return p

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record."""
        w = self.extent.window
        return {
            "key": self.key,
            "model": self.model,
            "scene_key": self.scene_key,
            "window": [int(w.col_off), int(w.row_off), int(w.width), int(w.height)],
            "bounds": list(self.extent.bounds) if self.extent.bounds else None,
            "options": asdict(self.options),
            "path": self.path.name,
            "seconds": self.seconds,
            "run_options": self.run_options,
            "stats": {k: v for k, v in self.stats.items() if k != "files"},
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], folder: Path) -> RunResult:
        """Inverse of :meth:`to_dict` for a record in ``folder``."""
        b = d.get("bounds")
        return cls(
            key=d["key"],
            model=d["model"],
            scene_key=d["scene_key"],
            extent=Extent(Window(*d["window"]), (float(b[0]), float(b[1]), float(b[2]), float(b[3])) if b else None),
            options=RunOptions(**d["options"]),
            path=folder / d["path"],
            seconds=float(d["seconds"]),
            run_options=dict(d.get("run_options", {})),
            stats=dict(d.get("stats", {})),
            created=float(d.get("created", 0.0)),
        )


def load_run(key: str) -> RunResult:
    """Reopen a run recorded in the workspace.

    Raises:
        UnknownNameError: No complete run with this key.
    """
    if len(key) != 16 or not all(c in "0123456789abcdef" for c in key):
        raise UnknownNameError(f"{key!r} is not a run id of this workspace")
    folder = _runs_root() / key
    rec = folder / "run.json"
    if not rec.is_file():
        raise UnknownNameError(f"run {key} is not in this workspace ({workspace_dir()})")
    try:
        r = RunResult.from_dict(json.loads(rec.read_text()), folder)
    except (ValueError, KeyError, TypeError) as exc:
        raise UnknownNameError(f"the record of run {key} is damaged ({exc}); run the model again") from exc
    if not r.path.is_file():
        raise UnknownNameError(f"the prediction of run {key} is gone; run the model again")
    return r


def runs_of(scene_key: str) -> list[RunResult]:
    """Every complete run of a scene in the workspace, oldest first."""
    out = []
    for rec in _runs_root().glob("*/run.json"):
        try:
            d = json.loads(rec.read_text())
        except ValueError:
            continue
        if d.get("scene_key") == scene_key:
            try:
                out.append(load_run(d["key"]))
            except (UnknownNameError, KeyError):
                continue
    return sorted(out, key=lambda r: r.created)


def run_model(
    model: str,
    scene: Scene,
    extent: Extent,
    options: RunOptions,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[RunResult, bool]:
    """Predict ``model`` over ``extent`` of ``scene`` into the workspace (or reopen the same run).

    The scene's file is read by windows of the extent (:func:`rsviz.inference.predict` with ``window=``) and
    the heads stream to a COG; the run is recorded only once the COG is complete, so a failed or cancelled
    run leaves nothing behind.

    Returns:
        ``(result, from_workspace)``.

    Raises:
        ExtentError: Extent too large for one interactive run on the device.
        BandCountError, ModelInputError: The scene does not fit the model card.
        InferenceCancelled: ``cancel()`` returned True.
    """
    from rsviz.inference import predict

    key = run_key(model, scene.key, extent, options)
    try:
        return load_run(key), True
    except UnknownNameError:
        pass
    lm = _loaded(model, options.device, weights_hash(model))  # replaced weights are loaded again
    check_extent_size(extent, lm.device.type)

    def write(tmp: Path) -> RunResult:
        t0 = time.perf_counter()
        pred = predict(
            lm,
            scene.image,
            window=extent.window,
            output=tmp / "prediction.tif",
            progress=progress,
            cancel=cancel,
            **options.predict_kwargs(),
        )
        return RunResult(
            key,
            model,
            scene.key,
            extent,
            options,
            _runs_root() / key / "prediction.tif",
            time.perf_counter() - t0,
            run_options=dict(pred.options),
            stats={k: v for k, v in pred.stats.items() if k != "files"},
        )

    return _stage_run(key, write)


def _stage_run(key: str, write: Callable[[Path], RunResult]) -> tuple[RunResult, bool]:
    """Make run ``key`` in a hidden staging folder and move it to ``runs/<key>/`` once complete.

    Args:
        key: The run key.
        write: Writes the run's files into the staging folder it is given and returns the
            :class:`RunResult` (its ``path`` under ``runs/<key>/``).

    Returns:
        ``(result, False)``, or ``(the run recorded meanwhile, True)`` when a concurrent identical run
        finished first (its files are kept; ours are dropped).

    Raises:
        Whatever ``write`` raises; the staging folder is removed first, so a failed or cancelled run leaves
        nothing behind.
    """
    root = _runs_root()
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        res = write(tmp)
        (tmp / "run.json").write_text(json.dumps(res.to_dict(), indent=1))
        if (root / key).exists():
            shutil.rmtree(tmp, ignore_errors=True)
            return load_run(key), True
        os.replace(tmp, root / key)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return res, False


def record_run(
    model: str,
    scene: Scene,
    extent: Extent,
    options: RunOptions,
    path: Path,
    seconds: float,
    *,
    run_options: dict[str, Any] | None = None,
    stats: dict[str, Any] | None = None,
) -> RunResult:
    """Record a prediction COG written elsewhere (``rsviz batch``) as the workspace run of its key.

    The COG (and its ``_height`` sidecar) is hard-linked into ``runs/<key>/`` (copied across file systems),
    so the app's Map page opens it like a run of its own; a run already recorded under the key is kept.

    Args:
        model: Model name.
        scene: The workspace scene predicted.
        extent: The extent predicted (the whole scene for a batch).
        options: The options, as :func:`run_key` hashes them.
        path: The complete prediction COG (band layout of :func:`rsviz.inference.output_band_layout`).
        seconds: Wall time of the prediction.
        run_options: What the engine used (:attr:`rsviz.inference.Prediction.options`).
        stats: Engine statistics.

    Returns:
        The :class:`RunResult`.

    Raises:
        OSError: The workspace cannot be written.
    """
    key = run_key(model, scene.key, extent, options)
    try:
        return load_run(key)
    except UnknownNameError:
        pass

    def write(tmp: Path) -> RunResult:
        for src in (path, path.with_name(path.stem + "_height.tif")):
            if not src.exists():
                continue
            dst = tmp / ("prediction.tif" if src == path else "prediction_height.tif")
            try:
                os.link(src, dst)
            except OSError:  # another file system, or links not allowed
                shutil.copyfile(src, dst)
        return RunResult(
            key,
            model,
            scene.key,
            extent,
            options,
            _runs_root() / key / "prediction.tif",
            seconds,
            dict(run_options or {}),
            dict(stats or {}),
        )

    return _stage_run(key, write)[0]


__all__ = [
    "RsvizError",
    "RunOptions",
    "RunResult",
    "load_run",
    "record_run",
    "run_key",
    "run_model",
    "runs_of",
    "weights_hash",
]
