"""The task registry: one :class:`TaskSpec` per :class:`~rsviz.types.Task`, all a task needs in one place.

A spec names the ground truth it is scored against (a key of ``Sample.targets``), the prediction
output compared with it, which models it fits, the measures it is scored with
(:mod:`rsviz.evaluation.measures`), its headline figures, its default legend and how its
predictions are exported as vectors. The evaluator, the CLI, the model cards and the app read the
spec; none of them switches on task names. A new task is one spec (in its own module, or here)
and one :func:`register_task` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import rsviz.evaluation.measures as m
from rsviz.errors import unknown_name
from rsviz.types import ClassInfo, HeadKind, Task


@dataclass(frozen=True)
class EvalConfig:
    """Parameters of an evaluation, shared by every task's measures.

    Attributes:
        classes: Class legend of the prediction (multiclass ids = channels).
        ignore_index: Ground-truth id left out of pixel metrics, or None.
        gsd: Metres per pixel of the image, or None (APLS then snaps at pixel buffers only).
        boundary_tolerance_px: BF-score tolerance, pixels.
        iou_threshold: Object matching IoU.
        min_area_px: Smallest object counted, pixels.
        rho_px: Relaxed road metric slack, pixels.
        apls_buffers_px: APLS snapping buffers in pixels (the 4 m buffer is added when ``gsd`` is known).
    """

    classes: tuple[ClassInfo, ...] = ()
    ignore_index: int | None = None
    gsd: float | None = None
    boundary_tolerance_px: float = 2.0
    iou_threshold: float = 0.5
    min_area_px: float = 10.0
    rho_px: float = 3.0
    apls_buffers_px: tuple[float, ...] = (4.0, 8.0)


@dataclass(frozen=True)
class TaskSpec:
    """Everything the evaluator, the exports and the app need to know about a task.

    Attributes:
        task: The task.
        target: ``Sample.targets`` key of its ground truth (``buildings``, ``roads``, ``classes``, ``height``).
        prediction: Prediction output compared with it (``classes`` class ids, ``height``, ``labels``).
        head: Head of a model that produces the prediction (``seg``, ``height``, ``labels``).
        head_kinds: Kinds of that head the task accepts.
        measures: ``config -> measures`` the task is scored with.
        headline: Figure keys shown first (a key's ``{...}`` parts are filled from the measures' keys).
        default_classes: Legend when a model has none (binary tasks: background, positive).
        vectors: How a prediction is exported as polygons: ``instances`` (one per object, the card's
            post-processing), ``classes`` (one per connected region of each class) or None.
        dense: Per-pixel (True) or per image (False).
    """

    task: Task
    target: str
    prediction: str
    head: str
    head_kinds: tuple[HeadKind, ...]
    measures: Callable[[EvalConfig], Sequence[m.Measure]]
    headline: tuple[str, ...]
    default_classes: tuple[ClassInfo, ...] = ()
    vectors: str | None = None
    dense: bool = True

    @property
    def binary(self) -> bool:
        """True for tasks scored on a positive class (buildings, roads)."""
        return self.head_kinds == (HeadKind.BINARY,)

    def fits(self, card: Any) -> bool:
        """Whether a model card's heads produce this task's prediction."""
        h = card.heads.get(self.head)
        return (
            h is not None
            and HeadKind(h.kind) in self.head_kinds
            and (not self.binary or Task.parse(card.task) is self.task)
        )

    def classes_for(self, classes: Sequence[ClassInfo] | None) -> tuple[ClassInfo, ...]:
        """The legend to score with: ``classes``, or the task's default."""
        return tuple(classes) if classes else self.default_classes


_REGISTRY: dict[Task, TaskSpec] = {}


def register_task(spec: TaskSpec, *, replace: bool = False) -> TaskSpec:
    """Add a task to the registry.

    Raises:
        ValueError: The task is registered already and ``replace`` is False.
    """
    if spec.task in _REGISTRY and not replace:
        raise ValueError(f"task {spec.task.value!r} is registered already; pass replace=True to replace it")
    _REGISTRY[spec.task] = spec
    return spec


def unregister_task(task: Task) -> None:
    """Remove a task (tests that register a toy task clean up with this)."""
    _REGISTRY.pop(task, None)


