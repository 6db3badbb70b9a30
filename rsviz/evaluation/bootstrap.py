"""Paired bootstrap over images: is one model's statistic really higher than another's?

The split-level statistics of :mod:`rsviz.evaluation` (object F1 pooled over images, mean per-tile
APLS) are computed from a handful of images in rsviz's held-out splits, so differences of a few
hundredths are often noise. :func:`p_better` resamples the images with replacement (Efron &
Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 16), scoring both models on the same draw
(paired). ``docs/model-selection.md`` states the rule bundled weights follow: a candidate replaces
them only at ``p_better >= REPLACE_P`` on val.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import numpy.typing as npt

#: Bootstrap probability a candidate needs before it replaces the bundled weights.
REPLACE_P = 0.9


def pooled_f1(counts: np.ndarray) -> float:
    """F1 ``2 TP / (2 TP + FP + FN)`` of ``(N, 3)`` per-image ``(tp, fp, fn)`` counts pooled over images."""
    tp, fp, fn = np.asarray(counts, float).sum(0)
    return float(2 * tp / max(2 * tp + fp + fn, 1.0))


def mean_score(scores: np.ndarray) -> float:
    """Mean of per-image scores, NaN ignored (APLS of a tile without ground-truth roads)."""
    return float(np.nanmean(scores))


def p_better(
    bundled: npt.ArrayLike,
    candidate: npt.ArrayLike,
    statistic: Callable[[np.ndarray], float],
    *,
    n: int = 2000,
    seed: int = 0,
) -> float:
    """Probability that ``candidate`` beats ``bundled`` on the split the images come from.

    Both are per-image items in the same image order (e.g. ``(tp, fp, fn)`` rows, or per-tile APLS).
    Images are resampled with replacement ``n`` times (seeded); each draw scores both models on the
    same images (paired), and the result is the share of draws where the candidate's statistic is
    higher (ties count half; draws where a statistic is NaN are left out).

    Args:
        bundled: ``N`` per-image items of the bundled model.
        candidate: ``N`` per-image items of the candidate, same images.
        statistic: Split score of an ``(N, ...)`` array, e.g. :func:`pooled_f1` or :func:`mean_score`.
        n: Bootstrap draws.
        seed: Seed of the draws.

    Returns:
        Probability in [0, 1].

    Raises:
        ValueError: If the two lists differ in length or are empty.
    """
    a, b = np.asarray(bundled, float), np.asarray(candidate, float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"need the same non-zero number of images for both models, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    wins, used = 0.0, 0
    for _ in range(n):
        i = rng.integers(0, len(a), len(a))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a draw of NaN tiles only: skipped below
            d = statistic(b[i]) - statistic(a[i])
        if np.isnan(d):
            continue
        used += 1
        wins += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
    return wins / used if used else 0.5
