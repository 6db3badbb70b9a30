"""Many scenes on a distributed engine: ``rsviz batch`` on dask.distributed, from a laptop to a cluster unchanged.

* :mod:`~rsviz.batch.scenes`: SCENES arguments (files, folders, globs, catalog datasets) to :class:`SceneSpec` s,
  with the ground-truth pairing rule;
* :mod:`~rsviz.batch.task`: one scene's task (:func:`process_scene`: predict into a COG, score, return counts);
* :mod:`~rsviz.batch.counts`: :class:`SceneCounts`, the poolable counts a task returns, and their pooling;
* :mod:`~rsviz.batch.manifest`: the batch folder's manifest (resuming) and lock;
* :mod:`~rsviz.batch.cluster`: the Dask client (``LocalCluster`` or a given cluster) and the worker plugin;
* :mod:`~rsviz.batch.runner`: :func:`run_batch` and the reports (``eval.json``, CSVs, HTML).

Typical use::

    from rsviz.batch import resolve_scenes, run_batch
    summary = run_batch("building-seg", resolve_scenes(["chips/*.tif"], gt="labels.geojson"), "out/")
    summary.overall["iou"], summary.failed
"""

from rsviz.batch.counts import SceneCounts, pool_counts
from rsviz.batch.manifest import MANIFEST, Manifest, scene_hash
from rsviz.batch.runner import BatchCancelled, BatchSummary, footprints, run_batch, scene_rows, score_key
from rsviz.batch.scenes import BatchInputError, SceneSpec, pair_ground_truth, resolve_scenes
from rsviz.batch.task import BatchJob, BatchOptions, SceneOutcome, process_scene

__all__ = [
    "MANIFEST",
    "BatchCancelled",
    "BatchInputError",
    "BatchJob",
    "BatchOptions",
    "BatchSummary",
    "Manifest",
    "SceneCounts",
    "SceneOutcome",
    "SceneSpec",
    "footprints",
    "pair_ground_truth",
    "pool_counts",
    "process_scene",
    "resolve_scenes",
    "run_batch",
    "scene_hash",
    "scene_rows",
    "score_key",
]
