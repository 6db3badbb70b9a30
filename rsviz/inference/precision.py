"""Autocast precision of inference: which half-precision dtype, if any, a device runs natively."""

from __future__ import annotations

import torch

from rsviz.errors import ModelInputError

#: Values accepted by :func:`resolve_precision`.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_bf16_supported() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX).

    Returns:
        False where PyTorch has no oneDNN (mkldnn) backend or cannot tell.
    """
    try:
        return bool(torch.backends.mkldnn.is_available() and  # type: ignore[no-untyped-call]
                     torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``) on ``device``; None = fp32.

    ``auto`` picks bf16 on CUDA GPUs that support it (fp16 otherwise) and on CPUs with native bf16
    (oneDNN AVX512-BF16 / AMX), fp32 elsewhere.

    Args:
        precision: One of :data:`PRECISIONS`.
        device: The compute device.

    Returns:
        ``torch.bfloat16`` or ``torch.float16`` for autocast, or None for plain float32.

    Raises:
        ModelInputError: Unknown precision, or bf16/fp16 requested where unsupported.
    """
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision in ("auto", "bf16"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if precision == "fp16":
            return torch.float16
    elif device.type == "cpu":
        if precision in ("auto", "bf16") and cpu_bf16_supported():
            return torch.bfloat16
        if precision == "auto":
            return None
    elif precision == "auto":
        return None
    raise ModelInputError(f"precision {precision!r} is not supported on {device.type}; use auto or fp32")
