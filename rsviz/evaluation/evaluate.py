"""The one evaluator: an image or extent with :func:`evaluate`, a split with :func:`pool`.

The app's Metrics page, ``rsviz evaluate``, the batch exports and every model card's figures go
through these two functions, so a key means the same everywhere. Keys carry their parameters
(``boundary_f1_2px``, ``object_f1_iou50``, ``relaxed_f1_3px``, ``apls_4px``, ``apls_4m``); which
measures a task uses is its :class:`~rsviz.evaluation.tasks.TaskSpec`'s business.

Typical use::

    from rsviz.evaluation import evaluate_sample, pool
    results = [evaluate_sample(card, predict(lm, s.raster_data()).heads, s) for s in samples]
    split = pool(results)            # counts summed, per-image figures averaged
    split["object_f1_iou50"], split.to_json()
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from rsviz.evaluation.measures import BoundaryF1, EvalInput, Measure, PixelMetrics
from rsviz.evaluation.results import Artifacts, ClassRow, EvalResult
from rsviz.evaluation.tasks import EvalConfig, TaskSpec, specs_for_card, task_spec
from rsviz.types import NODATA_CLASS, ClassInfo, Task


def _result(
    spec: TaskSpec,
    ms: Sequence[Measure],
    stats: dict[str, dict[str, Any]],
    params: dict[str, Any],
    images: int,
    artifacts: Artifacts,
    cfg: EvalConfig,
) -> EvalResult:
    values: dict[str, Any] = {}
    rows: tuple[ClassRow, ...] = ()
    confusion: tuple[tuple[int, ...], ...] | None = None
    names: tuple[str, ...] = ()
    pixel = next((x for x in ms if isinstance(x, PixelMetrics) and x.name in stats), None)
    boundary = next((x for x in ms if isinstance(x, BoundaryF1) and x.name in stats), None)
    for x in ms:
        if x.name in stats:
            values.update(x.values(stats[x.name]))
    if pixel is not None:
        bf = boundary.per_class(stats[boundary.name]) if boundary is not None else None
        rows = pixel.rows(stats[pixel.name], bf)
        confusion = tuple(tuple(int(v) for v in r) for r in np.asarray(stats[pixel.name]["confusion"]))
        names = tuple(pixel.class_names)
    return EvalResult(spec.task, values, params, rows, confusion, names, images, stats, artifacts, cfg)


def _config(
    spec: TaskSpec,
    classes: Sequence[ClassInfo] | None,
    ignore_index: int | None,
    gsd: float | None,
    kw: Mapping[str, Any],
) -> EvalConfig:
    return EvalConfig(classes=spec.classes_for(classes), ignore_index=ignore_index, gsd=gsd or None, **kw)


def check_params(params: Mapping[str, Any]) -> None:
    """Refuse keyword parameters that are not fields of :class:`~rsviz.evaluation.tasks.EvalConfig`.

    Raises:
        ValueError: An unknown parameter; the message lists the valid ones.
    """
    bad = sorted(set(params) - set(EvalConfig.__dataclass_fields__) - {"classes", "ignore_index", "gsd"})
    if bad:
        raise ValueError(
            f"unknown evaluation parameter(s) {bad}; valid: "
            f"{', '.join(k for k in EvalConfig.__dataclass_fields__ if k not in ('classes', 'ignore_index', 'gsd'))}"
        )


def evaluate(
    pred: np.ndarray,
    gt: np.ndarray,
    task: Task | str,
    *,
    classes: Sequence[ClassInfo] | None = None,
    valid: np.ndarray | None = None,
    ignore_index: int | None = None,
    gsd: float | None = None,
    heads: Mapping[str, np.ndarray] | None = None,
    image: np.ndarray | None = None,
    gt_instances: np.ndarray | None = None,
    postprocess: Any = None,
    with_artifacts: bool = False,
    **params: Any,
) -> EvalResult:
    """Evaluate one prediction (an image or an extent) against its ground truth.

    Args:
        pred: ``(H, W)`` class ids (255 = nodata; binary tasks: 1 = positive) or heights (height task);
            ``(L,)`` label probabilities (scene task).
        gt: Ground truth on the same grid: ``(H, W)`` class ids / positive > 0 / heights, or ``(L,)`` {0, 1}.
        task: A registered task (:class:`~rsviz.types.Task` or its name; ``segmentation`` = ``landcover``).
        classes: Class legend (multiclass ids = channels); binary tasks default to background / positive.
        valid: ``(H, W)`` bool pixels that count (nodata excluded); ``pred == 255`` is excluded too.
        ignore_index: Ground-truth id left out of pixel metrics.
        gsd: Metres per pixel; when given, APLS also snaps at the SpaceNet definition's 4 m (``apls_4m``).
        heads: Prediction heads (``probs`` ``(C, H, W)``, ``edge``, ``recon``): building instances and the
            APLS proposal graph are extracted from the probabilities with ``postprocess``, the edge and
            reconstruction heads are scored when present.
        image: ``(bands, H, W)`` input imagery, for the reconstruction head.
        gt_instances: ``(H, W)`` int ground-truth instance ids (buildings: one per footprint).
        postprocess: The card's :class:`~rsviz.models.card.PostprocessSpec` (None: the defaults).
        with_artifacts: Keep the object matching (buildings) and road graphs (roads) in ``result.artifacts``.
        **params: Fields of :class:`~rsviz.evaluation.tasks.EvalConfig` (``boundary_tolerance_px``,
            ``iou_threshold``, ``min_area_px``, ``rho_px``, ``apls_buffers_px``).

    Returns:
        :class:`~rsviz.evaluation.results.EvalResult` with ``images == 1``.

    Raises:
        UnknownNameError: Unknown task.
        ValueError: ``pred`` and ``gt`` differ in shape, or an unknown parameter.
    """
    spec = task_spec(task)
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape; put both on one grid")
    check_params(params)
    v = np.ones(gt.shape, bool) if valid is None else np.asarray(valid, bool).copy()
    if spec.dense and spec.prediction == "classes":
        v &= pred != NODATA_CLASS
        if not spec.binary:  # every id in the data gets a row, named ones by the legend
            n = max(int(gt[v].max(initial=0)), int(pred[v].max(initial=0)), *(c.id for c in classes or ())) + 1
            named = {c.id: c for c in classes or ()}
            classes = [named.get(i, ClassInfo(i, str(i), (128, 128, 128))) for i in range(n)]
    cfg = _config(spec, classes, ignore_index, gsd, params)
    x = EvalInput(
        pred,
        gt,
        v,
        cfg.classes,
        ignore_index,
        cfg.gsd,
        dict(heads or {}),
        image,
        gt_instances,
        postprocess,
        with_artifacts,
    )
    ms = spec.measures(cfg)
    stats: dict[str, dict[str, Any]] = {}
    found: dict[str, Any] = {}
    prm: dict[str, Any] = {"gsd_m": cfg.gsd} if cfg.gsd else {}
    for meas in ms:
        if meas.applies(x):
            out = meas.measure(x)
            stats[meas.name] = out.stats
            found.update(out.artifacts)
            prm.update(meas.params())
    return _result(spec, ms, stats, prm, 1, Artifacts(**found), cfg)


def evaluate_sample(
    card: Any,
    heads: Mapping[str, np.ndarray],
    sample: Any,
    *,
    task: Task | str | None = None,
    with_artifacts: bool = False,
    **params: Any,
) -> EvalResult | None:
    """Evaluate a model's prediction of a :class:`~rsviz.datasets.base.Sample` (or a crop of one).

    The task is the first of :func:`~rsviz.evaluation.tasks.specs_for_card` whose ground truth the
    sample has, unless given; legend, ignore class and post-processing come from the card, GSD,
    valid mask, imagery and footprint instances from the sample.

    Args:
        card: The model's :class:`~rsviz.models.card.ModelCard`.
        heads: Prediction heads on the sample's grid (``classes``, ``probs``, ``height``, ``edge``...).
        sample: The sample (``targets``, ``valid``, ``image``, ``gsd``).
        task: Evaluate this task instead of choosing one.
        with_artifacts: See :func:`evaluate`.
        **params: See :func:`evaluate`.

    Returns:
        The result, or None when the sample has no ground truth this model can be scored on.
    """
    spec = task_spec(task) if task is not None else target_spec(card, sample.targets)
    if spec is None or spec.target not in sample.targets:
        return None
    return evaluate(
        heads[spec.prediction],
        sample.targets[spec.target],
        spec.task,
        classes=card.classes or None,
        valid=sample.valid,
        ignore_index=card.ignore_index,
        gsd=sample.gsd,
        heads=heads,
        image=sample.image,
        gt_instances=sample.targets.get("instances") if spec.task is Task.BUILDINGS else None,
        postprocess=card.postprocess,
        with_artifacts=with_artifacts,
        **params,
    )


def target_spec(card: Any, targets: Mapping[str, Any]) -> TaskSpec | None:
    """The task a model is scored on against these ground-truth targets (None when none fits)."""
    return next((s for s in specs_for_card(card) if s.target in targets), None)


def pool(results: Sequence[EvalResult]) -> EvalResult:
    """Pool image results into a split result, as each metric's definition requires.

    Confusion matrices, object counts and height error sums are summed; boundary F1, relaxed F1,
    APLS and reconstruction figures are means over images (NaN images left out); multi-label
    scores are computed over all patches together. ``images`` is the number of results.

    Raises:
        ValueError: No results, or results of different tasks or parameters.
    """
    if not results:
        raise ValueError("nothing to pool: give at least one result")
    tasks = {r.task for r in results}
    if len(tasks) > 1:
        raise ValueError(f"cannot pool results of different tasks: {sorted(t.value for t in tasks)}")
    first = results[0]
    spec = task_spec(first.task)
    cfg: EvalConfig = first.config
    others = {replace(r.config, gsd=None) for r in results}
    if len(others) > 1:
        raise ValueError("cannot pool results measured with different parameters or legends; evaluate them alike")
    if len({r.config.gsd for r in results}) > 1:  # the 4 m APLS buffer is in each image's own pixels
        cfg = replace(cfg, gsd=next((r.config.gsd for r in results if r.config.gsd), None))
    ms = spec.measures(cfg)
    stats: dict[str, dict[str, Any]] = {}
    for meas in ms:
        parts = [r.stats[meas.name] for r in results if meas.name in r.stats]
        if parts:
            stats[meas.name] = meas.combine(parts)
    params: dict[str, Any] = {}
    for r in results:
        params.update(r.params)
    if len({r.params.get("gsd_m") for r in results}) > 1:
        params.pop("gsd_m", None)
    return _result(spec, ms, stats, params, len(results), Artifacts(), cfg)


def evaluate_patches(model: Any, patches: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> EvalResult:
    """Score a multi-label scene classifier on labelled patches (the scene task), pooled over them.

    Args:
        model: :class:`~rsviz.models.api.LoadedModel` (or registry name) with a multilabel ``labels`` head.
        patches: ``[(id, (bands, h, w) image in the card's band order, (L,) {0, 1} labels)]``.

    Returns:
        The pooled :class:`EvalResult` (``micro_f1``, ``macro_f1``, ``map``, ``patches``).

    Raises:
        ValueError: No patches.
        BandCountError: A patch has other bands than the model.
    """
    from rsviz.inference.classify import classify_patch
    from rsviz.models.api import LoadedModel, load_model_cached

    lm = model if isinstance(model, LoadedModel) else load_model_cached(model, "cpu")
    if not patches:
        raise ValueError("no patches to score")
    return pool(
        [
            evaluate(classify_patch(lm, img), np.asarray(lab), Task.SCENE, classes=lm.card.classes or None)
            for _, img, lab in patches
        ]
    )
