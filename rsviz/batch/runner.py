"""``run_batch``: a model over many scenes, one task per scene, on Dask (or in this process), pooled.

The client resolves the scenes, skips those the manifest has complete, submits one task per remaining
scene (:func:`rsviz.batch.cluster.dask_task`; the model is loaded once per worker by a worker plugin),
records each outcome in the manifest as it arrives, and when all are in writes the batch's reports into the
folder:

* ``<name>.tif``: each scene's prediction COG (band layout of :func:`rsviz.inference.output_band_layout`);
* ``manifest.json``: per scene, status, hash, counts (:mod:`rsviz.batch.manifest`);
* ``eval.json``: raster-vision's layout, ``overall`` from the summed counts of every scored scene plus
  ``per_scene`` (:func:`rsviz.evaluation.to_eval_json`); ``eval.csv`` its per-class and metric rows;
* ``scenes.csv``: one row per scene (status, headline figures, pixels, seconds, error);
* ``report.html``: the pooled figures, the per-scene table and the footprints as GeoJSON.

A worker that dies mid-task has its task run again elsewhere by Dask (the scheduler's allowed failures);
a scene whose own files fail is recorded ``failed`` and the others complete.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsviz.batch.counts import pool_counts
from rsviz.batch.manifest import Manifest, folder_lock, remove_scratch, scene_hash, write_atomic
from rsviz.batch.scenes import SceneSpec
from rsviz.batch.task import BatchJob, BatchOptions, SceneOutcome, failed, process_scene
from rsviz.errors import OutputPathError, RasterReadError, RsvizError

#: Figures where lower is better (the map's colour scale is reversed for them).
LOWER_IS_BETTER = ("rmse", "mae", "bias")


class BatchCancelled(RsvizError, RuntimeError):
    """The batch was cancelled; the scenes finished so far are in the manifest."""


@dataclass(frozen=True)
class BatchSummary:
    """What a batch did.

    Attributes:
        out: The batch folder.
        model: Model name.
        outcomes: One :class:`~rsviz.batch.task.SceneOutcome` per scene, in the order given.
        skipped: Names of the scenes the manifest had complete (not run again).
        overall: The pooled :class:`~rsviz.evaluation.EvalResult` of the scored scenes, or None (none scored).
        per_scene: Scene name -> its result (from its counts).
        seconds: Wall time of the batch.
        files: The report files written (``eval.json``, ``eval.csv``, ``scenes.csv``, ``report.html``).
        dashboard: The Dask dashboard's URL, when there was one.
        workers: Workers of the cluster (0: the sequential loop in this process).
    """

    out: Path
    model: str
    outcomes: tuple[SceneOutcome, ...]
    skipped: tuple[str, ...] = ()
    overall: Any = None
    per_scene: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    files: tuple[Path, ...] = ()
    dashboard: str | None = None
    workers: int = 0

    @property
    def failed(self) -> list[SceneOutcome]:
        """The failed scenes."""
        return [o for o in self.outcomes if not o.ok]

    @property
    def done(self) -> list[SceneOutcome]:
        """The done scenes (skipped ones included)."""
        return [o for o in self.outcomes if o.ok]

    @property
    def pixels(self) -> int:
        """Pixels of the done scenes."""
        return sum(o.pixels for o in self.done)


def score_key(result: Any) -> str | None:
    """The figure the footprints are coloured by: the task's first headline figure the result has."""
    from rsviz.evaluation import task_spec

    if result is None:
        return None
    return next((k for k in task_spec(result.task).headline if isinstance(result.values.get(k), (int, float))), None)


