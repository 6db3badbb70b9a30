"""Model runtimes other than eager PyTorch: ONNX (onnxruntime), TorchScript and ``torch.export`` programs.

Each runtime is loaded into a :class:`RuntimeNet`, an ``nn.Module`` whose ``forward`` maps a normalised
``(B, bands, H, W)`` float32 batch to the dict of raw head logits ``{head: (B, C, H, W)}`` that the
PyTorch networks of :mod:`rsviz.models.architectures` return, so :class:`rsviz.inference.predictor.Predictor`
(test-time augmentation, activation), the tiled engine's blending, its sinks and the metrics run unchanged.

Nothing here unpickles. Files are checked before they are handed to a runtime:

* ONNX (``.onnx``): parsed as an ONNX protobuf (``onnx.load(..., load_external_data=False)``); operators
  must be in the standard domains (:data:`ONNX_DOMAINS`), and tensors stored as external data must lie
  inside the model's folder.
* TorchScript (``.pt`` / ``.ts``): must be a TorchScript zip archive (``code/`` and ``constants.pkl``
  entries); a raw pickle or a ``torch.save`` checkpoint is refused before ``torch.jit.load`` sees it
  (TorchScript's own unpickler only restores TorchScript types).
* ``torch.export`` (``.pt2``): must be a PT2 archive (a zip with ``archive_format`` / ``models/`` entries) with
  no pickle inside.

A folder's ``config.json`` names the runtime: ``{"runtime": "onnx", "file": "model.onnx"}`` (also
``"torchscript"`` and ``"export"``); head outputs are named after the card's heads (ONNX output names), or
returned in the card's head order (TorchScript / export programs returning a tuple or a dict).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rsviz.errors import ModelFolderError

#: Runtimes a model folder's ``config.json`` may name, with the weights file extensions each accepts.
RUNTIMES: dict[str, tuple[str, ...]] = {
    "onnx": (".onnx",),
    "torchscript": (".pt", ".ts", ".torchscript"),
    "export": (".pt2",),
}
#: ONNX operator domains onnxruntime implements without custom-op libraries ("" is ``ai.onnx``).
ONNX_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
_PICKLE_OPS = (b"\x80",)  # pickle protocol 2+ starts with PROTO (0x80)


class RuntimeNet(nn.Module):
    """Base of the non-eager runtimes: ``forward(x) -> {head: logits}``.

    Args:
        heads: Head names in output order (the card's heads).
        runtime: One of :data:`RUNTIMES`.
        path: The loaded file.

    Attributes:
        heads: As given.
        runtime: As given.
        path: As given.
    """

    def __init__(self, heads: Sequence[str], runtime: str, path: Path) -> None:
        super().__init__()
        self.heads = tuple(heads)
        self.runtime = runtime
        self.path = path
        #: Heads whose outputs are probabilities (softmax / sigmoid applied inside the model, as Deepness
        #: models are exported); :meth:`_as_dict` turns them back into logits for the shared activation.
        self.probability_heads: tuple[str, ...] = ()

    def train(self, mode: bool = True) -> RuntimeNet:
        """Set only this module's flag: the wrapped graphs are inference-only (an exported program's module
        refuses ``train()``/``eval()``)."""
        self.training = mode
        return self

    def _as_dict(self, out: Any) -> dict[str, torch.Tensor]:
        if isinstance(out, dict):
            missing = [h for h in self.heads if h not in out]
            if missing:
                raise ModelFolderError(
                    f"{self.path.name} returns heads {sorted(out)}, the card needs {list(self.heads)} "
                    f"(missing {missing}); fix card.json's heads"
                )
            return self._logits({h: out[h] for h in self.heads})
        if isinstance(out, torch.Tensor):
            out = (out,)
        outs = list(out)
        if len(outs) != len(self.heads):
            raise ModelFolderError(
                f"{self.path.name} returns {len(outs)} outputs, the card has {len(self.heads)} heads "
                f"{list(self.heads)}; fix card.json's heads"
            )
        return self._logits(dict(zip(self.heads, outs, strict=True)))

    def _logits(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Probabilities of :attr:`probability_heads` -> logits: ``log p`` for several channels (softmax of it
        gives ``p`` back), ``logit(p)`` for one channel (sigmoid of it gives ``p`` back); clamped at 1e-7."""
        for h in self.probability_heads:
            p = out[h].float()
            out[h] = torch.logit(p, eps=1e-7) if p.shape[1] == 1 else torch.log(p.clamp_min(1e-7))
        return out

    def extra_repr(self) -> str:
        return f"runtime={self.runtime}, file={self.path.name}, heads={list(self.heads)}"


