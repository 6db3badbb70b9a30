"""Whether a new training stage really beats the bundled weights on a small validation split.

The val splits here are small (Banepa + Kampala building val: 10 images, ~200 buildings; ETH road
val: 10 tiles), so a checkpoint, post-processing or TTA choice that maximises the val score also fits
its noise: in sessions 5 and 6, val gains of 0.003-0.044 came with test losses. The packagers
therefore replace bundled weights only when a paired bootstrap over val images (Efron & Tibshirani,
"An Introduction to the Bootstrap", 1993, ch. 16) says the candidate is better with probability at
least :data:`REPLACE_P` (:func:`p_better`).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

#: Bootstrap probability a candidate needs before it replaces the bundled weights.
REPLACE_P = 0.9


def pooled_f1(counts: np.ndarray) -> float:
    """F1 ``2 TP / (2 TP + FP + FN)`` of ``(N, 3)`` per-image ``(tp, fp, fn)`` counts pooled over images."""
    tp, fp, fn = np.asarray(counts, float).sum(0)
    return float(2 * tp / max(2 * tp + fp + fn, 1.0))


def mean_score(scores: np.ndarray) -> float:
    """Mean of per-image scores, NaN ignored (APLS of a tile without ground-truth roads)."""
    return float(np.nanmean(scores))


def p_better(bundled: Sequence, candidate: Sequence, statistic: Callable[[np.ndarray], float], *,
             n: int = 2000, seed: int = 0) -> float:
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


def building_val_counts(lm) -> np.ndarray:
    """``(N, 3)`` int per-image object ``(tp, fp, fn)`` of a building model on the val splits
    (:data:`rsviz.train.building_card.TUNE_SPLITS`), with its card's post-processing and TTA setting."""
    from rsviz.models.card import postprocess_of
    from rsviz.train.building_card import object_counts, val_predictions

    return object_counts(val_predictions(lm), postprocess_of(lm.card))


def road_val_apls(lm) -> np.ndarray:
    """``(N,)`` per-tile APLS (4 px buffer) of a road model on the ETH val tiles, with its card's
    graph extraction (``extra.road_graph``) and TTA setting."""
    from rsviz.models.card import road_graph_of
    from rsviz.train.semantic_card import _road_probs, tile_apls

    return tile_apls(_road_probs(lm, "val"), road_graph_of(lm.card))[:, 0]


def compare(bundled_dir, candidate_dir) -> dict:
    """Val statistic of both model folders and the bootstrap probability that the candidate is better.

    Buildings: object F1 pooled over the val images; roads: mean per-tile APLS.

    Returns:
        ``{"statistic", "bundled", "candidate", "p_better", "replace"}`` (``replace`` when
        ``p_better >= REPLACE_P``).

    Raises:
        ValueError: If the two cards are of different tasks, or of a task with no comparison here.
    """
    from rsviz.models.api import from_pretrained

    a, b = from_pretrained(bundled_dir, "cpu"), from_pretrained(candidate_dir, "cpu")
    if a.card.task != b.card.task:
        raise ValueError(f"cannot compare a {a.card.task} model with a {b.card.task} model")
    if a.card.task == "buildings":
        items, stat, name = building_val_counts, pooled_f1, "val object F1 (pooled)"
    elif a.card.task == "roads":
        items, stat, name = road_val_apls, mean_score, "val APLS (mean over tiles)"
    else:
        raise ValueError(f"no stage comparison for task {a.card.task!r}; valid: buildings, roads")
    ia, ib = items(a), items(b)
    p = p_better(ia, ib, stat)
    return {"statistic": name, "bundled": stat(ia), "candidate": stat(ib), "p_better": p, "replace": p >= REPLACE_P,
            "replace_p": REPLACE_P, "images": len(ia)}


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Does a packaged candidate beat the bundled weights on val? "
                                             "(paired bootstrap over val images)")
    ap.add_argument("bundled", help="bundled model folder, e.g. weights/building-mtl")
    ap.add_argument("candidate", help="candidate model folder written by a packager (--out)")
    a = ap.parse_args(argv)
    print(json.dumps(compare(a.bundled, a.candidate), indent=1))


if __name__ == "__main__":
    main()
