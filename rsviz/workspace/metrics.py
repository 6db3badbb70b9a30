"""Metrics of a workspace run inside its extent, against the scene's ground truth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rsviz.workspace.runs import RunResult
from rsviz.workspace.scene import Scene


def evaluate_run(
    scene: Scene,
    run: RunResult,
    card: Any,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Any:
    """Metrics of a run inside its extent (an :class:`~rsviz.evaluation.EvalResult`, object matching and road
    graphs kept for display), or None when the scene has no ground truth this model fits.

    The prediction is read from the run's COG and the ground truth from the scene's files, for the run's
    window only.

    Raises:
        ExtentError: The extent is larger than one read holds (:data:`rsviz.workspace.scene.MAX_READ_PX`).
    """
    from rsviz.evaluation import evaluate_sample

    sample = scene.read(run.extent.window)
    return evaluate_sample(card, run.prediction.heads, sample, with_artifacts=True)
