"""Evaluation of predictions against ground truth: one evaluator for the app, the CLI and the model cards."""

from rsviz.evaluation.evaluate import (
    APLS_BUFFER_PX_NO_GSD,
    TASKS,
    eval_csv,
    evaluate,
    metric_label,
    per_class_rows,
    to_eval_json,
    write_eval,
)

__all__ = ["APLS_BUFFER_PX_NO_GSD", "TASKS", "eval_csv", "evaluate", "metric_label", "per_class_rows", "to_eval_json",
           "write_eval"]
