"""Typed evaluation results: what :func:`rsviz.evaluation.evaluate` and :func:`~rsviz.evaluation.pool` return.

One :class:`EvalResult` describes one image or extent, or a whole split (``images`` > 1): the
figures under their parameterised keys (``boundary_f1_2px``, ``object_f1_iou50``, ``apls_4m``...),
the per-class table, the confusion matrix, and the additive statistics each measure pools
(``stats``), so split figures are recomputed from counts, never averaged from rounded figures.
Objects that are not JSON (object matches, road graphs) travel in :class:`Artifacts` and are left
out of :meth:`EvalResult.to_json`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from rsviz.types import Task

#: A figure: a float, a count, or None where undefined (no positives, no images).
Value = float | int | None


def clean(x: Any) -> Any:
    """JSON-able copy: NaN / inf -> None, NumPy scalars and arrays -> Python, tuples -> lists."""
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, Mapping):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, np.generic):
        return clean(x.item())
    return x


@dataclass(frozen=True)
class ClassRow:
    """Pixel metrics of one class (from the confusion matrix; ``boundary_f1_2px`` a mean over images).

    Attributes:
        id: Class id (pixel value).
        name: Class name.
        iou: Intersection over union, in [0, 1] (NaN: class absent from both).
        precision: User's accuracy.
        recall: Producer's accuracy.
        f1: Pixel F1 (Dice).
        support: Ground-truth pixels of the class.
        boundary_f1: BF score at the evaluation's tolerance, or None where not measured.
    """

    id: int
    name: str
    iou: float
    precision: float
    recall: float
    f1: float
    support: int
    boundary_f1: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (NaN -> null)."""
        return clean(
            {
                "id": self.id,
                "name": self.name,
                "iou": self.iou,
                "precision": self.precision,
                "recall": self.recall,
                "f1": self.f1,
                "support": self.support,
                "boundary_f1": self.boundary_f1,
            }
        )


@dataclass(frozen=True)
class Artifacts:
    """What an evaluation can show but not serialise (kept only when asked for).

    Attributes:
        match: Object matching of a building evaluation (:class:`~rsviz.metrics.objects.ObjectMatch`), or None.
        graphs: ``(ground truth, proposal)`` road graphs of an APLS evaluation (pixel coordinates), or None.
    """

    match: Any = None
    graphs: Any = None


@dataclass(frozen=True)
class EvalResult:
    """Evaluation of one image / extent, or of a split pooled by :func:`rsviz.evaluation.pool`.

    Attributes:
        task: The task evaluated.
        values: Figure key -> value; keys carry their parameters (``boundary_f1_2px``, ``apls_4m``).
        params: The parameters the figures were measured with (``boundary_tolerance_px``, ``apls_buffers_px``...).
        per_class: Per-class pixel metrics (empty for height and scene tasks).
        confusion: ``(K, K)`` confusion matrix (rows = ground truth), or None.
        class_names: ``K`` names of the confusion matrix rows.
        images: Images pooled (1 for a single image or extent).
        stats: Poolable statistics by measure name (sums, or per-image lists for image means).
        artifacts: Non-JSON objects (not compared, not serialised).
        config: The :class:`~rsviz.evaluation.tasks.EvalConfig` measured with (pooling rebuilds the measures
            from it).
    """

    task: Task
    values: Mapping[str, Value]
    params: Mapping[str, Any] = field(default_factory=dict)
    per_class: tuple[ClassRow, ...] = ()
    confusion: tuple[tuple[int, ...], ...] | None = None
    class_names: tuple[str, ...] = ()
    images: int = 1
    stats: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    artifacts: Artifacts = field(default_factory=Artifacts, repr=False, compare=False)
    config: Any = field(default=None, repr=False, compare=False)

    def __getitem__(self, key: str) -> Value:
        """``result["iou"]``: a figure by key.

        Raises:
            KeyError: Not a figure of this result; the message lists the ones it has.
        """
        try:
            return self.values[key]
        except KeyError:
            raise KeyError(
                f"{key!r} is not a figure of this {self.task.value} result; it has: {', '.join(self.values)}"
            ) from None

    def get(self, key: str, default: Value = None) -> Value:
        """A figure by key, or ``default``."""
        return self.values.get(key, default)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict: task, images, values, params, per_class, confusion_matrix, class_names."""
        return clean(
            {
                "task": self.task.value,
                "images": self.images,
                "values": dict(self.values),
                "params": dict(self.params),
                "per_class": [r.to_json() for r in self.per_class],
                "confusion_matrix": [list(r) for r in self.confusion] if self.confusion is not None else None,
                "class_names": list(self.class_names),
            }
        )
