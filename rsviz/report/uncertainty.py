"""95 % intervals of a run's headline figures inside its extent: a spatial-block bootstrap.

The extent is cut into a grid of square blocks (about 8 x 8, at least 32 px each). Each block keeps
its confusion matrix and the objects whose centroid falls in it (matched pairs by the proposal's
centroid, false positives and misses by their own). A draw resamples the blocks with replacement,
sums their statistics and recomputes each figure with the evaluator's own formulas
(:class:`~rsviz.evaluation.measures.PixelMetrics`, pooled object F1); the interval is the 2.5-97.5
percentile of the draws (Efron & Tibshirani 1993; blocks keep nearby pixels together, Kunsch 1989).
Two runs over the same window are drawn on the same blocks (paired) for their difference.
Figures that are means of per-image scores (boundary F1, APLS) or not sums of block counts get no interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

#: Bootstrap draws and seed.
DRAWS = 1000
SEED = 0
#: Blocks per side of the extent (fewer where blocks would be under :data:`MIN_BLOCK_PX`).
GRID = 8
MIN_BLOCK_PX = 32

METHOD = (
    f"spatial-block bootstrap: the extent cut into up to {GRID} x {GRID} square blocks (at least {MIN_BLOCK_PX} px), "
    f"{DRAWS} draws of blocks with replacement (seed {SEED}), each figure recomputed from the summed confusion "
    "matrix and object counts (objects counted in the block holding their centroid); 95 % percentile interval"
)


@dataclass(frozen=True)
class Interval:
    """A two-sided 95 % percentile interval.

    Attributes:
        low: 2.5th percentile of the draws.
        high: 97.5th percentile.
        draws: Draws where the figure was defined.
    """

    low: float
    high: float
    draws: int

    def text(self, digits: int = 3) -> str:
        """``[low, high]`` with ``digits`` decimals."""
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class BlockStats:
    """Additive statistics of a run per spatial block of its extent.

    Attributes:
        block_px: Block side, pixels.
        confusion: ``(B, K, K)`` confusion matrices (rows = ground truth), or None without a pixel measure.
        objects: ``(B, 3)`` object ``(tp, fp, fn)`` counts, or None without object matching.
        pixel: The evaluator's pixel measure (formulas of the figures), or None.
    """

    block_px: int
    confusion: np.ndarray | None
    objects: np.ndarray | None
    pixel: Any = None

    @property
    def blocks(self) -> int:
        """Number of blocks."""
        if self.confusion is not None:
            return len(self.confusion)
        return 0 if self.objects is None else len(self.objects)


def block_side(height: int, width: int) -> int:
    """Side of the bootstrap blocks of a ``height`` x ``width`` extent."""
    return max(MIN_BLOCK_PX, math.ceil(max(height, width) / GRID))


def _windows(height: int, width: int, side: int) -> list[Window]:
    return [
        Window(c, r, min(side, width - c), min(side, height - r))
        for r in range(0, height, side)
        for c in range(0, width, side)
    ]


def block_stats(scene: Any, run: Any, result: Any) -> BlockStats:
    """Per-block statistics of ``run`` (a :class:`~rsviz.workspace.RunResult`) scored as ``result``.

    Args:
        scene: The run's :class:`~rsviz.workspace.Scene`.
        run: The run.
        result: Its :func:`~rsviz.workspace.metrics.evaluate_run` result (with artifacts).

    Returns:
        :class:`BlockStats`; the block confusion matrices sum to the result's.
    """
    from rsviz.evaluation.measures import EvalInput
    from rsviz.evaluation.tasks import task_spec
    from rsviz.inference.export import read_prediction

    spec = task_spec(result.task)
    cfg = result.config
    h, w = int(run.extent.window.height), int(run.extent.window.width)
    side = block_side(h, w)
    wins = _windows(h, w, side)
    pixel = next((m for m in spec.measures(cfg) if m.name == "pixel"), None)
    confusion = None
    if pixel is not None and spec.prediction == "classes":
        c0, r0 = int(run.extent.window.col_off), int(run.extent.window.row_off)
        mats = []
        for win in wins:
            cls = read_prediction(run.path, win).heads["classes"]
            sub = scene.read(Window(c0 + int(win.col_off), r0 + int(win.row_off), int(win.width), int(win.height)))
            gt = sub.targets[spec.target]
            x = EvalInput(
                pred=cls, gt=gt, valid=sub.valid & (cls != 255), classes=cfg.classes, ignore_index=cfg.ignore_index
            )
            mats.append(np.asarray(pixel.measure(x).stats["confusion"], np.int64))
        confusion = np.stack(mats)
    objects = None
    match = result.artifacts.match
    if match is not None:
        cols = math.ceil(w / side)
        objects = np.zeros((len(wins), 3), np.int64)

        def at(poly: Any) -> int:
            c = poly.centroid
            return min(int(c.y // side), math.ceil(h / side) - 1) * cols + min(int(c.x // side), cols - 1)

        for prop, _, _ in match.tp:
            objects[at(prop), 0] += 1
        for p in match.fp:
            objects[at(p), 1] += 1
        for g in match.fn:
            objects[at(g), 2] += 1
    return BlockStats(side, confusion, objects, pixel)


def figures_of(bs: BlockStats, idx: np.ndarray, keys: Mapping[str, str]) -> dict[str, float]:
    """Figures of the blocks ``idx`` (a draw), for ``keys`` (figure key -> ``pixel`` / ``objects``)."""
    out: dict[str, float] = {}
    if bs.confusion is not None and bs.pixel is not None and "pixel" in keys.values():
        vals = bs.pixel.values({"confusion": bs.confusion[idx].sum(0)})
        out.update({k: _float(vals.get(k)) for k, src in keys.items() if src == "pixel"})
    if bs.objects is not None:
        tp, fp, fn = bs.objects[idx].sum(0)
        obj = {
            "object_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan,
            "object_precision": tp / (tp + fp) if tp + fp else math.nan,
            "object_recall": tp / (tp + fn) if tp + fn else math.nan,
        }
        for k, src in keys.items():
            if src == "objects":
                out[k] = float(obj[k.rsplit("_iou", 1)[0]])
    return out


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def interval_keys(values: Mapping[str, Any], bs: BlockStats) -> dict[str, str]:
    """The figure keys of ``values`` a bootstrap over ``bs`` can redraw -> where they come from."""
    out: dict[str, str] = {}
    pixel_keys = {"iou", "precision", "recall", "f1", "overall_accuracy", "kappa", "miou", "mean_f1"}
    for k in values:
        if bs.confusion is not None and (k in pixel_keys or k.startswith(("iou_", "f1_"))):
            out[k] = "pixel"
        elif bs.objects is not None and k.startswith(("object_f1_iou", "object_precision_iou", "object_recall_iou")):
            out[k] = "objects"
    return out


def _percentiles(draws: list[dict[str, float]], keys: Mapping[str, str]) -> dict[str, Interval]:
    out = {}
    for k in keys:
        xs = np.array([d[k] for d in draws if k in d and not math.isnan(d[k])])
        if len(xs):
            lo, hi = np.percentile(xs, [2.5, 97.5])
            out[k] = Interval(float(lo), float(hi), len(xs))
    return out


def _draw(n_blocks: int, fn: Callable[[np.ndarray], dict[str, float]], n: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    out = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(n):
            out.append(fn(rng.integers(0, n_blocks, n_blocks)))
    return out


def intervals(bs: BlockStats, keys: Mapping[str, str], *, n: int = DRAWS, seed: int = SEED) -> dict[str, Interval]:
    """Bootstrap intervals of the figures ``keys`` (from :func:`interval_keys`) of one run."""
    if not keys or bs.blocks == 0:
        return {}
    return _percentiles(_draw(bs.blocks, lambda i: figures_of(bs, i, keys), n, seed), keys)


def difference_intervals(
    a: BlockStats, b: BlockStats, keys: Mapping[str, str], *, n: int = DRAWS, seed: int = SEED
) -> tuple[dict[str, Interval], bool]:
    """Intervals of ``b - a`` for ``keys``: paired (same draws of blocks) when both have the same blocks.

    Returns:
        ``(intervals, paired)``.
    """
    if not keys or a.blocks == 0 or b.blocks == 0:
        return {}, False
    paired = a.blocks == b.blocks and a.block_px == b.block_px
    rng = np.random.default_rng(seed)
    draws = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(n):
            ia = rng.integers(0, a.blocks, a.blocks)
            ib = ia if paired else rng.integers(0, b.blocks, b.blocks)
            fa, fb = figures_of(a, ia, keys), figures_of(b, ib, keys)
            draws.append({k: fb[k] - fa[k] for k in keys if k in fa and k in fb})
    return _percentiles(draws, keys), paired


def trivial_baseline(bs: BlockStats, keys: Mapping[str, str]) -> dict[str, tuple[float, str]]:
    """The best constant prediction's figures: for each pixel figure, the best of "every pixel is class c".

    Object figures are 0 (a constant map predicts no separable object).

    Returns:
        Figure key -> ``(value, which constant)``.
    """
    out: dict[str, tuple[float, str]] = {}
    if bs.confusion is not None and bs.pixel is not None:
        total = bs.confusion.sum(0)
        names = list(getattr(bs.pixel, "class_names", [])) or [str(i) for i in range(len(total))]
        if getattr(bs.pixel, "binary", False):
            names = ["background", names[-1] if len(names) > 1 else "positive"]
        seen: dict[str, list[float]] = {}
        for c in range(total.shape[0]):
            if total[c].sum() == 0 and total[:, c].sum() == 0 and not getattr(bs.pixel, "binary", False):
                continue
            cm = np.zeros_like(total)
            cm[:, c] = total.sum(1)
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                vals = bs.pixel.values({"confusion": cm})
            for k, src in keys.items():
                v = _float(vals.get(k)) if src == "pixel" else math.nan
                if math.isnan(v):
                    continue
                seen.setdefault(k, []).append(v)
                if k not in out or v > out[k][0]:
                    out[k] = (v, f"all {names[c] if c < len(names) else c}")
        for k, vs in seen.items():
            if len(vs) > 1 and max(vs) - min(vs) < 1e-12:
                out[k] = (out[k][0], "any constant")
    for k, src in keys.items():
        if src == "objects":
            out[k] = (0.0, "no objects")
    return out