def task_spec(task: Task | str) -> TaskSpec:
    """The spec of a task.

    Raises:
        UnknownNameError: No such task; the message lists the registered ones.
    """
    try:
        t = Task.parse(task) if not isinstance(task, Task) else task
        return _REGISTRY[t]
    except KeyError:
        raise unknown_name("task", str(task), [t.value for t in _REGISTRY]) from None


def task_specs() -> list[TaskSpec]:
    """Every registered spec, in registration order."""
    return list(_REGISTRY.values())


def specs_for_card(card: Any) -> list[TaskSpec]:
    """The specs whose prediction a model card produces, the card's own task first."""
    own = [s for s in _REGISTRY.values() if s.task.value == str(card.task) and s.fits(card)]
    return own + [s for s in _REGISTRY.values() if s not in own and s.fits(card)]


# --------------------------------------------------------------------------- built-in tasks


def _binary_measures(cfg: EvalConfig, names: Sequence[str]) -> list[m.Measure]:
    return [m.PixelMetrics(2, list(names), binary=True), m.BoundaryF1(cfg.boundary_tolerance_px, binary=True)]


def _buildings(cfg: EvalConfig) -> list[m.Measure]:
    names = [c.name for c in (cfg.classes or BUILDINGS.default_classes)[:2]]
    return [
        *_binary_measures(cfg, names),
        m.ObjectF1(cfg.iou_threshold, cfg.min_area_px),
        m.EdgeHeadBoundaryF1(cfg.boundary_tolerance_px),
        m.Reconstruction(),
    ]


def _roads(cfg: EvalConfig) -> list[m.Measure]:
    names = [c.name for c in (cfg.classes or ROADS.default_classes)[:2]]
    return [*_binary_measures(cfg, names), m.RelaxedF1(cfg.rho_px), m.APLS(cfg.gsd, cfg.apls_buffers_px)]


def _landcover(cfg: EvalConfig) -> list[m.Measure]:
    n = max([c.id for c in cfg.classes], default=-1) + 1
    names = [str(i) for i in range(n)]
    for c in cfg.classes:
        names[c.id] = c.name
    ids = [c.id for c in cfg.classes if c.id != cfg.ignore_index]
    return [
        m.PixelMetrics(n, names, binary=False, ignore_index=cfg.ignore_index),
        m.BoundaryF1(cfg.boundary_tolerance_px, binary=False, class_ids=ids),
        m.Reconstruction(),
    ]


def _height(cfg: EvalConfig) -> list[m.Measure]:
    return [m.HeightErrors()]


def _scene(cfg: EvalConfig) -> list[m.Measure]:
    return [m.MultiLabel([c.name for c in cfg.classes])]


BUILDINGS = register_task(
    TaskSpec(
        Task.BUILDINGS,
        target="buildings",
        prediction="classes",
        head="seg",
        head_kinds=(HeadKind.BINARY,),
        measures=_buildings,
        headline=("iou", "f1", "boundary_f1_2px", "object_f1_iou50"),
        default_classes=(ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "buildings", (230, 25, 75))),
        vectors="instances",
    )
)
ROADS = register_task(
    TaskSpec(
        Task.ROADS,
        target="roads",
        prediction="classes",
        head="seg",
        head_kinds=(HeadKind.BINARY,),
        measures=_roads,
        headline=("iou", "relaxed_f1_3px", "apls_4m", "apls_4px"),
        default_classes=(ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "roads", (255, 225, 25))),
        vectors="classes",
    )
)
LANDCOVER = register_task(
    TaskSpec(
        Task.LANDCOVER,
        target="classes",
        prediction="classes",
        head="seg",
        head_kinds=(HeadKind.MULTICLASS,),
        measures=_landcover,
        headline=("miou", "overall_accuracy", "kappa", "mean_f1"),
        vectors="classes",
    )
)
HEIGHT = register_task(
    TaskSpec(
        Task.HEIGHT,
        target="height",
        prediction="height",
        head="height",
        head_kinds=(HeadKind.REGRESSION,),
        measures=_height,
        headline=("rmse", "mae", "bias", "delta_1.25"),
    )
)
SCENE = register_task(
    TaskSpec(
        Task.SCENE,
        target="labels19",
        prediction="labels",
        head="labels",
        head_kinds=(HeadKind.MULTILABEL,),
        measures=_scene,
        headline=("micro_f1", "macro_f1", "map"),
        dense=False,
    )
)
