"""Boundary F1 (BF score), Csurka, Larlus & Perronnin, "What is a good evaluation measure for
semantic segmentation?", BMVC 2013.

For a class (or a binary mask), boundary pixels ``B_p`` (prediction) and ``B_g`` (ground
truth) are the inner boundaries (:func:`skimage.segmentation.find_boundaries`,
``mode="inner"``). With tolerance ``theta`` (pixels, or metres / GSD), boundary
precision is the fraction of ``B_p`` within ``theta`` (Euclidean distance transform) of
``B_g``, recall the fraction of ``B_g`` within ``theta`` of ``B_p``, and
``BF = 2 P R / (P + R)``. Both sets empty: NaN (undefined); one empty: 0.

For an edge head (a boundary *map*, not a mask) pass ``is_boundary=True``: the thresholded
map is used as ``B_p`` directly (thinned with :func:`skimage.morphology.thin` so a wide
edge response is not double-counted) against boundaries of the ground-truth mask.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from scipy import ndimage
from skimage.morphology import thin
from skimage.segmentation import find_boundaries


def _boundary(mask: np.ndarray) -> np.ndarray:
    return find_boundaries(mask.astype(np.int32), mode="inner", connectivity=1)


def boundary_f1(
    pred: np.ndarray,
    target: np.ndarray,
    tolerance: float = 2.0,
    *,
    gsd: float | None = None,
    tolerance_m: float | None = None,
    valid: np.ndarray | None = None,
    is_boundary: bool = False,
) -> dict[str, float]:
    """BF score between a predicted and a ground-truth mask.

    Args:
        pred: ``(H, W)`` predicted mask (bool / {0,1}), or boundary map if ``is_boundary``.
        target: ``(H, W)`` ground-truth mask.
        tolerance: Distance tolerance in pixels (used unless ``tolerance_m`` is given).
        gsd: Ground sampling distance, metres per pixel (needed with ``tolerance_m``).
        tolerance_m: Tolerance in metres, converted with ``gsd``.
        valid: Optional ``(H, W)`` bool; boundary pixels outside it are not counted.
        is_boundary: ``pred`` is already a boundary map (edge head output).

    Returns:
        ``{"precision", "recall", "f1", "tolerance_px"}`` (NaN when both boundary sets are empty).

    Raises:
        ValueError: ``tolerance_m`` without ``gsd``.
    """
    if tolerance_m is not None:
        if not gsd:
            raise ValueError("tolerance in metres needs the GSD (metres per pixel)")
        tolerance = tolerance_m / gsd
    bp = thin(np.asarray(pred, bool)) if is_boundary else _boundary(np.asarray(pred, bool))
    bg = _boundary(np.asarray(target, bool))
    if valid is not None:
        bp &= valid
        bg &= valid
    npred, ngt = int(bp.sum()), int(bg.sum())
    if npred == 0 and ngt == 0:
        return {"precision": float("nan"), "recall": float("nan"), "f1": float("nan"), "tolerance_px": float(tolerance)}
    if npred == 0 or ngt == 0:
        return {
            "precision": 0.0 if npred else float("nan"),
            "recall": 0.0 if ngt else float("nan"),
            "f1": 0.0,
            "tolerance_px": float(tolerance),
        }
    dg = ndimage.distance_transform_edt(~bg)
    dp = ndimage.distance_transform_edt(~bp)
    p = float((dg[bp] <= tolerance).mean())
    r = float((dp[bg] <= tolerance).mean())
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"precision": p, "recall": r, "f1": f, "tolerance_px": float(tolerance)}


def multiclass_boundary_f1(
    pred: np.ndarray,
    target: np.ndarray,
    class_ids: Iterable[int | np.integer[Any]],
    tolerance: float = 2.0,
    valid: np.ndarray | None = None,
) -> dict[int, dict[str, float]]:
    """BF score per class id (one-vs-rest masks); returns ``{class_id: boundary_f1(...)}``."""
    return {int(c): boundary_f1(pred == c, target == c, tolerance, valid=valid) for c in class_ids}
