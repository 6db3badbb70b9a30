"""Background runs: a model run keeps going when the user leaves the page that started it.

:class:`JobQueue` executes :func:`rsviz.workspace.runs.run_model` calls in one worker thread (models run
one at a time: the two to sixteen cores of an analyst's machine are saturated by one run, and models are
never used by two threads at once, so a first use that traces a model cannot race a warm run). A
:class:`Job` carries its progress, state and result or error message; any page of any session polls it
by key. Identical requests (same run key) share one job.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

from rsviz.errors import RUN_FAILURES, RsvizError, failure_message
from rsviz.workspace.runs import RunOptions, RunResult, run_key, run_model
from rsviz.workspace.scene import Extent, Scene

log = logging.getLogger(__name__)


class JobState(StrEnum):
    """Life cycle of a :class:`Job`."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class Job:
    """One requested run.

    Attributes:
        key: The run key (:func:`~rsviz.workspace.runs.run_key`).
        model: Model name.
        scene_name: Display name of the scene.
        state: :class:`JobState`.
        done: Tiles finished.
        total: Tiles in all (0 until the run starts).
        error: The message of a failed run (what to fix), else None.
        result: The :class:`RunResult` when done.
        from_workspace: True when the run was already on disk.
        submitted: UNIX time of the request.
        started: ``time.perf_counter()`` when it started running, or None.
    """

    key: str
    model: str
    scene_name: str
    state: JobState = JobState.QUEUED
    done: int = 0
    total: int = 0
    error: str | None = None
    result: RunResult | None = None
    from_workspace: bool = False
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        """True once done, failed or cancelled."""
        return self.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)

    @property
    def fraction(self) -> float:
        """Share of tiles done, 0-1."""
        return 1.0 if self.state is JobState.DONE else (self.done / self.total if self.total else 0.0)

    def eta_s(self) -> float | None:
        """Seconds left at the current rate, or None before the first tile."""
        if self.started is None or not self.done or not self.total:
            return None
        el = time.perf_counter() - self.started
        return el / self.done * (self.total - self.done)

    def cancel(self) -> None:
        """Ask the run to stop at the next batch (a queued run is cancelled at once)."""
        self._cancel.set()
        if self.state is JobState.QUEUED:
            self.state = JobState.CANCELLED


class JobQueue:
    """Runs jobs in background worker threads (one by default, see the module docstring).

    Args:
        workers: Worker threads.
    """

    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rsviz-run")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, model: str, scene: Scene, extent: Extent, options: RunOptions) -> Job:
        """Queue a run (or return the job already queued or running for the same key; a done one comes back
        as a new finished job marked ``from_workspace``).

        A failed or cancelled job of the same key is replaced by a new one.

        Raises:
            UnknownNameError: Unknown model.
        """
        key = run_key(model, scene.key, extent, options)
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state is JobState.DONE and (job.result is None or not job.result.path.is_file()):
                job = None  # its files were removed from the workspace: run it again
            if job is not None and job._cancel.is_set() and not job.finished:
                job = None  # cancelled but not stopped yet: a new request is a new run
            if job is not None and job.state is JobState.DONE:  # asked again: the stored run, at once
                again = Job(key, model, scene.name, JobState.DONE, job.done, job.total, None, job.result, True)
                self._jobs[key] = again
                return again
            if job is not None and job.state not in (JobState.FAILED, JobState.CANCELLED):
                return job
            job = Job(key, model, scene.name)
            self._jobs[key] = job
        self._pool.submit(self._run, job, model, scene, extent, options)
        return job

    def _run(self, job: Job, model: str, scene: Scene, extent: Extent, options: RunOptions) -> None:
        from rsviz.inference import InferenceCancelled

        if job._cancel.is_set():
            job.state = JobState.CANCELLED
            return
        job.state, job.started = JobState.RUNNING, time.perf_counter()

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            job.result, job.from_workspace = run_model(model, scene, extent, options, progress, job._cancel.is_set)
            job.state = JobState.DONE
        except InferenceCancelled:
            job.state = JobState.CANCELLED
        except RUN_FAILURES as exc:
            log.warning("run %s of %s failed: %s", job.key, model, exc, exc_info=not isinstance(exc, RsvizError))
            job.error = failure_message(exc)
            job.state = JobState.FAILED
        finally:
            if not job.finished:  # a bug of ours: the job must not look like it runs forever
                job.error = "the run stopped on an internal error; the server log has the details"
                job.state = JobState.FAILED

    def get(self, key: str) -> Job | None:
        """The job of a run key, if one was submitted in this process."""
        with self._lock:
            return self._jobs.get(key)

    def active(self) -> list[Job]:
        """Queued and running jobs, oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if not j.finished]

    def wait(self, key: str, timeout: float = 600.0) -> Job | None:
        """Block until a job has finished (tests and scripts); returns it."""
        t0 = time.monotonic()
        job = self.get(key)
        while job is not None and not job.finished and time.monotonic() - t0 < timeout:
            time.sleep(0.05)
        return job


#: The process-wide queue the app uses.
JOBS = JobQueue()

__all__ = ["JOBS", "Job", "JobQueue", "JobState"]