def run_batch(
    model: str,
    scenes: Sequence[SceneSpec],
    out: str | Path,
    *,
    options: BatchOptions | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[str | None, int], None] | None = None,
    on_scene: Callable[[SceneOutcome], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> BatchSummary:
    """Predict and score scenes with one model, one task per scene, and pool the scores.

    Args:
        model: Registered model name.
        scenes: The scenes (:func:`rsviz.batch.resolve_scenes`).
        out: The batch folder (created with its parents); predictions, manifest and reports go there.
        options: Inference and evaluation options (defaults: the model card's).
        scheduler: None: a new ``LocalCluster`` sized to this machine; a scheduler address, a cluster object or a
            ``distributed.Client``: that cluster, unchanged (see :func:`rsviz.batch.cluster.connect`).
        workers: Workers of a new ``LocalCluster``; 0 runs the scenes one after another in this process, without
            Dask (the sequential loop).
        threads_per_worker: Tasks per worker at once (new ``LocalCluster`` only).
        progress: Called as ``progress(scenes finished, scenes)``, skipped scenes counted at the start.
        on_start: Called once the cluster is up, as ``on_start(dashboard URL or None, workers)``.
        on_scene: Called with each scene's outcome as it arrives (skipped ones first).
        cancel: Polled between scenes; True cancels the remaining tasks and raises :class:`BatchCancelled`.

    Returns:
        The :class:`BatchSummary`.

    Raises:
        UnknownNameError: Unknown model.
        OutputPathError: ``out`` is a file or cannot be written, or another batch is writing into it.
        ClusterError: The scheduler cannot be reached.
        BatchCancelled: ``cancel()`` returned True.
        BatchInputError: No scenes, LocalCluster sizes with a scheduler, or scored scenes of different tasks (they
            cannot be pooled).
    """
    from rsviz.batch.scenes import BatchInputError
    from rsviz.models.api import model_dir
    from rsviz.workspace.runs import weights_hash

    t0 = time.perf_counter()
    model_dir(model)  # an unknown name first (the message lists the valid ones)
    if not scenes:
        raise BatchInputError("no scenes to run")
    if scheduler is not None and (workers is not None or threads_per_worker is not None):
        raise BatchInputError("--workers and --threads-per-worker size a LocalCluster; leave them out with --scheduler")
    options = options or BatchOptions()
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"--out {out} is a file; give a folder for the batch's outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create the batch folder {out} ({exc.strerror}); choose another") from exc
    weights = weights_hash(model)
    job = BatchJob(model, weights, str(out), options)
    with folder_lock(out):
        remove_scratch(out)  # what tasks of an interrupted batch left behind
        manifest = Manifest(out, model, weights)
        results: dict[str, SceneOutcome] = {}
        todo: list[tuple[SceneSpec, str]] = []
        skipped: list[str] = []
        for s in scenes:
            try:
                h = scene_hash(model, weights, s, options)
            except RasterReadError as exc:
                results[s.name] = failed(s.name, "", exc)
                manifest.record(results[s.name])
                continue
            done = manifest.complete(s.name, h)
            if done is not None:
                results[s.name] = done
                skipped.append(s.name)
            else:
                todo.append((s, h))
        total, finished = len(scenes), len(results)
        for name in results:
            if on_scene is not None:
                on_scene(results[name])
        if progress is not None:
            progress(finished, total)

        def arrived(o: SceneOutcome) -> None:
            nonlocal finished
            results[o.name] = o
            manifest.record(o)
            finished += 1
            if on_scene is not None:
                on_scene(o)
            if progress is not None:
                progress(finished, total)

        dashboard, n_workers = None, 0
        if todo and workers == 0:
            _sequential(job, todo, arrived, on_start, cancel)
        elif todo:
            dashboard, n_workers = _on_dask(
                job, todo, arrived, scheduler, workers, threads_per_worker, on_start, cancel
            )
        remove_scratch(out)  # scratch of tasks whose worker died (their scene ran again elsewhere)
        outcomes = tuple(results[s.name] for s in scenes)
        overall, per_scene = _pool(outcomes)
        files = write_reports(out, model, outcomes, overall, per_scene, options)
    return BatchSummary(
        out, model, outcomes, tuple(skipped), overall, per_scene, time.perf_counter() - t0, files, dashboard, n_workers
    )


