"""Per-pixel error maps for display."""

from __future__ import annotations

import numpy as np

#: Codes of :func:`binary_error_map`.
TN, TP, FP, FN, NODATA = 0, 1, 2, 3, 255
#: Display colours (RGB) of the codes: TP green, FP red, FN blue; TN transparent.
ERROR_COLOURS = {TP: (46, 204, 64), FP: (255, 65, 54), FN: (0, 116, 217)}


def binary_error_map(pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """TP / FP / FN / TN codes for one class.

    Args:
        pred: ``(H, W)`` bool-like prediction of the class.
        target: ``(H, W)`` bool-like ground truth of the class.
        valid: Optional evaluated pixels (others get ``NODATA``).

    Returns:
        ``(H, W)`` uint8 with codes ``TN=0, TP=1, FP=2, FN=3, NODATA=255``.
    """
    p, t = np.asarray(pred, bool), np.asarray(target, bool)
    out = np.zeros(p.shape, np.uint8)
    out[p & t] = TP
    out[p & ~t] = FP
    out[~p & t] = FN
    if valid is not None:
        out[~np.asarray(valid, bool)] = NODATA
    return out


def error_map_rgba(codes: np.ndarray, alpha: int = 200) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA of :func:`binary_error_map` codes (TN and nodata transparent)."""
    out = np.zeros((*codes.shape, 4), np.uint8)
    for code, rgb in ERROR_COLOURS.items():
        m = codes == code
        out[m, :3] = rgb
        out[m, 3] = alpha
    return out


def disagreement_map(
    pred: np.ndarray, target: np.ndarray, num_classes: int, valid: np.ndarray | None = None
) -> np.ndarray:
    """Multiclass disagreement codes: ``-1`` where correct or invalid, else ``true * num_classes + pred``.

    Returns:
        ``(H, W)`` int32; decode a code ``k`` as ``(k // num_classes, k % num_classes)``.
    """
    p, t = np.asarray(pred, np.int32), np.asarray(target, np.int32)
    out = np.where(p != t, t * num_classes + p, -1).astype(np.int32)
    if valid is not None:
        out[~np.asarray(valid, bool)] = -1
    return out
