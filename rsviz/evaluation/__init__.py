"""Evaluation of predictions against ground truth: one evaluator for the app, the CLI and the model cards.

* :mod:`~rsviz.evaluation.tasks`: the task registry (:class:`TaskSpec` per :class:`~rsviz.types.Task`).
* :mod:`~rsviz.evaluation.measures`: metric families, measured per image and pooled per split.
* :mod:`~rsviz.evaluation.evaluate`: :func:`evaluate` (an image or extent), :func:`pool` (a split).
* :mod:`~rsviz.evaluation.results`: typed results (:class:`EvalResult`, ``to_json()``).
* :mod:`~rsviz.evaluation.export`: ``eval.json``, CSV, display names of figure keys.
* :mod:`~rsviz.evaluation.windows`: :func:`evaluate_windows`, the same figures over any extent, block by block.
* :mod:`~rsviz.evaluation.bootstrap`: paired bootstrap over images (model selection).
"""

from rsviz.evaluation.evaluate import evaluate, evaluate_patches, evaluate_sample, pool, target_spec
from rsviz.evaluation.export import (
    eval_csv,
    fmt,
    metric_label,
    multilabel_rows,
    per_class_rows,
    to_eval_json,
    write_eval,
)
from rsviz.evaluation.results import Artifacts, ClassRow, EvalResult
from rsviz.evaluation.tasks import EvalConfig, TaskSpec, register_task, task_spec, task_specs
from rsviz.evaluation.windows import evaluate_rasters, evaluate_windows
from rsviz.types import NODATA_CLASS

__all__ = [
    "NODATA_CLASS",
    "Artifacts",
    "ClassRow",
    "EvalConfig",
    "EvalResult",
    "TaskSpec",
    "eval_csv",
    "evaluate",
    "evaluate_patches",
    "evaluate_rasters",
    "evaluate_sample",
    "evaluate_windows",
    "fmt",
    "metric_label",
    "multilabel_rows",
    "per_class_rows",
    "pool",
    "register_task",
    "target_spec",
    "task_spec",
    "task_specs",
    "to_eval_json",
    "write_eval",
]
