"""Sentinel-2 multi-label scene classifiers with three band-fusion variants.

Reproduces the fusion designs compared in the inter-region transfer-learning study on
BigEarthNet (12 L2A bands at 10 / 20 / 60 m, 19-class nomenclature):

* ``resize`` (early fusion): all 12 bands at 120 x 120 (20 m / 60 m upsampled) into one CNN;
* ``intermediate``: one stem per resolution (10 m: 4 bands at 120 px, stride 2; 20 m: 6 bands
  at 60 px; 60 m: 2 bands at 20 px, upsampled x3), concatenated at 60 px, then a shared trunk;
* ``late``: one branch per resolution, each predicting the 19 logits; logits are fused with
  learned softmax weights.

Input: ``(B, 12, 120, 120)`` float, bands in :data:`rsviz.datasets.bigearthnet.BANDS` order
(10 m, 20 m, 60 m), with 20 m / 60 m bands pixel-replicated to 120 px; the models recover the
native resolutions by average pooling (exact for replicated pixels). Output:
``{"labels": (B, 19)}`` logits (sigmoid per label).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

VARIANTS = ("resize", "intermediate", "late")


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _trunk(cin: int, w: int, strides: tuple[int, ...]) -> nn.Sequential:
    layers, c = [], cin
    for i, s in enumerate(strides):
        layers.append(_block(c, w * 2**i, s))
        c = w * 2**i
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def split_resolutions(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 12, 120, 120)`` -> 10 m ``(B, 4, 120, 120)``, 20 m ``(B, 6, 60, 60)``, 60 m ``(B, 2, 20, 20)``."""
    return x[:, :4], F.avg_pool2d(x[:, 4:10], 2), F.avg_pool2d(x[:, 10:12], 6)


class S2MultiLabel(nn.Module):
    """Multi-label classifier; see module docstring.

    Args:
        variant: ``resize``, ``intermediate`` or ``late``.
        num_labels: Output labels (19).
        width: Base channel width.
        in_channels: Must be 12.
    """

    def __init__(self, variant: str = "resize", num_labels: int = 19, width: int = 24, in_channels: int = 12) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if in_channels != 12:
            raise ValueError("S2MultiLabel takes the 12 Sentinel-2 L2A bands")
        self.variant = variant
        w = width
        if variant == "resize":
            self.net = _trunk(12, w, (1, 2, 2, 2))
            self.fc = nn.Linear(w * 8, num_labels)
        elif variant == "intermediate":
            self.s10 = _block(4, w, 2)
            self.s20 = _block(6, w, 1)
            self.s60 = _block(2, w // 2, 1)
            self.net = _trunk(w * 2 + w // 2, w * 2, (1, 2, 2))
            self.fc = nn.Linear(w * 8, num_labels)
        else:
            self.b10 = _trunk(4, w, (2, 2, 2))
            self.b20 = _trunk(6, w, (1, 2, 2))
            self.b60 = _trunk(2, w // 2, (1, 2))
            self.f10 = nn.Linear(w * 4, num_labels)
            self.f20 = nn.Linear(w * 4, num_labels)
            self.f60 = nn.Linear(w, num_labels)
            self.fusion = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.variant == "resize":
            return {"labels": self.fc(self.net(x))}
        x10, x20, x60 = split_resolutions(x)
        if self.variant == "intermediate":
            f60 = F.interpolate(self.s60(x60), scale_factor=3, mode="nearest")
            return {"labels": self.fc(self.net(torch.cat([self.s10(x10), self.s20(x20), f60], dim=1)))}
        logits = torch.stack([self.f10(self.b10(x10)), self.f20(self.b20(x20)), self.f60(self.b60(x60))], dim=0)
        wts = torch.softmax(self.fusion, 0).view(3, 1, 1)
        return {"labels": (logits * wts).sum(0)}
