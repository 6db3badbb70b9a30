"""Export a registered PyTorch model to ONNX or a ``torch.export`` program, as a model folder rsviz loads back.

The folder holds the weights file (``model.onnx`` or ``model.pt2``), the source model's ``card.json`` and a
``config.json`` naming the runtime (``{"runtime": "onnx", "file": "model.onnx", "source": NAME}``; see
:mod:`rsviz.models.runtimes`). The exported graph maps normalised float32 ``(B, bands, H, W)`` to the raw
logits of the card's dense heads, in the card's head order (ONNX outputs are named after the heads); the
batch size and tile size are dynamic where the network allows it, so the tiled engine runs it on any tile.

Batch norms are folded into the convolutions first (:func:`rsviz.models.fusion.fold_batchnorm`), as the
PyTorch engine runs them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from rsviz.errors import ModelFolderError, unknown_name
from rsviz.models.api import LoadedModel, load_model, model_dir
from rsviz.models.fusion import inference_net

#: Export formats, with the runtime (:data:`rsviz.models.runtimes.RUNTIMES`) and file name each writes.
FORMATS: dict[str, tuple[str, str]] = {"onnx": ("onnx", "model.onnx"), "pt2": ("export", "model.pt2")}
#: ONNX opset of exported graphs.
ONNX_OPSET = 18


class _Heads(nn.Module):
    """``net`` with its dict output as a tuple in ``heads`` order (ONNX and export outputs are positional)."""

    def __init__(self, net: nn.Module, heads: tuple[str, ...]) -> None:
        super().__init__()
        self.net = net
        self.heads = heads

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(x)
        return tuple(out[h] for h in self.heads)


def _dense_heads(lm: LoadedModel) -> tuple[str, ...]:
    from rsviz.inference.predictor import DENSE_KINDS

    heads = tuple(k for k, h in lm.card.heads.items() if h.kind in DENSE_KINDS)
    if not heads:
        raise ModelFolderError(
            f"model {lm.name!r} has no per-pixel head (kinds {DENSE_KINDS}); only segmentation models export"
        )
    return heads


def export_model(name: str, fmt: str, out: str | os.PathLike[str] | None = None, *, tile: int | None = None) -> Path:
    """Export a registered model to a new model folder.

    Args:
        name: Registry name of a PyTorch (safetensors) model with dense heads.
        fmt: ``onnx`` or ``pt2``.
        out: Target folder (created; default ``./<name>-<fmt>``). Must not hold a model already.
        tile: Example tile side, pixels (default: the card's tile size); shapes stay dynamic.

    Returns:
        The model folder (``card.json``, ``config.json``, ``mlm.json``, the weights file).

    Raises:
        UnknownNameError: Unknown model or format (listing the valid ones).
        ModelFolderError: The model has no dense head, or ``out`` already holds a model.
    """
    if fmt not in FORMATS:
        raise unknown_name("export format", fmt, list(FORMATS))
    runtime, fname = FORMATS[fmt]
    lm = load_model(name, "cpu")
    heads = _dense_heads(lm)
    d = Path(out) if out is not None else Path(f"{name}-{fmt}")
    if (d / "card.json").exists():
        raise ModelFolderError(f"{d} already holds a model (card.json); choose another --out folder")
    d.mkdir(parents=True, exist_ok=True)
    net = _Heads(inference_net(lm.net), heads).eval()
    side = tile or lm.card.input.tile_size
    x = torch.zeros(2, lm.card.in_channels, side, side)
    if fmt == "onnx":
        _export_onnx(net, x, heads, d / fname)
    else:
        _export_pt2(net, x, d / fname)
    shutil.copyfile(model_dir(name) / "card.json", d / "card.json")
    config = {"runtime": runtime, "file": fname, "source": name, "heads": list(heads)}
    (d / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    from rsviz.models.mlm import write_mlm

    write_mlm(lm.card, d, weights=fname)
    return d


def _export_pt2(net: nn.Module, x: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        auto = torch.export.Dim.AUTO
        prog = torch.export.export(net, (x,), dynamic_shapes=({0: auto, 2: auto, 3: auto},))
    torch.export.save(prog, str(path))


def _export_onnx(net: nn.Module, x: torch.Tensor, heads: tuple[str, ...], path: Path) -> None:
    auto = torch.export.Dim.AUTO
    with torch.no_grad():
        torch.onnx.export(
            net,
            (x,),
            str(path),
            input_names=["input"],
            output_names=list(heads),
            dynamic_shapes=({0: auto, 2: auto, 3: auto},),
            opset_version=ONNX_OPSET,
            dynamo=True,
            external_data=False,
        )
