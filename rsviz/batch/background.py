"""A batch in a background thread, with per-scene progress any page can poll (the app's Batch page).

:func:`start_batch` runs :func:`rsviz.batch.run_batch` in a daemon thread and returns a :class:`BatchRun`
that it updates as scenes finish: each scene's state (``pending``, ``done``, ``failed``; ``skipped`` when
the manifest had it), the dashboard link, and the :class:`~rsviz.batch.BatchSummary` at the end. Runs are
kept by id in this process (:func:`get_batch`), so a page reloaded in the same server finds its batch.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Sequence

from rsviz.batch.runner import BatchCancelled, BatchSummary, run_batch
from rsviz.batch.scenes import SceneSpec
from rsviz.batch.task import BatchOptions, SceneOutcome
from rsviz.errors import RUN_FAILURES, RsvizError, failure_message

log = logging.getLogger(__name__)


class BatchState(str, Enum):
    """Life cycle of a :class:`BatchRun`."""

    STARTING = "starting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class BatchRun:
    """A batch running (or run) in the background.

    Attributes:
        id: Opaque id (12 hex).
        model: Model name.
        out: The batch folder.
        names: The scenes' names, in order.
        state: :class:`BatchState`.
        scenes: Scene name -> ``pending``, ``done``, ``skipped`` or ``failed``.
        outcomes: Scene name -> its :class:`~rsviz.batch.SceneOutcome`, as they arrive.
        dashboard: The Dask dashboard URL, when there is one.
        workers: Dask workers (0: in this process).
        summary: The :class:`~rsviz.batch.BatchSummary` once done.
        error: Why the batch as a whole failed (what to fix), else None.
        started: UNIX time it was started.
    """

    id: str
    model: str
    out: Path
    names: tuple[str, ...]
    state: BatchState = BatchState.STARTING
    scenes: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, SceneOutcome] = field(default_factory=dict)
    dashboard: str | None = None
    workers: int = 0
    summary: BatchSummary | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """True once done, failed or cancelled."""
        return self.state in (BatchState.DONE, BatchState.FAILED, BatchState.CANCELLED)

    @property
    def done_count(self) -> int:
        """Scenes finished (done, skipped or failed)."""
        return sum(v != "pending" for v in self.scenes.values())

    @property
    def fraction(self) -> float:
        """Share of scenes finished, 0-1."""
        return self.done_count / len(self.names) if self.names else 1.0

    def cancel(self) -> None:
        """Stop after the scenes in flight (they are kept; a rerun resumes)."""
        self._cancel.set()

    def wait(self, timeout: float = 600.0) -> BatchRun:
        """Block until finished (tests and scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self


_RUNS: dict[str, BatchRun] = {}
_LOCK = threading.Lock()


def get_batch(batch_id: str) -> BatchRun | None:
    """The batch of this id started in this process, if any."""
    with _LOCK:
        return _RUNS.get(batch_id)


def start_batch(
    model: str,
    scenes: Sequence[SceneSpec],
    out: str | Path,
    *,
    options: BatchOptions | None = None,
    scheduler: Any = None,
    workers: int | None = None,
) -> BatchRun:
    """Start :func:`rsviz.batch.run_batch` in a background thread.

    Args:
        model: Model name.
        scenes: The scenes.
        out: The batch folder.
        options: See :func:`~rsviz.batch.run_batch`.
        scheduler: See :func:`~rsviz.batch.run_batch`.
        workers: See :func:`~rsviz.batch.run_batch` (0: in this process).

    Returns:
        The :class:`BatchRun`, updated as the batch goes.
    """
    names = tuple(s.name for s in scenes)
    run = BatchRun(uuid.uuid4().hex[:12], model, Path(out), names, scenes={n: "pending" for n in names})

    def on_start(link: str | None, n: int) -> None:
        run.dashboard, run.workers, run.state = link, n, BatchState.RUNNING

    def on_scene(o: SceneOutcome) -> None:
        run.outcomes[o.name] = o
        run.scenes[o.name] = "failed" if not o.ok else ("done" if run.state is BatchState.RUNNING else "skipped")

    def body() -> None:
        try:
            run.summary = run_batch(
                model,
                scenes,
                out,
                options=options,
                scheduler=scheduler,
                workers=workers,
                on_start=on_start,
                on_scene=on_scene,
                cancel=run._cancel.is_set,
            )
            for n in run.summary.skipped:
                run.scenes[n] = "skipped"
            run.state = BatchState.DONE
        except BatchCancelled:
            run.state = BatchState.CANCELLED
        except RUN_FAILURES as exc:
            log.warning("batch %s of %s failed: %s", run.id, model, exc, exc_info=not isinstance(exc, RsvizError))
            run.error = failure_message(exc)
            run.state = BatchState.FAILED
        finally:
            if not run.finished:  # a bug of ours: the batch must not look like it runs forever
                run.error = "the batch stopped on an internal error; the server log has the details"
                run.state = BatchState.FAILED

    run._thread = threading.Thread(target=body, name=f"rsviz-batch-{run.id}", daemon=True)
    with _LOCK:
        _RUNS[run.id] = run
    run._thread.start()
    return run
