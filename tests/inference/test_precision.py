"""Autocast precision: bf16 only where the CPU runs it natively."""

import torch

from rsviz.inference import precision


def test_bf16_autocast_needs_native_bf16_flags(monkeypatch):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "avx512f", "avx512bw"})  # AVX-512, no BF16
    assert precision.cpu_bf16_supported() is False
    assert precision.resolve_precision("auto", torch.device("cpu")) is None
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512f", "avx512_bf16", "amx_bf16"})
    onednn = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert precision.cpu_bf16_supported() is onednn
    assert precision.resolve_precision("fp32", torch.device("cpu")) is None
