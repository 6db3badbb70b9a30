"""Value scaling and normalisation of model inputs, derived from a card's :class:`~rsviz.models.card.InputSpec`.

Every model in the registry sees its input as

    ``x = (raw / scale - mean) / std``        per band,

with ``raw`` in the source units the card's statistics refer to (0-255 for 8-bit imagery, reflectance
x 10000 for Sentinel-2 L2A), ``scale`` the card's divisor and ``mean`` / ``std`` per-band statistics of
the scaled values. The same map written as a per-band affine ``x = raw * gain + bias`` with
``gain = 1 / (scale * std)`` and ``bias = -mean / std`` costs one multiply-add in place, which is how
tiled inference applies it. Reconstruction heads predict ``x`` and are brought back to input units by
the inverse, ``raw = (x * std + mean) * scale``.

This module is the one place that defines the map; :class:`rsviz.inference.predictor.Predictor` and
:func:`rsviz.inference.classify.classify_patch` both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rsviz.models.card import InputSpec


@dataclass(frozen=True)
class Normalisation:
    """The per-band normalisation of one card's input.

    Attributes:
        scale: Divisor applied first (e.g. 255.0), source units per scaled unit.
        mean: ``(bands,)`` mean of the scaled values.
        std: ``(bands,)`` standard deviation of the scaled values (all > 0).
    """

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_spec(cls, spec: InputSpec) -> Normalisation:
        """The normalisation a card's :class:`InputSpec` describes.

        Raises:
            ValueError: ``mean`` and ``std`` differ in length from ``bands``.
        """
        n = len(spec.bands)
        if len(spec.mean) != n or len(spec.std) != n:
            raise ValueError(f"InputSpec has {n} bands but {len(spec.mean)} means and {len(spec.std)} stds")
        return cls(float(spec.scale), tuple(float(v) for v in spec.mean), tuple(float(v) for v in spec.std))

    @property
    def bands(self) -> int:
        """Number of bands."""
        return len(self.mean)

    def _stats(self, device: torch.device | str | None) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.bands
        mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, n, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, n, 1, 1)
        return mean, std

    def affine(self, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gain, bias)``, each ``(1, bands, 1, 1)`` float32 on ``device``: ``x = raw * gain + bias``.

        ``gain = 1 / (scale * std)``, ``bias = -mean / std`` (float32 arithmetic).
        """
        mean, std = self._stats(device)
        return 1.0 / (self.scale * std), -mean / std

    def apply_(self, x: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Normalise a float ``(B, bands, h, w)`` tensor of raw values in place with :meth:`affine`'s pair;
        returns ``x``."""
        return x.mul_(gain).add_(bias)

    def normalise(self, raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(bands, h, w)`` or ``(B, bands, h, w)`` raw values (any numeric dtype) -> float32 normalised, same
        shape, computed as ``(raw / scale - mean) / std`` on the CPU (or on the tensor's device).

        Values of training imagery land roughly in ``[-3, 3]``.
        """
        x = torch.from_numpy(np.asarray(raw, np.float32)) if isinstance(raw, np.ndarray) else raw.float()
        mean, std = self._stats(x.device)
        if x.dim() == 3:
            mean, std = mean[0], std[0]
        return (x / self.scale - mean) / std

    def denormalise_(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """The inverse in place: float32 ``(B, bands, h, w)`` normalised -> input units,
        ``(x * std + mean) * scale``; ``mean`` / ``std`` from :meth:`statistics`. Returns ``x``."""
        return x.mul_(std).add_(mean).mul_(self.scale)

    def denormalise(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """:meth:`denormalise_` out of place (``x`` unchanged)."""
        return (x * std + mean) * self.scale

    def statistics(self, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)``, each ``(1, bands, 1, 1)`` float32 on ``device``."""
        return self._stats(device)

    def fill_value(self) -> np.ndarray:
        """``(bands,)`` float32 raw value that normalises to 0 (``mean * scale``): what nodata pixels are set to
        before the network sees them."""
        return (torch.tensor(self.mean, dtype=torch.float32) * self.scale).numpy()
