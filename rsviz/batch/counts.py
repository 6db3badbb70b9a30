"""Evaluation counts: what a batch task sends back instead of metrics, and how the client pools them.

A scene's :class:`~rsviz.evaluation.EvalResult` carries, beside its figures, the additive statistics
every measure pools (:attr:`~rsviz.evaluation.EvalResult.stats`: the confusion matrix, object TP / FP / FN,
boundary and relaxed-F1 counts, height error sums, per-image APLS values) and the
:class:`~rsviz.evaluation.EvalConfig` they were measured with. :class:`SceneCounts` is exactly that, in
JSON (it goes into the batch manifest, so a rerun pools skipped scenes without reading a pixel). The
client rebuilds one result per scene and the batch's ``overall`` with :func:`rsviz.evaluation.pool`, so
the figures are recomputed from summed counts, never averaged from per-scene figures, and equal those of
the same scenes evaluated one after another.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from rsviz.evaluation import EvalConfig, EvalResult, pool
from rsviz.types import ClassInfo, Task


def _encode(x: Any) -> Any:
    """JSON-able copy of statistics: arrays tagged (so they are summed again, not concatenated), NaN -> None."""
    if isinstance(x, np.ndarray):
        return {"__ndarray__": _encode(x.tolist()), "dtype": str(x.dtype)}
    if isinstance(x, Mapping):
        return {str(k): _encode(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_encode(v) for v in x]
    if isinstance(x, np.generic):
        return _encode(x.item())
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    return x


def _decode(x: Any) -> Any:
    """Inverse of :func:`_encode` (None in per-image lists stays None: the measures read it as NaN)."""
    if isinstance(x, Mapping):
        if "__ndarray__" in x:
            return np.asarray(x["__ndarray__"], dtype=x.get("dtype", "int64"))
        return {k: _decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decode(v) for v in x]
    return x


def _config_to_json(c: EvalConfig) -> dict[str, Any]:
    d = asdict(c)
    d["classes"] = [[ci.id, ci.name, list(ci.color)] for ci in c.classes]
    d["apls_buffers_px"] = list(c.apls_buffers_px)
    return d


def _config_from_json(d: Mapping[str, Any]) -> EvalConfig:
    kw = dict(d)
    kw["classes"] = tuple(
        ClassInfo(int(i), str(n), (int(col[0]), int(col[1]), int(col[2]))) for i, n, col in d["classes"]
    )
    kw["apls_buffers_px"] = tuple(float(b) for b in d["apls_buffers_px"])
    return EvalConfig(**kw)


@dataclass(frozen=True)
class SceneCounts:
    """The poolable statistics of one scene's evaluation (no figures).

    Attributes:
        task: The task scored (``buildings``, ``roads``, ``landcover``, ``height``).
        stats: Measure name -> statistics (:attr:`rsviz.evaluation.EvalResult.stats`); ``confusion`` is a
            ``(K, K)`` int64 array (rows = ground truth), counts are ints, per-image values lists of floats.
        params: Parameters of the figures (``gsd_m``, ``boundary_tolerance_px``...).
        config: The :class:`~rsviz.evaluation.EvalConfig` measured with.
    """

    task: Task
    stats: Mapping[str, Mapping[str, Any]]
    params: Mapping[str, Any] = field(default_factory=dict)
    config: EvalConfig = field(default_factory=EvalConfig)

    @classmethod
    def of(cls, result: EvalResult) -> SceneCounts:
        """The counts of an evaluation result (its figures are dropped)."""
        return cls(result.task, dict(result.stats), dict(result.params), result.config)

    def result(self) -> EvalResult:
        """This scene's :class:`~rsviz.evaluation.EvalResult`, its figures computed from the counts."""
        return pool([self._bare()])

    def _bare(self) -> EvalResult:
        return EvalResult(self.task, {}, self.params, stats=self.stats, config=self.config)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (the manifest's ``counts``)."""
        return {
            "task": self.task.value,
            "stats": _encode(self.stats),
            "params": _encode(self.params),
            "config": _config_to_json(self.config),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SceneCounts:
        """Inverse of :meth:`to_json`.

        Raises:
            KeyError, ValueError, TypeError: Not a :meth:`to_json` dict.
        """
        return cls(Task.parse(d["task"]), _decode(d["stats"]), _decode(d["params"]), _config_from_json(d["config"]))


def pool_counts(counts: Sequence[SceneCounts]) -> EvalResult:
    """The batch's ``overall``: every scene's counts summed (per-image figures averaged over scenes), as
    :func:`rsviz.evaluation.pool` of the scenes' results.

    Raises:
        ValueError: No counts, or counts of different tasks or parameters.
    """
    return pool([c._bare() for c in counts])
