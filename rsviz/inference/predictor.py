"""The network runner of tiled inference: raw tiles in, activated per-pixel outputs out.

:class:`Predictor` is the ``predictor(batch) -> tensor`` callable that
:mod:`rsviz.inference.sliding_window` blends (MONAI's ``sliding_window_inference`` takes the
network the same way). It normalises the raw tiles (:mod:`rsviz.models.preprocessing`), runs a copy
of the network with its batch norms folded into the convolutions (:func:`rsviz.models.fusion.inference_net`)
in channels_last layout under autocast, optionally averages test-time augmentations, and activates
each dense head into one float32 channel stack described by :attr:`Predictor.layout`.
"""

from __future__ import annotations

import torch
from torch import nn

from rsviz.inference.precision import resolve_precision
from rsviz.models.api import LoadedModel
from rsviz.models.card import HeadSpec
from rsviz.models.fusion import TRACE_GATE, inference_net
from rsviz.models.preprocessing import Normalisation
from rsviz.models.runtimes import RuntimeNet

#: Head kinds with a per-pixel output (``multilabel`` heads classify whole patches).
DENSE_KINDS = ("binary", "multiclass", "regression", "reconstruction")

#: (rotation k of ``torch.rot90``, horizontal flip) of the test-time augmentations; the last four need square tiles.
_TTA_ALL = ((0, False), (0, True), (2, False), (2, True))
_TTA_SQUARE = ((1, False), (3, False), (1, True), (3, True))