def _sequential(
    job: BatchJob,
    todo: Sequence[tuple[SceneSpec, str]],
    arrived: Callable[[SceneOutcome], None],
    on_start: Callable[[str | None, int], None] | None,
    cancel: Callable[[], bool] | None,
) -> None:
    from rsviz.models.api import load_model

    lm = load_model(job.model, job.options.device)
    if on_start is not None:
        on_start(None, 0)
    for spec, h in todo:
        if cancel is not None and cancel():
            raise BatchCancelled("batch cancelled; the scenes finished so far are kept (run it again to resume)")
        arrived(process_scene(spec, job, h, lm))


def _on_dask(
    job: BatchJob,
    todo: Sequence[tuple[SceneSpec, str]],
    arrived: Callable[[SceneOutcome], None],
    scheduler: Any,
    workers: int | None,
    threads_per_worker: int | None,
    on_start: Callable[[str | None, int], None] | None,
    cancel: Callable[[], bool] | None,
) -> tuple[str | None, int]:
    from distributed import as_completed

    from rsviz.batch.cluster import ModelPlugin, connect, dashboard_link, dask_task, gpu_workers

    client, owned, size = connect(scheduler, workers, threads_per_worker)
    try:
        client.register_plugin(ModelPlugin(job, size.torch_threads if size else None), name=job.plugin_name)
        link = dashboard_link(client)
        n_workers = len(client.scheduler_info().get("workers", {}))
        if on_start is not None:
            on_start(link, n_workers)
        resources = {"GPU": 1} if gpu_workers(client) else None
        futures = {
            client.submit(
                dask_task, spec, job, h, key=f"rsviz-scene-{spec.name}-{h}", pure=False, resources=resources
            ): (spec, h)
            for spec, h in todo
        }
        pending = as_completed(list(futures))
        for fut in pending:
            spec, h = futures[fut]
            if fut.status == "error":  # the task itself broke (e.g. KilledWorker after the allowed retries)
                exc = fut.exception()
                arrived(failed(spec.name, h, exc if isinstance(exc, BaseException) else RuntimeError(str(exc))))
            elif fut.status == "cancelled":
                arrived(failed(spec.name, h, RuntimeError("the task was cancelled on the cluster")))
            else:
                arrived(fut.result())
            fut.release()
            if cancel is not None and cancel():
                client.cancel(list(futures))
                raise BatchCancelled("batch cancelled; the scenes finished so far are kept (run it again to resume)")
        return link, n_workers
    finally:
        if owned is not None:
            owned.close()


def _pool(outcomes: Sequence[SceneOutcome]) -> tuple[Any, dict[str, Any]]:
    counts = {o.name: o.counts for o in outcomes if o.ok and o.counts is not None}
    if not counts:
        return None, {}
    per_scene = {k: c.result() for k, c in counts.items()}
    tasks = {c.task for c in counts.values()}
    if len(tasks) > 1:
        from rsviz.batch.scenes import BatchInputError

        raise BatchInputError(
            f"the scored scenes are of different tasks ({', '.join(sorted(t.value for t in tasks))}) and cannot be "
            "pooled; run them as separate batches"
        )
    return pool_counts(list(counts.values())), per_scene


# --------------------------------------------------------------------------- reports


