"""Reconstruction metrics: PSNR and SSIM (scikit-image), residual map.

PSNR ``= 10 log10(R^2 / MSE)`` with data range ``R`` (255 for 8-bit imagery); SSIM per
Wang et al., IEEE TIP 2004 (scikit-image ``structural_similarity``, 7x7 window, computed
per band and averaged).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def reconstruction_metrics(recon: np.ndarray, image: np.ndarray, data_range: float = 255.0) -> dict[str, float]:
    """PSNR (dB) and SSIM of a reconstruction against the input.

    Args:
        recon: ``(bands, H, W)`` reconstruction in input units.
        image: ``(bands, H, W)`` input.
        data_range: Value range of the data (255 for uint8).

    Returns:
        ``{"psnr_db", "ssim", "mae"}``.
    """
    r, x = np.asarray(recon, np.float64), np.asarray(image, np.float64)
    if r.shape != x.shape:
        raise ValueError(f"reconstruction shape {r.shape} differs from image shape {x.shape}")
    psnr = float(peak_signal_noise_ratio(x, np.clip(r, 0, data_range), data_range=data_range))
    ssim = float(np.mean([structural_similarity(x[b], r[b], data_range=data_range) for b in range(x.shape[0])]))
    return {"psnr_db": psnr, "ssim": ssim, "mae": float(np.abs(r - x).mean())}


def residual_map(recon: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute residual over bands, ``(H, W)`` float32, input units."""
    return np.abs(np.asarray(recon, np.float32) - np.asarray(image, np.float32)).mean(0)
