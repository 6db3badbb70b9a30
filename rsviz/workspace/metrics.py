"""Metrics of a workspace run inside its extent, against the scene's ground truth."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from rsviz.errors import ExtentError
from rsviz.workspace.runs import RunResult
from rsviz.workspace.scene import MAX_READ_PX, Scene

#: Block side of windowed evaluation in the app.
EVAL_BLOCK = 1024


def evaluate_run(
    scene: Scene,
    run: RunResult,
    card: Any,
    *,
    block: int = EVAL_BLOCK,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Any:
    """Metrics of a run inside its extent, accumulated block by block (:func:`rsviz.evaluation.evaluate_windows`):
    an :class:`~rsviz.evaluation.EvalResult` with the object matching and road graphs kept for display, or None
    when the scene has no ground truth this model fits.

    The prediction is read from the run's COG (:func:`rsviz.inference.export.read_prediction`: class ids exact,
    probabilities at 1/255) and the imagery and ground truth from the scene's files
    (:meth:`~rsviz.workspace.scene.Scene.read`), one block and its halo at a time, so extents of any size are
    scored in bounded memory (APLS excepted: it assembles both road masks over the extent).

    Args:
        scene: The run's scene.
        run: The run.
        card: Its model card.
        block: Block side, pixels.
        progress: ``progress(blocks_done, blocks_total)``.
        cancel: Polled between blocks; True raises :class:`~rsviz.inference.InferenceCancelled`.

    Raises:
        InferenceCancelled: ``cancel()`` returned True.
    """
    from rasterio.windows import Window

    from rsviz.evaluation import evaluate_windows, target_spec
    from rsviz.inference.export import read_prediction

    spec = target_spec(card, scene.targets)
    if spec is None:
        return None
    w0 = run.extent.window
    if spec.task.value == "roads" and int(w0.width) * int(w0.height) > MAX_READ_PX:
        raise ExtentError(
            f"APLS compares road graphs of the whole extent, which holds at most {MAX_READ_PX / 1e6:.0f} MPx in "
            f"memory; this extent is {int(w0.width) * int(w0.height) / 1e6:.0f} MPx: draw a smaller one"
        )
    c0, r0 = int(w0.col_off), int(w0.row_off)

    def read_heads(w: Window) -> dict[str, Any]:
        return read_prediction(run.path, w).heads

    def read_sample(w: Window) -> Any:
        return scene.read(Window(c0 + int(w.col_off), r0 + int(w.row_off), int(w.width), int(w.height)))

    return evaluate_windows(
        card,
        read_heads,
        read_sample,
        int(w0.height),
        int(w0.width),
        block=block,
        with_artifacts=True,
        progress=progress,
        cancel=cancel,
    )


@dataclass(frozen=True)
class HeightBaseline:
    """The best constant height over an extent: what a height head must beat to be of use.

    Attributes:
        mean: Mean ground-truth height over the valid pixels (the constant), in the target's units.
        rmse: RMSE of predicting ``mean`` everywhere (the ground truth's standard deviation); no constant does
            better.
        mae: MAE of predicting ``mean`` everywhere.
        pixels: Valid pixels counted.
    """

    mean: float
    rmse: float
    mae: float
    pixels: int


def height_baseline(scene: Scene, window: Window, block: int = EVAL_BLOCK) -> HeightBaseline | None:
    """:class:`HeightBaseline` of the scene's ``height`` target inside ``window``, read block by block (two
    passes: the mean, then the errors), or None when the scene has no height ground truth or no valid pixel.

    Raises:
        RasterReadError: The ground truth became unreadable.
    """
    if "height" not in scene.targets:
        return None
    c0, r0, w, h = (int(v) for v in (window.col_off, window.row_off, window.width, window.height))
    wins = [
        Window(c0 + c, r0 + r, min(block, w - c), min(block, h - r))
        for r in range(0, h, block)
        for c in range(0, w, block)
    ]

    def blocks() -> Iterator[np.ndarray]:
        for win in wins:
            s = scene.read(win)
            v = s.valid & np.isfinite(s.targets["height"])
            yield s.targets["height"][v].astype(np.float64)

    n, total = 0, 0.0
    for x in blocks():
        n, total = n + x.size, total + float(x.sum())
    if not n:
        return None
    mean, sq, ab = total / n, 0.0, 0.0
    for x in blocks():
        sq, ab = sq + float(((x - mean) ** 2).sum()), ab + float(np.abs(x - mean).sum())
    return HeightBaseline(mean, math.sqrt(sq / n), ab / n, n)


_CACHE: OrderedDict[str, Any] = OrderedDict()
_LOCK = threading.Lock()
#: Evaluations kept in this process (by run key).
CACHE_ITEMS = 32


def evaluate_run_cached(
    scene: Scene, run: RunResult, card: Any, *, progress: Callable[[int, int], None] | None = None
) -> tuple[Any, bool]:
    """:func:`evaluate_run`, remembered per run in this process: ``(result, from_cache)``."""
    with _LOCK:
        if run.key in _CACHE:
            _CACHE.move_to_end(run.key)
            return _CACHE[run.key], True
    res = evaluate_run(scene, run, card, progress=progress)
    with _LOCK:
        _CACHE[run.key] = res
        while len(_CACHE) > CACHE_ITEMS:
            _CACHE.popitem(last=False)
    return res, False