def scene_rows(outcomes: Sequence[SceneOutcome], per_scene: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per scene: ``scene``, ``status``, the task's headline figures, ``pixels``, ``seconds``, ``note``
    (why a done scene is not scored, or a failed scene's error), ``scene_key``, ``run_key``, ``prediction``."""
    from rsviz.evaluation import task_spec

    keys: list[str] = []
    for r in per_scene.values():
        keys = [k for k in task_spec(r.task).headline if k in r.values]
        break
    rows = []
    for o in outcomes:
        r = per_scene.get(o.name)
        row: dict[str, Any] = {"scene": o.name, "status": o.status}
        for k in keys:
            row[k] = r.values.get(k) if r is not None else None
        row.update(
            pixels=o.pixels,
            seconds=round(o.seconds, 3),
            note=o.error or o.note or "",
            scene_key=o.scene_key or "",
            run_key=o.run_key or "",
            prediction=o.prediction or "",
        )
        rows.append(row)
    return rows


def footprints(outcomes: Sequence[SceneOutcome], per_scene: dict[str, Any], key: str | None) -> dict[str, Any]:
    """GeoJSON FeatureCollection (EPSG:4326) of the georeferenced done scenes' footprints, with properties
    ``scene``, ``status``, ``score`` (the figure ``key``, or None), ``scene_key`` and ``run_key``."""
    feats = []
    for o in outcomes:
        if o.bounds_4326 is None:
            continue
        w, s, e, n = o.bounds_4326
        r = per_scene.get(o.name)
        score = r.values.get(key) if (r is not None and key) else None
        feats.append(
            {
                "type": "Feature",
                "properties": {
                    "scene": o.name,
                    "status": o.status,
                    "score": score if isinstance(score, (int, float)) else None,
                    "scene_key": o.scene_key,
                    "run_key": o.run_key,
                },
                "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    from rsviz.evaluation.export import fmt_csv

    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: fmt_csv(v) for k, v in r.items()})
    return buf.getvalue()


def write_reports(
    out: Path,
    model: str,
    outcomes: Sequence[SceneOutcome],
    overall: Any,
    per_scene: dict[str, Any],
    options: BatchOptions,
) -> tuple[Path, ...]:
    """Write ``eval.json`` and ``eval.csv`` (when any scene is scored), ``scenes.csv`` and ``report.html``.

    Returns:
        The paths written.

    Raises:
        OutputPathError: The folder cannot be written.
    """
    from dataclasses import asdict

    from rsviz.evaluation import eval_csv, to_eval_json
    from rsviz.models.api import get_model_card
    from rsviz.report import html_report

    files = []
    meta = {
        "model": model,
        "scenes": len(outcomes),
        "scored": len(per_scene),
        "failed": {o.name: o.error for o in outcomes if not o.ok},
        "options": asdict(options),
    }
    if overall is not None:
        doc = to_eval_json(overall, per_scene, meta)
        write_atomic(out / "eval.json", json.dumps(doc, indent=2) + "\n")
        write_atomic(out / "eval.csv", eval_csv(overall))
        files += [out / "eval.json", out / "eval.csv"]
    rows = scene_rows(outcomes, per_scene)
    write_atomic(out / "scenes.csv", _csv_text(rows))
    files.append(out / "scenes.csv")
    import html as h

    head = list(rows[0]) if rows else []
    table = "<table><tr>" + "".join(f"<th>{h.escape(k)}</th>" for k in head if not k.endswith("_key")) + "</tr>"
    from rsviz.evaluation import fmt

    for r in rows:
        table += (
            "<tr>"
            + "".join(f"<td>{h.escape(fmt(v, 4))}</td>" for k, v in r.items() if not k.endswith("_key"))
            + "</tr>"
        )
    table += "</table>"
    done = sum(o.ok for o in outcomes)
    page = html_report(
        title=f"rsviz batch: {model}",
        scene_name=f"{len(outcomes)} scenes ({done} done, {len(outcomes) - done} failed, {len(per_scene)} scored)",
        extent_geojson=footprints(outcomes, per_scene, score_key(overall)),
        panels=[],
        metrics=overall,
        figures=None,
        card=get_model_card(model).to_dict(),
        options=asdict(options),
        sections=[("Per scene", table)],
    )
    write_atomic(out / "report.html", page)
    files.append(out / "report.html")
    return tuple(files)
