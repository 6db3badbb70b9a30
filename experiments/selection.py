"""Whether a new training stage really beats the bundled weights on a small validation split.

The val splits here are small (Banepa + Kampala building val: 10 images, ~200 buildings; ETH road
val: 10 tiles), so a checkpoint, post-processing or TTA choice that maximises the val score also fits
its noise: in sessions 5 and 6, val gains of 0.003-0.044 came with test losses. The packagers
therefore replace bundled weights only when a paired bootstrap over val images (Efron & Tibshirani,
"An Introduction to the Bootstrap", 1993, ch. 16) says the candidate is better with probability at
least :data:`REPLACE_P` (:func:`p_better`).
"""

from __future__ import annotations

import numpy as np

from rsviz.evaluation.bootstrap import REPLACE_P, mean_score, p_better, pooled_f1

__all__ = [
    "REPLACE_P",
    "building_val_counts",
    "compare",
    "main",
    "mean_score",
    "p_better",
    "pooled_f1",
    "road_val_apls",
]


def building_val_counts(lm) -> np.ndarray:
    """``(N, 3)`` int per-image object ``(tp, fp, fn)`` of a building model on the val splits
    (:data:`experiments.packaging.building.TUNE_SPLITS`), with its card's post-processing and TTA setting."""
    from experiments.packaging.building import object_counts, val_predictions
    from rsviz.models.card import postprocess_of

    return object_counts(val_predictions(lm), postprocess_of(lm.card))


def road_val_apls(lm) -> np.ndarray:
    """``(N,)`` per-tile APLS (4 px buffer) of a road model on the ETH val tiles, with its card's
    graph extraction (``extra.road_graph``) and TTA setting."""
    from experiments.packaging.semantic import _road_probs, tile_apls
    from rsviz.models.card import road_graph_of

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
    return {
        "statistic": name,
        "bundled": stat(ia),
        "candidate": stat(ib),
        "p_better": p,
        "replace": p >= REPLACE_P,
        "replace_p": REPLACE_P,
        "images": len(ia),
    }


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    ap = argparse.ArgumentParser(
        description="Does a packaged candidate beat the bundled weights on val? (paired bootstrap over val images)"
    )
    ap.add_argument("bundled", help="bundled model folder, e.g. weights/building-mtl")
    ap.add_argument("candidate", help="candidate model folder written by a packager (--out)")
    a = ap.parse_args(argv)
    print(json.dumps(compare(a.bundled, a.candidate), indent=1))


if __name__ == "__main__":
    main()
