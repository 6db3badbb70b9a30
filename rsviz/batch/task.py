"""One batch task: a scene predicted into a COG in the batch folder and scored, its counts sent back.

:func:`process_scene` is the whole unit of work, the same in the sequential loop (``--workers 0``) and on a
Dask worker (:func:`rsviz.batch.cluster.dask_task`, with the model the worker's plugin loaded once). A scene
that cannot be processed (a corrupt file, ground truth on another grid, a band count the model does not take)
comes back as a ``failed`` :class:`SceneOutcome` with the error's message; the other scenes go on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from rsviz.batch.counts import SceneCounts
from rsviz.batch.scenes import SceneSpec
from rsviz.errors import RUN_FAILURES, failure_message

if TYPE_CHECKING:
    from rsviz.workspace.runs import RunOptions

#: Exceptions a scene's task records as that scene's failure (user input, disk, device); others are bugs and
#: fail the task itself, which the client then records with the exception's type.
SCENE_ERRORS = RUN_FAILURES


@dataclass(frozen=True)
class BatchOptions:
    """Inference and evaluation options of a batch.

    Attributes:
        tile: Window side in pixels, multiple of 32 (None: the model card's).
        overlap: Window overlap fraction in [0, 1) (None: the card's).
        blend: ``gaussian``, ``cosine`` or ``constant``.
        tta: Test-time augmentation (None: as the card recommends).
        threshold: Probability threshold of binary heads.
        compress: COG compression (``deflate``, ``zstd``, ``lzw``, ``none``).
        batch_size: Windows per forward pass.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (``auto`` on a GPU worker: its GPU).
        block: Side of the evaluation's blocks, pixels (scenes of any size are scored block by block).
        match_gsd: Predict scenes whose GSD lies outside the card's range at the model's GSD.
    """

    tile: int | None = None
    overlap: float | None = None
    blend: str = "gaussian"
    tta: bool | None = None
    threshold: float = 0.5
    compress: str = "deflate"
    batch_size: int = 4
    device: str = "auto"
    block: int = 1024
    match_gsd: bool = True

    def run_options(self) -> RunOptions:
        """The :class:`~rsviz.workspace.runs.RunOptions` of a scene's run (the key it is recorded under)."""
        from rsviz.workspace.runs import RunOptions

        return RunOptions(
            tile=self.tile,
            overlap=self.overlap,
            tta=self.tta,
            device=self.device,
            blend=self.blend,
            match_gsd=self.match_gsd,
        )

    def identity(self) -> dict[str, Any]:
        """The options that change the outputs (hashed into the manifest): all but ``batch_size`` and ``device``,
        so a batch resumed on another machine or cluster keeps the scenes already done."""
        d = asdict(self)
        d.pop("batch_size")
        d.pop("device")
        return d


@dataclass(frozen=True)
class BatchJob:
    """What every task of a batch shares.

    Attributes:
        model: Registered model name.
        weights: :func:`rsviz.workspace.runs.weights_hash` of the model on the client (workers check theirs).
        out: The batch folder (visible to the workers: same machine or a shared file system).
        options: :class:`BatchOptions`.
    """

    model: str
    weights: str
    out: str
    options: BatchOptions = field(default_factory=BatchOptions)

    @property
    def plugin_name(self) -> str:
        """Name of the :class:`ModelPlugin` holding this job's model on each worker."""
        return f"rsviz-model-{self.model}-{self.weights}-{self.options.device}"


@dataclass(frozen=True)
class SceneOutcome:
    """What one scene's task returns (and the manifest records).

    Attributes:
        name: The scene's name in the batch.
        status: ``done`` (predicted, and scored when it has ground truth) or ``failed``.
        scene_hash: Hash of model weights, scene files and options (:func:`rsviz.batch.manifest.scene_hash`).
        prediction: File name of the prediction COG in the batch folder, or None (failed).
        counts: The evaluation's poolable counts, or None (no ground truth, not scorable, failed).
        note: Why a done scene is not scored (no ground truth, ground truth the model cannot be scored on), or
            None.
        error: ``Type: message`` of a failed scene, else None.
        scene_key: Workspace scene key (:attr:`rsviz.workspace.Scene.key`; the app's ``?scene=``), or None.
        run_key: Workspace run key of the prediction (the app's ``?runs=``), or None.
        bounds_4326: EPSG:4326 ``(west, south, east, north)`` of the scene, or None (no CRS, failed).
        pixels: Pixels predicted.
        seconds: Wall time of the task (open, predict, score).
        worker: Address of the worker that ran it (``local`` in the sequential loop).
        prediction_bytes: Size of the prediction COG (a resumed batch checks the file is still this size).
    """

    name: str
    status: str
    scene_hash: str
    prediction: str | None = None
    counts: SceneCounts | None = None
    note: str | None = None
    error: str | None = None
    scene_key: str | None = None
    run_key: str | None = None
    bounds_4326: tuple[float, float, float, float] | None = None
    pixels: int = 0
    seconds: float = 0.0
    worker: str = "local"
    prediction_bytes: int = 0

    @property
    def ok(self) -> bool:
        """True for a done scene."""
        return self.status == "done"

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (a manifest entry)."""
        d = asdict(self)
        d["counts"] = self.counts.to_json() if self.counts is not None else None
        d["bounds_4326"] = list(self.bounds_4326) if self.bounds_4326 is not None else None
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SceneOutcome:
        """Inverse of :meth:`to_json`.

        Raises:
            KeyError, ValueError, TypeError: Not a :meth:`to_json` dict.
        """
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw["counts"] = SceneCounts.from_json(d["counts"]) if d.get("counts") else None
        b = d.get("bounds_4326")
        kw["bounds_4326"] = (float(b[0]), float(b[1]), float(b[2]), float(b[3])) if b else None
        return cls(**kw)


def failed(
    name: str,
    scene_hash: str,
    exc: BaseException,
    seconds: float = 0.0,
    worker: str = "local",
    path: str | None = None,
) -> SceneOutcome:
    """A failed outcome naming the exception (project errors by message alone: it says what to fix), prefixed
    with the scene's ``path`` when the message does not name it."""
    msg = failure_message(exc)
    if path is not None and Path(path).name not in msg:
        msg = f"{path}: {msg}"
    return SceneOutcome(name, "failed", scene_hash, error=msg, seconds=seconds, worker=worker)


def process_scene(
    spec: SceneSpec,
    job: BatchJob,
    scene_hash: str,
    model: Any,
    lock: threading.Lock | None = None,
    worker: str = "local",
) -> SceneOutcome:
    """Predict one scene into ``<out>/<name>.tif`` and score it against its ground truth.

    The scene is opened in the workspace (its ground truth normalised onto its grid), predicted with
    :func:`rsviz.inference.predict` streaming into the COG (written under a temporary name beside it and
    renamed when complete, so no half-written file ever has the final name), scored block by block with
    :func:`rsviz.evaluation.evaluate_rasters` from the COG on disk, and recorded as a workspace run (the COG
    hard-linked, so the app's Map page opens it).

    Args:
        spec: The scene.
        job: The batch's model, folder and options.
        scene_hash: The scene's manifest hash.
        model: The :class:`~rsviz.models.api.LoadedModel`.
        lock: Held around the prediction (threads of one worker share its model; their scoring overlaps).
        worker: Name of the worker, recorded.

    Returns:
        The :class:`SceneOutcome`: ``done`` with counts (or a note why it is not scored), or ``failed`` with the
        error of the scene (:data:`SCENE_ERRORS`).
    """
    from contextlib import nullcontext

    from rsviz.evaluation import evaluate_rasters
    from rsviz.inference import predict
    from rsviz.workspace import resolve_extent
    from rsviz.workspace.runs import record_run

    t0 = time.perf_counter()
    o = job.options
    try:
        scene = spec.open()
        target = Path(job.out) / f"{spec.name}.tif"
        t1 = time.perf_counter()
        with lock if lock is not None else nullcontext():
            pred = predict(
                model,
                scene.image,
                batch_size=o.batch_size,
                threshold=o.threshold,
                output=target,
                compress=o.compress,
                **o.run_options().predict_kwargs(),
            )
        predict_s = time.perf_counter() - t1
        counts, note = None, None
        if not scene.targets:
            note = "no ground truth"
        else:
            res = evaluate_rasters(model.card, target, scene.targets, block=o.block)
            if res is None:
                note = (
                    f"{model.card.name} cannot be scored against this ground truth ({', '.join(sorted(scene.targets))})"
                )
            else:
                counts = SceneCounts.of(res)
        run = record_run(
            job.model,
            scene,
            resolve_extent(scene, None),
            o.run_options(),
            target,
            predict_s,
            run_options=dict(pred.options),
            stats={k: v for k, v in pred.stats.items() if k != "files"},
        )
    except SCENE_ERRORS as exc:
        return failed(spec.name, scene_hash, exc, time.perf_counter() - t0, worker, spec.image)
    return SceneOutcome(
        spec.name,
        "done",
        scene_hash,
        prediction=target.name,
        counts=counts,
        note=note,
        scene_key=scene.key,
        run_key=run.key,
        bounds_4326=scene.bounds_4326,
        pixels=scene.pixels,
        seconds=time.perf_counter() - t0,
        worker=worker,
        prediction_bytes=target.stat().st_size,
    )
