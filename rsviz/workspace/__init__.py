"""The analyst's workspace on disk: scenes read by windows, model runs as COGs, background jobs.

Everything here is plain Python (no widgets): the app's pages, the CLI and tests drive it alike.

* :mod:`rsviz.workspace.scene`: a :class:`Scene` is a raster on disk (the user's file, or a copy with
  overviews in the workspace) with optional ground-truth rasters on its grid, read by windows only.
* :mod:`rsviz.workspace.runs`: a run writes its heads to a COG under ``runs/<key>/``, keyed by model
  weights, scene, extent and options; reopening it, even after a restart, is instant.
* :mod:`rsviz.workspace.jobs`: runs execute in a background worker, so they go on when the user leaves
  the page, with their progress visible from any page.

The folder is :func:`rsviz.resources.workspace_dir` (``RSVIZ_WORKSPACE``).
"""

from rsviz.workspace.jobs import JOBS, Job, JobQueue, JobState
from rsviz.workspace.runs import RunOptions, RunResult, load_run, run_key, run_model, runs_of
from rsviz.workspace.scene import (
    MAX_READ_PX,
    Extent,
    Scene,
    check_extent_size,
    extent_area_m2,
    load_scene,
    open_path,
    open_sample,
    open_upload,
    resolve_extent,
)

__all__ = [
    "JOBS",
    "MAX_READ_PX",
    "Extent",
    "Job",
    "JobQueue",
    "JobState",
    "RunOptions",
    "RunResult",
    "Scene",
    "check_extent_size",
    "extent_area_m2",
    "load_run",
    "load_scene",
    "open_path",
    "open_sample",
    "open_upload",
    "resolve_extent",
    "run_key",
    "run_model",
    "runs_of",
]
