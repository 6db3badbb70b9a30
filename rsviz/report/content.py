"""What a QA report says: :func:`build_report` gathers the where, the what, the numbers and the pictures."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsviz.errors import RsvizError
from rsviz.report.pictures import Picture
from rsviz.report.uncertainty import METHOD, BlockStats, Interval

#: Files hashed for the provenance up to this size (bigger ones are named by the workspace hash only).
SHA256_MAX_BYTES = 2 << 30
#: Extents up to this many pixels get panels, error crops and the TP/FP/FN map.
PICTURE_MAX_PX = 16_000_000


@dataclass(frozen=True)
class Provenance:
    """Where the scene's pixels come from.

    Attributes:
        file_name: Image file name.
        file_bytes: Its size.
        crs: CRS as text (``none`` without georeferencing).
        gsd_m: Ground sampling distance, metres, or None.
        sha256: sha256 of the image file, or None when larger than :data:`SHA256_MAX_BYTES`.
        workspace_key: :attr:`~rsviz.workspace.Scene.key`.
        source: How it was opened (``sample:...``, ``path:...``, ``upload:...``).
        dataset: Catalog dataset or ``user``; with its split.
        attribution: Data attribution line, or empty.
    """

    file_name: str
    file_bytes: int
    crs: str
    gsd_m: float | None
    sha256: str | None
    workspace_key: str
    source: str
    dataset: str
    attribution: str = ""


@dataclass(frozen=True)
class Where:
    """The extent on the map.

    Attributes:
        scene_name: Scene display name.
        bounds_4326: ``(west, south, east, north)`` of the extent, or None.
        window: ``(col, row, width, height)`` pixel window in the scene.
        area_m2: Ground area, or None when the GSD is unknown.
        pixel_size_m: GSD, metres, or None.
        overview: The overview map with the extent outlined.
        provenance: The scene's :class:`Provenance`.
    """

    scene_name: str
    bounds_4326: tuple[float, float, float, float] | None
    window: tuple[int, int, int, int]
    area_m2: float | None
    pixel_size_m: float | None
    overview: Picture | None
    provenance: Provenance


@dataclass
class RunSection:
    """One run in a report.

    Attributes:
        key: Run key.
        model: Model name.
        card: The model card (:class:`~rsviz.models.card.ModelCard`).
        weights_hash: sha256 (16 hex) of the card and weights.
        rsviz_version: Version that wrote the report.
        device: Device the run used.
        precision: Numeric precision of the run.
        options: Inference options as ``(name, value)`` rows.
        seconds: Prediction wall time.
        result: Its :class:`~rsviz.evaluation.EvalResult`, or None without ground truth.
        intervals: Figure key -> 95 % :class:`Interval`.
        baseline: Figure key -> ``(value, constant)`` of the best trivial prediction.
        panels: Input, ground truth, prediction, error map.
        false_positives: Largest false-positive buildings.
        misses: Largest missed buildings.
        figures: Confusion matrix, road graphs (matplotlib Figures).
        blocks: The bootstrap's :class:`BlockStats` (not rendered).
    """

    key: str
    model: str
    card: Any
    weights_hash: str
    rsviz_version: str
    device: str
    precision: str
    options: list[tuple[str, str]]
    seconds: float
    result: Any = None
    intervals: dict[str, Interval] = field(default_factory=dict)
    baseline: dict[str, tuple[float, str]] = field(default_factory=dict)
    panels: list[Picture] = field(default_factory=list)
    false_positives: list[Picture] = field(default_factory=list)
    misses: list[Picture] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)
    blocks: BlockStats | None = None


@dataclass
class Report:
    """A QA report of one run, or two runs of the same scene compared.

    Attributes:
        title: Title.
        created: UNIX time.
        where: The extent (the first run's).
        runs: One or two :class:`RunSection`.
        headline: Headline figure keys (the task's, as the Metrics page shows first).
        keys: Every figure key of the first run's result, in order.
        method: How the intervals were drawn.
        difference: Figure key -> ``(second - first, interval or None)`` when two runs are compared.
        paired: Whether the difference was drawn on the same blocks (same window).
        side_by_side: ``(first, second)`` panels of the two runs, same kind side by side.
        swipes: The two runs' predictions and error maps as a swipe at half the width.
        notes: Anything the reader should know (skipped pictures, missing ground truth).
    """

    title: str
    created: float
    where: Where
    runs: list[RunSection]
    headline: list[str]
    keys: list[str]
    method: str = METHOD
    difference: dict[str, tuple[float, Interval | None]] = field(default_factory=dict)
    paired: bool = False
    side_by_side: list[tuple[Picture, Picture]] = field(default_factory=list)
    swipes: list[Picture] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str | None:
    if path.stat().st_size > SHA256_MAX_BYTES:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def where_of(scene: Any, extent: Any) -> Where:
    """:class:`Where` of an extent of a scene (the overview map is rendered from the app's tiles)."""
    from rsviz.data import catalog
    from rsviz.report.pictures import overview_map
    from rsviz.workspace.scene import extent_area_m2

    attribution = catalog.dataset_info(scene.dataset).attribution if scene.dataset in catalog.DATASETS else ""
    prov = Provenance(
        file_name=Path(scene.image).name,
        file_bytes=Path(scene.image).stat().st_size,
        crs=str(scene.crs) if scene.crs is not None else "none",
        gsd_m=scene.gsd,
        sha256=_sha256(Path(scene.image)),
        workspace_key=scene.key,
        source=scene.source,
        dataset=f"{scene.dataset} ({scene.split})",
        attribution=attribution,
    )
    w = extent.window
    return Where(
        scene_name=scene.name,
        bounds_4326=tuple(extent.bounds) if extent.bounds else None,
        window=(int(w.col_off), int(w.row_off), int(w.width), int(w.height)),
        area_m2=extent_area_m2(scene, extent),
        pixel_size_m=scene.gsd,
        overview=overview_map(scene, extent.bounds),
        provenance=prov,
    )


def _options(run: Any) -> list[tuple[str, str]]:
    def text(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return " × ".join(map(str, v))
        return "—" if v is None else str(v)

    rows = [(k, text(v)) for k, v in run.run_options.items()]
    if run.external:  # made elsewhere: no inference options were asked for here
        return rows + [("warning", w) for w in run.stats.get("warnings", [])]
    rows += [(f"asked: {k}", text(v)) for k, v in vars(run.options).items()]
    for k in ("tiles", "mpx_per_s", "seconds"):
        if k in run.stats:
            v = run.stats[k]
            rows.append((k.replace("_", " "), f"{v:.3g}" if isinstance(v, float) else str(v)))
    return rows


def run_section(scene: Any, run: Any, *, result: Any = None, evaluate: bool = True) -> tuple[RunSection, list[str]]:
    """Everything a report says about one run: card, options, figures with intervals, pictures.

    Args:
        scene: The run's scene.
        run: The :class:`~rsviz.workspace.RunResult`.
        result: Its evaluation when already computed (e.g. the app's cached one); else evaluated here.
        evaluate: Evaluate when ``result`` is None.

    Returns:
        ``(section, notes)``.
    """
    from rsviz import __version__
    from rsviz.figures import confusion_figure, road_graph_figure
    from rsviz.inference.export import read_prediction
    from rsviz.report import pictures, uncertainty
    from rsviz.workspace.runs import weights_hash

    card = run.card
    notes: list[str] = []
    if result is None and evaluate:
        from rsviz.workspace.metrics import evaluate_run_cached

        result, _ = evaluate_run_cached(scene, run, card)
    sec = RunSection(
        key=run.key,
        model=run.model,
        card=card,
        weights_hash=run.run_options["source_sha256"][:16] if run.external else weights_hash(run.model),
        rsviz_version=__version__,
        device=str(run.run_options.get("device", run.options.device)),
        precision=str(run.run_options.get("precision", "float32")),
        options=_options(run),
        seconds=run.seconds,
        result=result,
    )
    if result is None:
        notes.append(f"{run.model}: the scene has no ground truth this model is scored against; no figures.")
    else:
        bs = uncertainty.block_stats(scene, run, result)
        keys = uncertainty.interval_keys(result.values, bs)
        sec.blocks = bs
        sec.intervals = uncertainty.intervals(bs, keys)
        sec.baseline = uncertainty.trivial_baseline(bs, keys)
        if result.confusion is not None:
            sec.figures.append(
                confusion_figure(
                    result.confusion, list(result.class_names), normalise=True, title=run.model, with_counts=True
                )
            )
    if run.extent.pixels > PICTURE_MAX_PX:
        notes.append(
            f"{run.model}: the extent is {run.extent.pixels / 1e6:.0f} MPx; panels and error crops are drawn for "
            f"extents up to {PICTURE_MAX_PX / 1e6:.0f} MPx."
        )
        return sec, notes
    sample = scene.read(run.extent.window)
    cls = read_prediction(run.path).heads["classes"]
    sec.panels = pictures.run_panels(sample, cls, card, result.task if result is not None else "none")
    rgb = None
    if result is not None and (result.artifacts.match is not None or result.artifacts.graphs is not None):
        from rsviz.display import to_rgb8

        rgb = to_rgb8(sample.image, valid=sample.valid)  # full resolution: crops and graphs are in its pixels
    if rgb is not None and result.artifacts.match is not None:
        sec.false_positives, sec.misses = pictures.error_crops(rgb, result.artifacts.match)
    if rgb is not None and result.artifacts.graphs is not None:
        sec.figures.append(road_graph_figure(rgb, *result.artifacts.graphs))
    return sec, notes


def build_report(
    scene: Any,
    runs: Sequence[Any],
    *,
    title: str | None = None,
    results: Sequence[Any] | None = None,
) -> Report:
    """Gather a report of one run, or of two runs of the same scene (the second compared with the first).

    Args:
        scene: The runs' :class:`~rsviz.workspace.Scene`.
        runs: One or two :class:`~rsviz.workspace.RunResult` of that scene.
        title: Title (default names the models).
        results: Their evaluations when already computed, same order (None entries are evaluated).

    Returns:
        The :class:`Report`.

    Raises:
        RsvizError: No run, more than two, or runs of another scene.
    """
    from rsviz.evaluation.tasks import task_spec
    from rsviz.report.uncertainty import difference_intervals, interval_keys

    if not 1 <= len(runs) <= 2:
        raise RsvizError(f"a report covers one run or two compared; got {len(runs)}")
    if any(r.scene_key != scene.key for r in runs):
        raise RsvizError("every run of a report must be of the report's scene")
    given = list(results) if results is not None else [None] * len(runs)
    sections, notes = [], []
    for r, res in zip(runs, given):
        s, n = run_section(scene, r, result=res)
        sections.append(s)
        notes += n
    first = sections[0].result
    keys = list(first.values) if first is not None else []
    headline: list[str] = []
    if first is not None:
        headline = [k for k in task_spec(first.task).headline if k in first.values]
    rep = Report(
        title=title or "rsviz QA report — " + " vs ".join(r.model for r in runs),
        created=time.time(),
        where=where_of(scene, runs[0].extent),
        runs=sections,
        headline=headline,
        keys=keys,
        notes=notes,
    )
    if len(sections) == 2:
        a, b = sections
        if a.result is not None and b.result is not None and a.result.task == b.result.task:
            common = [k for k in keys if k in b.result.values]
            ka = interval_keys(dict.fromkeys(common), a.blocks) if a.blocks is not None else {}
            kb = interval_keys(dict.fromkeys(common), b.blocks) if b.blocks is not None else {}
            ik = {k: v for k, v in ka.items() if k in kb}
            ivs: dict[str, Interval] = {}
            if a.blocks is not None and b.blocks is not None:
                ivs, rep.paired = difference_intervals(a.blocks, b.blocks, ik)
            for k in common:
                va, vb = a.result.values[k], b.result.values[k]
                if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
                    rep.difference[k] = (float(vb) - float(va), ivs.get(k))
        else:
            notes.append("the two runs are not scored on the same task: no difference is computed.")
        by_caption = {p.caption.split(" (")[0]: p for p in b.panels}
        from rsviz.report.pictures import swipe

        pairs = [(p, by_caption[p.caption.split(" (")[0]]) for p in a.panels if p.caption.split(" (")[0] in by_caption]
        rep.side_by_side = pairs
        rep.swipes = [
            swipe(p, q)
            for p, q in pairs
            if p.caption.startswith(("prediction", "errors", "misclassified")) and p.image.shape == q.image.shape
        ]
    return rep