class OnnxNet(RuntimeNet):
    """An ONNX model run by onnxruntime (CUDA execution provider on a CUDA device when installed, else CPU).

    Args:
        path: ``.onnx`` file (checked by :func:`check_onnx`).
        heads: Head names; outputs are matched by name when the model's output names are the heads,
            else by position.
        device: Where inputs come from and outputs go.

    Raises:
        ModelFolderError: Not an ONNX model, or its input is not a single 4-D tensor.
        ModelFolderError: Custom-domain operators or external data outside the folder.
    """

    def __init__(self, path: Path, heads: Sequence[str], device: torch.device) -> None:
        super().__init__(heads, "onnx", path)
        import onnxruntime as ort

        check_onnx(path)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except (RuntimeError, ValueError) as exc:  # onnxruntime raises its own RuntimeError subclasses
            raise ModelFolderError(f"onnxruntime cannot load {path} ({exc}); export the model again") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelFolderError(
                f"{path.name} takes inputs {[(i.name, i.shape) for i in inputs]}; rsviz needs one (B, bands, H, W) "
                "float32 input"
            )
        self.input_name = inputs[0].name
        #: The input's fixed dimensions (None where dynamic): ``(batch, bands, height, width)``.
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.device_type = device

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the session on ``x`` (float32 ``(B, bands, H, W)``); outputs float32 on ``x``'s device.

        A model exported with a fixed batch of 1 is run one tile at a time.

        Raises:
            ModelFolderError: ``x``'s bands or tile size differ from the model's fixed ones (the message says
                which tile size to use).
        """
        fixed_b, fixed_c, fixed_h, fixed_w = self.input_shape
        if fixed_c is not None and x.shape[1] != fixed_c:
            raise ModelFolderError(f"{self.path.name} takes {fixed_c} bands, got {x.shape[1]}")
        if (fixed_h is not None and x.shape[2] != fixed_h) or (fixed_w is not None and x.shape[3] != fixed_w):
            raise ModelFolderError(
                f"{self.path.name} takes {fixed_h} x {fixed_w} px tiles only, got {x.shape[2]} x {x.shape[3]}: "
                f"set the tile size to {fixed_h}"
            )
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        if fixed_b is not None and arr.shape[0] != fixed_b:
            if fixed_b != 1:
                raise ModelFolderError(f"{self.path.name} takes batches of exactly {fixed_b} tiles")
            parts = [self.session.run(None, {self.input_name: arr[i : i + 1]}) for i in range(arr.shape[0])]
            outs = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        else:
            outs = self.session.run(None, {self.input_name: arr})
        tens = [torch.from_numpy(o).to(x.device) for o in outs]
        if set(self.heads) <= set(self.output_names):
            return self._as_dict(dict(zip(self.output_names, tens, strict=True)))
        return self._as_dict(tens)


class TorchScriptNet(RuntimeNet):
    """A TorchScript module (``torch.jit.save``) loaded with ``torch.jit.load``.

    Raises:
        ModelFolderError: The file is a pickle or a ``torch.save`` checkpoint, not a TorchScript archive.
        ModelFolderError: TorchScript cannot load it.
    """

    def __init__(self, path: Path, heads: Sequence[str], device: torch.device) -> None:
        super().__init__(heads, "torchscript", path)
        check_torchscript(path)
        try:
            self.module = torch.jit.load(str(path), map_location=device).eval()  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            raise ModelFolderError(f"torch.jit.load cannot load {path} ({exc}); save it with torch.jit.save") from exc

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the scripted module; its tuple/dict/tensor output is keyed by the heads."""
        return self._as_dict(self.module(x))


