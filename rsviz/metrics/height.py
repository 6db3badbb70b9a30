"""Height regression metrics (Eigen et al., NIPS 2014 for the delta threshold accuracy).

Over valid pixels with error ``e = pred - target``: RMSE ``sqrt(mean e^2)``, MAE
``mean |e|``, bias ``mean e`` (positive = over-estimation), and threshold accuracy
``delta < 1.25``: fraction of pixels with ``max(pred/target, target/pred) < 1.25``,
computed on pixels where both are > ``eps`` (ratios of ~0 heights are meaningless).
Units are those of the inputs (metres or relative height).
"""

from __future__ import annotations

import numpy as np


def height_metrics(
    pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None, eps: float = 1e-3
) -> dict[str, float]:
    """RMSE, MAE, bias and delta<1.25 accuracy.

    Args:
        pred: ``(H, W)`` float predicted height.
        target: ``(H, W)`` float reference height (same units).
        valid: Optional bool mask; non-finite values are always excluded.
        eps: Minimum height for the ratio-based delta accuracy.

    Returns:
        ``{"rmse", "mae", "bias", "delta_1.25", "pixels"}``.
    """
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    ok = np.isfinite(p) & np.isfinite(t)
    if valid is not None:
        ok &= valid
    e = p[ok] - t[ok]
    if e.size == 0:
        nan = float("nan")
        return {"rmse": nan, "mae": nan, "bias": nan, "delta_1.25": nan, "pixels": 0}
    pos = ok & (p > eps) & (t > eps)
    ratio = np.maximum(p[pos] / t[pos], t[pos] / p[pos])
    return {
        "rmse": float(np.sqrt((e**2).mean())),
        "mae": float(np.abs(e).mean()),
        "bias": float(e.mean()),
        "delta_1.25": float((ratio < 1.25).mean()) if ratio.size else float("nan"),
        "pixels": int(e.size),
    }


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
