"""Height regression metrics (Eigen et al., NIPS 2014 for the delta threshold accuracy).

Over valid pixels with error ``e = pred - target``: RMSE ``sqrt(mean e^2)``, MAE
``mean |e|``, bias ``mean e`` (positive = over-estimation), and threshold accuracy
``delta < 1.25``: fraction of pixels with ``max(pred/target, target/pred) < 1.25``,
computed on pixels where both are > ``eps`` (ratios of ~0 heights are meaningless).
Units are those of the inputs (metres or relative height).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np


def height_error_sums(
    pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None, eps: float = 1e-3
) -> dict[str, float | int]:
    """Additive statistics of the height errors, so several images pool exactly (sum them key by key).

    Args:
        pred: ``(H, W)`` float predicted height.
        target: ``(H, W)`` float reference height (same units).
        valid: Optional bool mask; non-finite values are always excluded.
        eps: Minimum height for the ratio-based delta accuracy.

    Returns:
        ``{"n", "sum_e", "sum_e2", "sum_abs", "delta_n", "delta_hits"}``: pixel count, sums of ``e``, ``e^2``
        and ``|e|`` (height units), pixels with both heights > ``eps`` and those of them with ratio < 1.25.
    """
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    ok = np.isfinite(p) & np.isfinite(t)
    if valid is not None:
        ok &= valid
    e = p[ok] - t[ok]
    pos = ok & (p > eps) & (t > eps)
    ratio = np.maximum(p[pos] / t[pos], t[pos] / p[pos])
    return {
        "n": int(e.size),
        "sum_e": float(e.sum()),
        "sum_e2": float((e**2).sum()),
        "sum_abs": float(np.abs(e).sum()),
        "delta_n": int(ratio.size),
        "delta_hits": int((ratio < 1.25).sum()),
    }


def height_metrics_from_sums(s: Mapping[str, float | int]) -> dict[str, float]:
    """RMSE, MAE, bias, delta<1.25 and pixel count from :func:`height_error_sums` (pooled or not)."""
    n = s["n"]
    if not n:
        nan = float("nan")
        return {"rmse": nan, "mae": nan, "bias": nan, "delta_1.25": nan, "pixels": 0}
    return {
        "rmse": math.sqrt(s["sum_e2"] / n),
        "mae": s["sum_abs"] / n,
        "bias": s["sum_e"] / n,
        "delta_1.25": s["delta_hits"] / s["delta_n"] if s["delta_n"] else float("nan"),
        "pixels": int(n),
    }


def height_metrics(
    pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None, eps: float = 1e-3
) -> dict[str, float]:
    """RMSE, MAE, bias and delta<1.25 accuracy (arguments as :func:`height_error_sums`).

    Returns:
        ``{"rmse", "mae", "bias", "delta_1.25", "pixels"}``.
    """
    return height_metrics_from_sums(height_error_sums(pred, target, valid, eps))


def height_metrics_per_class(
    pred: np.ndarray,
    target: np.ndarray,
    classes: np.ndarray,
    class_names: dict[int, str],
    valid: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`height_metrics` restricted to each class of a semantic map."""
    out: dict[str, dict[str, float]] = {}
    for cid, name in class_names.items():
        m = classes == cid
        if valid is not None:
            m &= valid
        if m.any():
            out[name] = height_metrics(pred, target, m)
    return out
