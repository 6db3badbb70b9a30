"""Tiny deterministic models registered only in tests (constant and pointwise)."""

from __future__ import annotations

import os

import torch
from torch import nn

from rsviz.datasets.buildings import BUILDING_CLASSES
from rsviz.models import architectures
from rsviz.models.api import register_model_dir, save_pretrained
from rsviz.models.card import HeadSpec, InputSpec, ModelCard

#: Device of the inference tests (``RSVIZ_TEST_DEVICE=cuda`` on a GPU machine, as scripts/device_check.sh runs them).
TEST_DEVICE = os.environ.get("RSVIZ_TEST_DEVICE", "cpu")


class ConstantNet(nn.Module):
    """Outputs the same logits everywhere (seg logit 0.3, edge -1.0, height 2.5)."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, _, h, w = x.shape
        one = torch.ones((b, 1, h, w), device=x.device) + 0 * self.dummy
        return {"seg": 0.3 * one, "edge": -1.0 * one, "height": 2.5 * one}


class PointwiseNet(nn.Module):
    """1x1 convolutions: exactly translation-equivariant, so tiling must leave no seams."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.seg = nn.Conv2d(in_channels, 1, 1)
        self.edge = nn.Conv2d(in_channels, 1, 1)
        self.recon = nn.Conv2d(in_channels, in_channels, 1)

    def forward(self, x):
        return {"seg": self.seg(x) * 3, "edge": self.edge(x), "recon": self.recon(x)}


def register(tmp_path) -> None:
    """Save ``toy-constant`` and ``toy-pointwise`` into ``tmp_path`` and register the folder."""
    architectures.ARCHITECTURES["toy_constant"] = ConstantNet
    architectures.ARCHITECTURES["toy_pointwise"] = PointwiseNet
    inp = InputSpec(bands=["red", "green", "blue"], tile_size=64, overlap=0.25, gsd_range_m=[0.05, 1.0])
    c1 = ModelCard(
        "toy-constant",
        "constant",
        "buildings",
        "constant",
        "none",
        heads={"seg": HeadSpec("binary"), "edge": HeadSpec("binary"), "height": HeadSpec("regression", units="m")},
        input=inp,
        classes=list(BUILDING_CLASSES),
    )
    save_pretrained(ConstantNet(), {"arch": "toy_constant"}, c1, tmp_path / "toy-constant")
    c2 = ModelCard(
        "toy-pointwise",
        "pointwise",
        "buildings",
        "1x1 conv",
        "none",
        heads={"seg": HeadSpec("binary"), "edge": HeadSpec("binary"), "recon": HeadSpec("reconstruction", 3)},
        input=inp,
        classes=list(BUILDING_CLASSES),
    )
    save_pretrained(PointwiseNet(), {"arch": "toy_pointwise"}, c2, tmp_path / "toy-pointwise", half=False)
    register_model_dir(tmp_path)
