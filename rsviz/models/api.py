"""Model registry: ``list_models``, ``get_model_card``, ``load_model`` (torchgeo ``models/api.py`` style).

Bundled models live in the repository's ``weights/`` folder; further folders can be
added with the ``RSVIZ_MODELS_PATH`` environment variable (``os.pathsep``-separated)
or :func:`register_model_dir`. Loading never unpickles: weights are safetensors,
and imported ``.pt``/``.pth`` checkpoints are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsviz.errors import ModelFolderError, RsvizError, unknown_name
from rsviz.models.architectures import build_model
from rsviz.models.card import ModelCard
from rsviz.resources import weights_dir

#: The bundled model store as resolved at import (see :func:`rsviz.resources.weights_dir`).
BUNDLED_DIR = weights_dir()
ENV_VAR = "RSVIZ_MODELS_PATH"
_EXTRA_DIRS: list[Path] = []


def register_model_dir(path: str | os.PathLike[str]) -> None:
    """Add a folder whose sub-folders are models (each with ``card.json``)."""
    p = Path(path).resolve()
    if p not in _EXTRA_DIRS:
        _EXTRA_DIRS.append(p)


def _search_dirs() -> list[Path]:
    """Bundled models first (never shadowed), then ``RSVIZ_MODELS_PATH``, registered folders and the user store
    (:mod:`rsviz.models.store`, ``<workspace>/models``)."""
    from rsviz.resources import workspace_dir

    env = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [weights_dir(), *env, *_EXTRA_DIRS, workspace_dir() / "models"]


def _model_dirs() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for root in _search_dirs():
        if root.is_dir():
            for d in sorted(root.iterdir()):
                if (d / "card.json").is_file() and d.name not in out:
                    out[d.name] = d
    return out


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_model_dirs())


def model_dir(name: str) -> Path:
    """Folder of a model.

    Raises:
        UnknownNameError: Listing the valid names.
    """
    dirs = _model_dirs()
    if name not in dirs:
        raise unknown_name("model", name, list(dirs))
    return dirs[name]


def get_model_card(name: str) -> ModelCard:
    """The :class:`ModelCard` of a registered model.

    Raises:
        UnknownNameError: Unknown name, listing valid ones.
        ModelFolderError: Its ``card.json`` is cut off, not JSON or lacks keys.
    """
    return ModelCard.load(model_dir(name) / "card.json")


def model_problem(name: str) -> str | None:
    """Why a registered model cannot be used, or None when its folder looks sound.

    Cheap: reads ``card.json`` and ``config.json`` and the header of ``model.safetensors``
    (its declared size must match the file's), without loading the weights.

    Args:
        name: Registry name.

    Returns:
        The reason (the :class:`ModelFolderError` message), or None.
    """
    d = model_dir(name)
    try:
        ModelCard.load(d / "card.json")
        config = json.loads((d / "config.json").read_text(encoding="utf-8"))
        if isinstance(config, dict) and "runtime" in config:
            wfile = d / str(config.get("file", ""))
            if not wfile.is_file():
                return f"{config['runtime']} model file {wfile} is missing; copy the model folder again"
        else:
            check_weights_file(d / "model.safetensors")
    except ModelFolderError as exc:
        return str(exc)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{d / 'config.json'} cannot be read ({exc})"
    return None


def check_weights_file(path: Path) -> None:
    """Check a safetensors file's header and that the file is as long as the header says.

    Raises:
        ModelFolderError: Missing, truncated or not a safetensors file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n <= 0 or n > 100_000_000:
                raise ModelFolderError(f"{path} is not a safetensors file (bad header); copy the model again")
            header = json.loads(f.read(n))
            size = f.seek(0, os.SEEK_END)
    except OSError as exc:
        raise ModelFolderError(f"weights {path} cannot be read ({exc.strerror}); copy the model folder again") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{path} has a corrupt safetensors header ({exc}); copy the model again") from exc
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelFolderError(f"{path} has a malformed safetensors header ({exc!r}); copy the model again") from exc
    if size < 8 + n + end:
        raise ModelFolderError(
            f"weights {path} are truncated ({size} bytes, the header declares {8 + n + end}); copy the model again"
        )


def available_devices() -> list[str]:
    """Device types usable here, in :func:`resolve_device`'s ``auto`` order, then ``cpu``: e.g. ``["cuda", "cpu"]``."""
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return [*out, "cpu"]


def device_label(device: str | torch.device | None = "auto") -> str:
    """Human name of a device: ``"CUDA: <GPU name>"``, ``"Apple MPS"`` or ``"CPU (<n> threads)"``."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(dev)}"
    if dev.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else Apple MPS, else CPU; otherwise ``torch.device(device)``.

    Raises:
        RsvizError: If the requested device is not available here.
    """
    if device in (None, "auto"):
        return torch.device(available_devices()[0])
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RsvizError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RsvizError("Apple MPS was requested but is not available; use --device cpu or auto")
    return dev


@dataclass
class LoadedModel:
    """A model ready for inference.

    Attributes:
        name: Registry name.
        card: Its :class:`ModelCard`.
        net: The ``nn.Module`` in eval mode on ``device`` (fp32 weights).
        device: Where it runs.
    """

    name: str
    card: ModelCard
    net: nn.Module
    device: torch.device


def load_model(name: str, device: str | torch.device | None = "auto") -> LoadedModel:
    """Load a registered model for inference.

    Args:
        name: Registry name (see :func:`list_models`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...

    Returns:
        :class:`LoadedModel` with fp32 weights in eval mode.

    Raises:
        UnknownNameError: Unknown name, listing valid ones.
        RsvizError: Missing or inconsistent weights.
    """
    return from_pretrained(model_dir(name), device, name=name)


def from_pretrained(
    directory: str | os.PathLike[str], device: str | torch.device | None = "auto", *, name: str | None = None
) -> LoadedModel:
    """Load a model folder written by :func:`save_pretrained` (``config.json``, ``model.safetensors``,
    ``card.json``), registered or not, e.g. a candidate that a packager wrote outside ``weights/``.

    A folder with only an MLM item (``mlm.json``) beside its weights is described by it
    (:func:`rsviz.models.importers.card_from_mlm`).

    A ``config.json`` with a ``runtime`` key (``{"runtime": "onnx", "file": "model.onnx"}``, also
    ``torchscript`` and ``export``) loads that file through :func:`rsviz.models.runtimes.load_runtime`
    instead: ``net`` is then a :class:`rsviz.models.runtimes.RuntimeNet` with the same head outputs.

    Args:
        directory: The folder.
        device: As in :func:`load_model`.
        name: Name of the loaded model (default: the folder's name).

    Returns:
        :class:`LoadedModel` with fp32 weights in eval mode.

    Raises:
        RsvizError: Missing or inconsistent weights.
        FileNotFoundError: No ``card.json`` or ``config.json`` in ``directory``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(directory)
    name = name or d.name
    if not (d / "card.json").is_file() and (d / "mlm.json").is_file():  # the MLM item is the only descriptor
        from rsviz.models.importers import card_from_mlm

        mm = card_from_mlm(d / "mlm.json", name=name)
        card, config = mm.card, mm.config
    else:
        card = ModelCard.load(d / "card.json")
        try:
            config = json.loads((d / "config.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFolderError(
                f"model {name!r}: {d / 'config.json'} cannot be read ({exc}); restore the model folder"
            ) from exc
    if "runtime" in config:  # ONNX / TorchScript / torch.export file (rsviz.models.runtimes); never unpickled
        from rsviz.models.runtimes import load_runtime

        dev = resolve_device(device)
        heads = config.get("heads") or list(card.heads)
        rnet = load_runtime(
            str(config["runtime"]),
            d / str(config.get("file", "")),
            heads,
            dev,
            probability_heads=tuple(config.get("probability_heads", ())),
        )
        return LoadedModel(name, card, rnet, dev)
    net = build_model(config)
    wpath = d / "model.safetensors"
    if not wpath.is_file():
        raise ModelFolderError(f"model {name!r} has no model.safetensors in {d}")
    try:
        state = dequantize_state(load_file(str(wpath)))
    except (SafetensorError, OSError, ValueError) as exc:  # a truncated file: SafetensorError
        raise ModelFolderError(
            f"model {name!r}: weights {wpath} cannot be read ({exc}); the file is truncated or corrupt: "
            "copy the model folder again"
        ) from exc
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RsvizError(
            f"weights of {name!r} do not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    dev = resolve_device(device)
    net = net.to(dev).eval()
    return LoadedModel(name, card, net, dev)


@functools.lru_cache(maxsize=8)
def load_model_cached(name: str, device: str = "auto") -> LoadedModel:
    """:func:`load_model` once per ``(name, device)`` for the whole process (the app and scene classification)."""
    return load_model(name, device)


_Q8, _SCALE = ".__int8", ".__scale"


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 quantisation of a weight ``(out, ...)``.

    Returns:
        ``(q, scale)``: int8 ``q`` of ``w``'s shape in [-127, 127] and fp32 ``scale`` ``(out,)``
        with ``w ~= q * scale`` (error at most ``scale / 2`` per weight).
    """
    w = w.detach().float()
    scale = w.abs().reshape(w.shape[0], -1).amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(w / scale.view(-1, *([1] * (w.dim() - 1)))).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp32 state dict from stored tensors: int8 pairs (``<key>.__int8`` + ``<key>.__scale``) are
    expanded, everything else is cast to fp32."""
    out = {}
    for k, v in state.items():
        if k.endswith(_SCALE):
            continue
        if k.endswith(_Q8):
            base = k[: -len(_Q8)]
            scale = state[base + _SCALE].float()
            out[base] = v.float() * scale.view(-1, *([1] * (v.dim() - 1)))
        else:
            out[k] = v.float()
    return out


def stored_state(net: nn.Module, *, half: bool = True, int8_min_numel: int | None = None) -> dict[str, torch.Tensor]:
    """``net``'s state dict as :func:`save_pretrained` writes it (CPU tensors).

    Floating tensors become fp16 when ``half``; floating weights with >= 2 dims and at least
    ``int8_min_numel`` elements become ``<key>.__int8`` / ``<key>.__scale`` pairs (:func:`quantize_int8`).
    """
    state = {}
    for k, v in net.state_dict().items():
        v = v.detach().cpu().contiguous()
        if int8_min_numel and v.is_floating_point() and v.dim() >= 2 and v.numel() >= int8_min_numel:
            state[k + _Q8], state[k + _SCALE] = quantize_int8(v)
            continue
        state[k] = v.half() if half and v.is_floating_point() else v
    return state


def as_stored(net: nn.Module, *, half: bool = True, int8_min_numel: int | None = None) -> nn.Module:
    """Replace ``net``'s weights, in place, by what loading them back from :func:`save_pretrained` with
    the same options gives, so a card's metrics are measured on the weights as shipped. Returns ``net``."""
    net.load_state_dict(dequantize_state(stored_state(net, half=half, int8_min_numel=int8_min_numel)))
    return net


def save_pretrained(
    net: nn.Module,
    config: dict[str, Any],
    card: ModelCard,
    directory: str | os.PathLike[str],
    *,
    half: bool = True,
    int8_min_numel: int | None = None,
    readme: str | None = None,
) -> Path:
    """Write a model folder: ``config.json``, ``model.safetensors``, ``card.json``, ``README.md``.

    Args:
        net: Trained module (its ``state_dict`` is saved).
        config: Architecture config accepted by :func:`build_model`.
        card: Model card.
        directory: Target folder (created).
        half: Store floating tensors as fp16 (halves the size; loaded back as fp32).
        int8_min_numel: If set, conv / linear weights with at least this many elements are stored
            as symmetric per-output-channel int8 (:func:`quantize_int8`) to meet a size budget;
            they load back as fp32 (:func:`dequantize_state`).
        readme: Human-readable card text; generated from the card if None.

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = stored_state(net, half=half, int8_min_numel=int8_min_numel)
    meta = {"format": "pt", "rsviz_card": card.name}
    if int8_min_numel:
        meta["rsviz_quantisation"] = f"int8 per output channel for weights >= {int8_min_numel} elements"
    save_file(state, str(d / "model.safetensors"), metadata=meta)
    (d / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    card.save(d / "card.json")
    (d / "README.md").write_text(readme or render_card_markdown(card), encoding="utf-8")
    return d


def render_card_markdown(card: ModelCard) -> str:
    """Short human-readable model card (Markdown)."""
    lines = [
        f"# {card.title}",
        "",
        f"`{card.name}` — task: **{card.task}**",
        "",
        f"**Architecture:** {card.architecture}",
        "",
        f"**Reproduces:** {card.paper}",
        "",
        f"**Input:** bands {', '.join(card.input.bands)} ({card.input.dtype}, divided by {card.input.scale:g}, "
        f"normalised with mean {card.input.mean} / std {card.input.std}); GSD {card.input.gsd_range_m[0]:g}-"
        f"{card.input.gsd_range_m[1]:g} m; tile {card.input.tile_size} px, overlap {card.input.overlap:g}"
        + (
            "; test-time augmentation (8 flips/rotations) on by default, as the metrics were measured"
            if card.input.tta
            else ""
        )
        + ".",
        "",
        "**Heads:** "
        + "; ".join(
            f"`{k}` ({h.kind}, {h.channels} ch{', ' + h.units if h.units else ''})" for k, h in card.heads.items()
        ),
        "",
    ]
    if card.classes:
        lines += ["**Classes:** " + ", ".join(f"{c.id} {c.name} ({c.hex})" for c in card.classes), ""]
    if card.training_data:
        lines += ["## Training data", ""]
        lines += [
            f"- {t.get('dataset')}: {t.get('splits', '')} — {t.get('licence', '')}. {t.get('attribution', '')}"
            for t in card.training_data
        ]
        lines += [""]
    if card.metrics:
        lines += [
            "## Measured metrics",
            "",
            "| split | " + " | ".join(sorted({k for m in card.metrics.values() for k in m})) + " |",
        ]
        keys = sorted({k for m in card.metrics.values() for k in m})
        lines += ["|---" * (len(keys) + 1) + "|"]
        for split, m in card.metrics.items():
            lines += [f"| {split} | " + " | ".join(_fmt(m.get(k)) for k in keys) + " |"]
        lines += [""]
    if card.extra:
        lines += ["## Notes", "", "```json", json.dumps(card.extra, indent=2), "```", ""]
    lines += [f"Weights licence: {card.licence}.", ""]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def import_checkpoint(
    checkpoint: str | os.PathLike[str],
    card: ModelCard | dict[str, Any],
    config: dict[str, Any],
    directory: str | os.PathLike[str],
) -> Path:
    """Import a user's own smp checkpoint with a card they wrote, into a model folder.

    The checkpoint is a ``.safetensors`` file, or a ``.pt``/``.pth`` state dict read
    with ``torch.load(weights_only=True)`` (never unpickling arbitrary objects); a
    ``{"state_dict": ...}`` wrapper and a ``model.``/``net.`` prefix are accepted.

    Args:
        checkpoint: Weights file.
        card: Card (or its dict) describing bands, normalisation, classes and colours.
        config: Architecture config, e.g. ``{"arch": "smp", "smp_arch": "DeepLabV3Plus",
            "encoder_name": "resnet34", "in_channels": 3, "classes": 8}``.
        directory: Target model folder; register its parent with :func:`register_model_dir`.

    Returns:
        The model folder.

    Raises:
        RsvizError: If the weights do not fit the config or the card's band/class counts.
    """
    from safetensors.torch import load_file

    card = card if isinstance(card, ModelCard) else ModelCard.from_dict(card)
    ckpt = Path(checkpoint)
    if ckpt.suffix == ".safetensors":
        state: dict[str, Any] = load_file(str(ckpt))
    else:
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
            raise RsvizError(
                f"cannot read {ckpt.name} as a plain state dict ({exc}); save it with torch.save(model.state_dict())"
            ) from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    net = build_model(config)
    target = set(net.state_dict())
    fixed = {}
    for k, v in state.items():
        for cand in (k, f"net.{k}", k.removeprefix("model."), "net." + k.removeprefix("model.")):
            if cand in target:
                fixed[cand] = v
                break
    missing = target - set(fixed)
    if missing:
        raise RsvizError(
            f"{ckpt.name} does not fit {config}: {len(missing)} missing tensors, e.g. {sorted(missing)[:3]}"
        )
    net.load_state_dict(fixed)
    if config.get("in_channels", card.in_channels) != card.in_channels:
        raise RsvizError(
            f"card lists {card.in_channels} bands but the config has in_channels={config.get('in_channels')}"
        )
    seg = card.heads.get("seg")
    if seg and seg.kind == "multiclass" and card.classes and len(card.classes) != seg.channels:
        raise RsvizError(f"card lists {len(card.classes)} classes but the seg head has {seg.channels} channels")
    return save_pretrained(net, config, card, directory, half=False)


__all__ = [
    "list_models",
    "get_model_card",
    "load_model",
    "save_pretrained",
    "import_checkpoint",
    "register_model_dir",
    "resolve_device",
    "LoadedModel",
    "RsvizError",
    "unknown_name",
]