class Predictor:
    """Runs a loaded model on batches of raw tiles.

    Args:
        lm: The model (its card says the input normalisation and the heads).
        tta: Average over flips and 90° rotations (8 transforms on square tiles, 4 otherwise) and add a
            ``tta_var`` channel (variance of the ``seg`` probabilities across transforms, mean over classes).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see :func:`rsviz.inference.precision.resolve_precision`);
            a :class:`rsviz.models.runtimes.RuntimeNet` (ONNX, TorchScript, export) always runs in its own precision.

    Attributes:
        layout: ``[(head name, channels)]`` in channel order of the output stack: each dense head of the
            card (``seg``, ``edge``, ``recon``, ``height``...), then ``("tta_var", 1)`` with TTA.
        channels: Total channels (sum over :attr:`layout`).
        heads: Dense heads of the card by name.
        seg_kind: Kind of the ``seg`` head (``binary`` / ``multiclass``) or None.
        amp_dtype: Autocast dtype, None for fp32.
        device: Compute device.

    Raises:
        ModelInputError: ``precision`` is unknown or unsupported on the model's device.
    """

    def __init__(self, lm: LoadedModel, tta: bool, precision: str = "auto") -> None:
        self.card = lm.card
        self.device: torch.device = lm.device
        self.norm = Normalisation.from_spec(self.card.input)
        # (raw / scale - mean) / std == raw * gain + bias, applied in place
        self.gain, self.bias = self.norm.affine(self.device)
        self.mean, self.std = self.norm.statistics(self.device)
        self.tta = tta
        self.heads: dict[str, HeadSpec] = {k: h for k, h in self.card.heads.items() if h.kind in DENSE_KINDS}
        seg = self.heads.get("seg")
        self.seg_kind: str | None = seg.kind if seg else None
        self.layout: list[tuple[str, int]] = [(k, h.channels) for k, h in self.heads.items()]
        if tta and seg:
            self.layout.append(("tta_var", 1))
        self.channels = sum(c for _, c in self.layout)
        self.amp_dtype: torch.dtype | None = resolve_precision(precision, self.device)
        if isinstance(lm.net, RuntimeNet):  # ONNX / TorchScript / export: its own graph, contiguous fp32 input
            self.channels_last = False
            self.net: nn.Module = lm.net
            self.amp_dtype = None
        else:
            # channels_last: NHWC convolutions (cuDNN / oneDNN) are faster on GPUs and CPUs alike
            self.channels_last = self.device.type in ("cuda", "cpu")
            # batch norms folded into their convolutions (a cached copy; lm.net is left as it is)
            self.net = inference_net(lm.net, channels_last=self.channels_last)
        self._buffers: dict[str, torch.Tensor] = {}

    def _buffer(self, key: str, shape: tuple[int, ...], fmt: torch.memory_format) -> torch.Tensor:
        """A float32 scratch tensor reused across batches of the same shape (no allocation and first-touch
        page faults per batch); the caller consumes an output before the next call."""
        buf = self._buffers.get(key)
        if buf is None or tuple(buf.shape) != shape:
            buf = torch.empty(shape, dtype=torch.float32, device=self.device, memory_format=fmt)
            self._buffers[key] = buf
        return buf

    def _net(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor]
        with TRACE_GATE.shared():  # never while another thread traces a model (rsviz.models.fusion.TraceGate)
            if self.amp_dtype is not None:
                with torch.autocast(self.device.type, dtype=self.amp_dtype):
                    out = self.net(x)  # half-precision outputs; cast to float32 on activation
                    return out
            out = self.net(x)
            return out

    def _activate(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Activated float32 copies of the dense heads of a raw network output."""
        res = {}
        for k, h in self.heads.items():
            v = out[k].float()
            if h.kind == "binary":
                v = torch.sigmoid(v)
            elif h.kind == "multiclass":
                v = torch.softmax(v, dim=1)
            elif h.kind == "reconstruction":
                v = self.norm.denormalise(v, self.mean, self.std)
            res[k] = v
        return res

    def _activate_into(self, out: dict[str, torch.Tensor], res: torch.Tensor) -> torch.Tensor:
        """Activate the raw head outputs straight into the channel slices of ``res`` (float32,
        ``(B, channels, th, tw)``): one cast/layout copy plus in-place activation per head, no
        intermediate per-head tensors and no concatenation."""
        c = 0
        for k, n in self.layout:
            h, v, dst = self.heads[k], out[k], res[:, c : c + n]
            if h.kind == "multiclass":
                dst.copy_(torch.softmax(v, dim=1, dtype=torch.float32))
            else:
                dst.copy_(v)
                if h.kind == "binary":
                    dst.sigmoid_()
                elif h.kind == "reconstruction":
                    self.norm.denormalise_(dst, self.mean, self.std)
            c += n
        return res

    def _tta(self, x: torch.Tensor) -> torch.Tensor:
        tfs = _TTA_ALL + (_TTA_SQUARE if x.shape[-1] == x.shape[-2] else ())
        acc: dict[str, torch.Tensor] = {}
        sq: torch.Tensor | None = None
        for k, flip in tfs:
            xt = torch.rot90(x, k, dims=(-2, -1))
            if flip:
                xt = torch.flip(xt, dims=(-1,))
            for name, v in self._activate(self._net(xt)).items():
                if flip:
                    v = torch.flip(v, dims=(-1,))
                v = torch.rot90(v, -k, dims=(-2, -1))
                acc[name] = acc[name] + v if name in acc else v
                if name == "seg":
                    sq = v * v if sq is None else sq + v * v
        n = len(tfs)
        o = {name: v / n for name, v in acc.items()}
        if sq is not None:
            o["tta_var"] = (sq / n - o["seg"] ** 2).clamp(min=0).mean(dim=1, keepdim=True)
        return torch.cat([o[k] for k, _ in self.layout], dim=1)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Predict a batch of tiles.

        Args:
            batch: ``(B, bands, th, tw)`` raw values in the card's source units (any real dtype: uint8,
                int32, float...), on :attr:`device`.

        Returns:
            ``(B, channels, th, tw)`` float32 activated outputs in :attr:`layout` order (probabilities in
            ``[0, 1]``, reconstructions in input units, regressions in the card's units). Without TTA the
            tensor is a scratch buffer reused by the next call: consume it first.
        """
        # one float32 tensor in the network's memory layout; dtype and layout converted in a single copy
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = self._buffer("in", tuple(batch.shape), fmt)
        self.norm.apply_(x.copy_(batch), self.gain, self.bias)
        if self.tta:
            return self._tta(x)
        res = self._buffer("out", (x.shape[0], self.channels, *x.shape[-2:]), torch.contiguous_format)
        return self._activate_into(self._net(x), res)