class ExportedNet(RuntimeNet):
    """A ``torch.export`` program (``torch.export.save``, ``.pt2``) loaded with ``torch.export.load``.

    Raises:
        ModelFolderError: Not a PT2 archive, or it holds a pickle.
        ModelFolderError: ``torch.export.load`` fails.
    """

    def __init__(self, path: Path, heads: Sequence[str], device: torch.device) -> None:
        super().__init__(heads, "export", path)
        check_pt2(path)
        try:
            program = torch.export.load(str(path))
        except (RuntimeError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelFolderError(
                f"torch.export.load cannot load {path} ({exc}); save it with torch.export.save"
            ) from exc
        self.module = program.module().to(device)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the exported graph; its tuple/dict output is keyed by the heads."""
        return self._as_dict(self.module(x))


_CLASSES: dict[str, type[OnnxNet] | type[TorchScriptNet] | type[ExportedNet]] = {
    "onnx": OnnxNet,
    "torchscript": TorchScriptNet,
    "export": ExportedNet,
}


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) in _PICKLE_OPS


def _zip_names(path: Path, what: str) -> list[str]:
    if _is_pickle(path):
        raise ModelFolderError(
            f"{path.name} is a Python pickle, not a {what}; rsviz never unpickles model files: "
            "export the model with torch.export.save / torch.jit.save / torch.onnx.export"
        )
    if not zipfile.is_zipfile(path):
        raise ModelFolderError(f"{path.name} is not a {what} (not a zip archive); export the model again")
    with zipfile.ZipFile(path) as z:
        return z.namelist()


def check_torchscript(path: Path) -> None:
    """Check that ``path`` is a TorchScript archive (``torch.jit.save``), not a pickle or ``torch.save`` file.

    Raises:
        ModelFolderError: A raw pickle or a ``torch.save`` checkpoint (``data.pkl`` without ``code/``).
        ModelFolderError: Not a zip archive.
    """
    names = _zip_names(path, "TorchScript archive")
    has_code = any("/code/" in n for n in names)
    has_const = any(n.endswith("/constants.pkl") for n in names)
    if not (has_code and has_const):
        raise ModelFolderError(
            f"{path.name} is a torch.save checkpoint (pickled objects), not a TorchScript archive; rsviz does "
            "not unpickle it: save the model with torch.jit.save(torch.jit.script(model)), or its state dict as "
            "safetensors"
        )


def check_pt2(path: Path) -> None:
    """Check that ``path`` is a ``torch.export`` PT2 archive without pickles.

    Raises:
        ModelFolderError: A raw pickle, or an archive with ``.pkl`` entries (``torch.save`` output).
        ModelFolderError: Not a zip archive, or not a PT2 archive.
    """
    names = _zip_names(path, "torch.export program (.pt2)")
    pkls = [n for n in names if n.endswith(".pkl")]
    if pkls:
        raise ModelFolderError(
            f"{path.name} holds pickles ({pkls[:3]}), it is not a torch.export program; rsviz does not unpickle "
            "it: save the model with torch.export.save(torch.export.export(model, (x,)), path)"
        )
    if not any(n.endswith("archive_format") for n in names):
        raise ModelFolderError(
            f"{path.name} is a zip archive but not a torch.export program (no archive_format entry); "
            "save it with torch.export.save"
        )


def check_onnx(path: Path) -> Any:
    """Parse ``path`` as ONNX (without external data) and check its operators and external data.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The ``onnx.ModelProto`` (external tensors not loaded).

    Raises:
        ModelFolderError: Not an ONNX model (no graph, not protobuf).
        ModelFolderError: An operator from a domain outside :data:`ONNX_DOMAINS` (a custom operator needs a
            native library rsviz does not load), or external data outside the model's folder.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise ModelFolderError(f"{path.name} is not an ONNX model ({exc}); export it again") from exc
    if model.ir_version <= 0 or not model.graph.node or not model.opset_import:
        raise ModelFolderError(f"{path.name} is not an ONNX model (no graph or opset); export it again")
    domains = {o.domain for o in model.opset_import} | {n.domain for n in _all_nodes(model.graph)}
    custom = sorted(domains - ONNX_DOMAINS)
    if custom:
        ops = sorted({f"{n.domain}::{n.op_type}" for n in _all_nodes(model.graph) if n.domain in custom})
        raise ModelFolderError(
            f"{path.name} uses custom operators {ops or custom} (domains {custom}); rsviz runs only standard "
            f"ONNX operators (domains {sorted(ONNX_DOMAINS)}): export without custom ops"
        )
    root = path.resolve().parent
    for t in _all_tensors(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), "")
            target = (root / loc).resolve()
            if not target.is_relative_to(root) or Path(loc).is_absolute():
                raise ModelFolderError(
                    f"{path.name}: tensor {t.name!r} has external data at {loc!r}, outside the model folder "
                    f"{root}; keep external data files beside the model"
                )
    return model


