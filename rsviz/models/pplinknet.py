"""PP-LinkNet: LinkNet with a pyramid-pooling context module between encoder and decoder.

Tran et al., "PP-LinkNet: Improving Semantic Segmentation of High Resolution Satellite Imagery
with Multi-stage Training", ACM MM workshops 2020. The encoder's deepest feature map goes
through a PSPNet-style pyramid pooling module (Zhao et al., CVPR 2017) with bins 1, 2, 3, 6;
the pooled features are upsampled, concatenated with the input and projected back to the
same width, then the LinkNet decoder (smp) restores resolution.

Input ``(B, C, H, W)`` with H, W multiples of 32; output ``{"seg": (B, classes, H, W)}`` logits.
"""

from __future__ import annotations

from typing import Callable

import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.nn import functional as F


class PyramidPooling(nn.Module):
    """Pyramid pooling module: ``(B, C, h, w)`` -> ``(B, C, h, w)``.

    Args:
        channels: Input (= output) channels.
        bins: Pooled grid sizes.
    """

    def __init__(self, channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        inner = max(channels // len(bins), 8)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(channels, inner, 1, bias=False),
                nn.BatchNorm2d(inner),
                nn.ReLU(inplace=True),
            )
            for b in bins
        )
        self.project = nn.Sequential(
            nn.Conv2d(channels + inner * len(bins), channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pooled = [F.interpolate(s(x), size=(h, w), mode="bilinear", align_corners=False) for s in self.stages]
        return self.project(torch.cat([x, *pooled], dim=1))


class PPLinkNet(nn.Module):
    """LinkNet (smp) + pyramid pooling on the deepest encoder features.

    Args:
        encoder_name: smp encoder (``encoder_weights=None``: no download).
        in_channels: Input bands.
        classes: Output classes (1 for binary roads).
        bins: Pyramid bins.
    """

    def __init__(
        self,
        encoder_name: str = "resnet18",
        in_channels: int = 3,
        classes: int = 1,
        bins: tuple[int, ...] = (1, 2, 3, 6),
    ) -> None:
        super().__init__()
        net = smp.Linknet(encoder_name, encoder_weights=None, in_channels=in_channels, classes=classes)
        self.encoder, self.decoder, self.head = net.encoder, net.decoder, net.segmentation_head
        self.ppm = PyramidPooling(self.encoder.out_channels[-1], tuple(bins))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = list(self.encoder(x))
        feats[-1] = self.ppm(feats[-1])
        from rsviz.models.architectures import _decoder_takes_list

        y = self.decoder(feats) if _decoder_takes_list() else self.decoder(*feats)
        return {"seg": self.head(y)}


def poly_lr_lambda(total_steps: int, power: float = 0.9) -> Callable[[int], float]:
    """Poly learning-rate schedule factor ``(1 - step / total) ** power`` (DeepLab / PP-LinkNet)."""

    def f(step: int) -> float:
        return max(0.0, 1.0 - step / max(total_steps, 1)) ** power

    return f
