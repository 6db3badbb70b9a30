"""Network architectures of the bundled models, built from a JSON-able config.

Every model's ``forward`` returns a dict of heads, each ``(B, C, H, W)`` float logits
or values on the input grid (H and W multiples of the encoder's output stride, 32):

* ``seg``: class logits (C = number of classes; C = 1 for binary, sigmoid applies);
* ``edge``: boundary logit (C = 1);
* ``recon``: reconstruction of the normalised input (C = input bands);
* ``height``: height regression (C = 1).
"""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from rsviz.errors import unknown_name


class MultiTaskUnet(nn.Module):
    """U-Net (smp) with a shared encoder-decoder and one 3x3-conv head per task.

    Reproduces the multi-task layout of Ekim & Sertel, "A Multi-Task Deep Learning
    Framework for Building Footprint Segmentation", IGARSS 2021: building
    segmentation, building boundary and image reconstruction heads on a shared
    U-Net. With ``heads={"seg": 1}`` it is the single-task baseline.

    Args:
        encoder_name: smp encoder name (built with ``encoder_weights=None``: no download).
        in_channels: Input bands.
        heads: Head name -> output channels, e.g. ``{"seg": 1, "edge": 1, "recon": 3}``.
        decoder_channels: U-Net decoder widths, 5 stages.

    Shapes:
        input ``(B, in_channels, H, W)`` float32 normalised; output dict of
        ``(B, heads[name], H, W)``.
    """

    def __init__(
        self,
        encoder_name: str = "mobilenet_v2",
        in_channels: int = 3,
        heads: dict[str, int] | None = None,
        decoder_channels: tuple[int, ...] | list[int] = (128, 64, 32, 16, 16),
    ) -> None:
        super().__init__()
        heads = dict(heads or {"seg": 1})
        net = smp.Unet(
            encoder_name,
            encoder_weights=None,
            in_channels=in_channels,
            classes=1,
            decoder_channels=tuple(decoder_channels),
        )
        self.encoder = net.encoder
        self.decoder = net.decoder
        c = decoder_channels[-1]
        self.heads = nn.ModuleDict({k: nn.Conv2d(c, n, kernel_size=3, padding=1) for k, n in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        y = self.decoder(feats) if _decoder_takes_list() else self.decoder(*feats)
        return {k: h(y) for k, h in self.heads.items()}


_TAKES_LIST: bool | None = None


def _decoder_takes_list() -> bool:
    """smp >= 0.5 decoders take the feature list; older ones take ``*features``."""
    global _TAKES_LIST
    if _TAKES_LIST is None:
        import inspect

        from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder

        params = list(inspect.signature(UnetDecoder.forward).parameters.values())
        _TAKES_LIST = not any(p.kind == p.VAR_POSITIONAL for p in params)
    return _TAKES_LIST


class SmpWrapper(nn.Module):
    """Any smp segmentation model (DeepLabV3+, U-Net, LinkNet...) exposing a ``seg`` head.

    Used for user-imported checkpoints: ``smp_arch`` is an smp architecture name
    (``smp.create_model``) and the state dict keys are smp's own, under ``net.``.
    """

    def __init__(self, smp_arch: str, encoder_name: str, in_channels: int, classes: int, **kwargs: Any) -> None:
        super().__init__()
        self.net = smp.create_model(
            smp_arch,
            encoder_name=encoder_name,
            encoder_weights=None,
            in_channels=in_channels,
            classes=classes,
            **kwargs,
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"seg": self.net(x)}


def _s2(**kwargs: Any) -> nn.Module:
    from rsviz.models.s2 import S2MultiLabel

    return S2MultiLabel(**kwargs)


def _pplinknet(**kwargs: Any) -> nn.Module:
    from rsviz.models.pplinknet import PPLinkNet

    return PPLinkNet(**kwargs)


ARCHITECTURES: dict[str, Any] = {
    "mtl_unet": MultiTaskUnet,
    "smp": SmpWrapper,
    "s2_multilabel": _s2,
    "pplinknet": _pplinknet,
}


def build_model(config: dict[str, Any]) -> nn.Module:
    """Instantiate an architecture from its config (``{"arch": name, **kwargs}``).

    Raises:
        UnknownNameError: For an unknown ``arch``, listing the valid ones.
    """
    cfg = dict(config)
    arch = cfg.pop("arch")
    if arch not in ARCHITECTURES:
        raise unknown_name("architecture", arch, list(ARCHITECTURES))
    return ARCHITECTURES[arch](**cfg)