def _all_nodes(graph: Any) -> list[Any]:
    out = []
    for n in graph.node:
        out.append(n)
        for a in n.attribute:
            if a.g is not None and a.g.node:
                out += _all_nodes(a.g)
            for g in a.graphs:
                out += _all_nodes(g)
    return out


def _all_tensors(graph: Any) -> list[Any]:
    out = list(graph.initializer)
    for n in graph.node:
        for a in n.attribute:
            if a.HasField("t"):
                out.append(a.t)
            if a.g is not None and a.g.node:
                out += _all_tensors(a.g)
            for g in a.graphs:
                out += _all_tensors(g)
    return out


def runtime_for(path: Path) -> str:
    """The runtime of a weights file by its extension.

    Raises:
        ModelFolderError: An extension no runtime takes (listing those that are).
    """
    for rt, exts in RUNTIMES.items():
        if path.suffix.lower() in exts:
            return rt
    valid = sorted(e for exts in RUNTIMES.values() for e in exts)
    raise ModelFolderError(f"{path.name}: no runtime reads {path.suffix!r} files; valid: {', '.join(valid)}")


def load_runtime(
    runtime: str,
    path: Path,
    heads: Sequence[str],
    device: torch.device,
    probability_heads: Sequence[str] = (),
) -> RuntimeNet:
    """Load a weights file with a runtime into a :class:`RuntimeNet` in eval mode.

    Args:
        runtime: ``onnx``, ``torchscript`` or ``export``.
        path: The file (its extension must be one the runtime takes, :data:`RUNTIMES`).
        heads: The card's head names, in output order.
        device: Target device.
        probability_heads: Heads the file outputs as probabilities (``config.json``'s
            ``"probability_heads"``, e.g. Deepness exports with softmax inside); they are returned as logits.

    Returns:
        The module; ``forward`` takes normalised float32 NCHW and returns ``{head: raw logits}``.

    Raises:
        UnknownNameError: Unknown runtime (listing the valid ones).
        ModelFolderError: Missing file, wrong extension, or a file the runtime cannot read.
        ModelFolderError: See :func:`check_onnx`, :func:`check_torchscript`, :func:`check_pt2`.
    """
    from rsviz.errors import unknown_name

    if runtime not in _CLASSES:
        raise unknown_name("runtime", runtime, list(_CLASSES))
    if not path.is_file():
        raise ModelFolderError(f"{runtime} model file {path} is missing; copy the model folder again")
    if path.suffix.lower() not in RUNTIMES[runtime]:
        raise ModelFolderError(
            f"{path.name}: the {runtime} runtime reads {', '.join(RUNTIMES[runtime])} files, not {path.suffix!r}"
        )
    bad = [h for h in probability_heads if h not in heads]
    if bad:
        raise ModelFolderError(f"config.json's probability_heads {bad} are not heads of the card {list(heads)}")
    net = _CLASSES[runtime](path, heads, device).eval()
    net.probability_heads = tuple(probability_heads)
    return net


__all__ = [
    "RUNTIMES",
    "ONNX_DOMAINS",
    "RuntimeNet",
    "OnnxNet",
    "TorchScriptNet",
    "ExportedNet",
    "check_onnx",
    "check_torchscript",
    "check_pt2",
    "runtime_for",
    "load_runtime",
]
