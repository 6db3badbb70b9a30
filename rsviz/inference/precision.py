"""Autocast precision of inference: which half-precision dtype, if any, a device runs natively."""

from __future__ import annotations

import functools

import torch

from rsviz.errors import ModelInputError

#: Values accepted by :func:`resolve_precision`.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


#: CPU flags (``/proc/cpuinfo``) of native bfloat16 arithmetic: AVX512-BF16 and AMX.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def _cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (Linux, read once), or None where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def cpu_bf16_supported() -> bool:
    """True when this CPU runs bfloat16 natively (AVX512-BF16 or AMX), so bf16 autocast is faster than fp32.

    oneDNN also *accepts* bf16 on plain AVX-512 CPUs (``torch.ops.mkldnn._is_mkldnn_bf16_supported()``
    is True there) but emulates it, several times slower than fp32 (measured on a 2-core AVX-512 Xeon
    without AVX512-BF16: 10.0 s against about 2 s for 9 tiles of 512 px, ``docs/benchmarks.md``), so
    the CPU flags decide where they can be read; elsewhere oneDNN's answer is used.

    Returns:
        False where PyTorch has no oneDNN (mkldnn) backend or the CPU lacks native bf16.
    """
    try:
        onednn = bool(
            torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
            and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False
    flags = _cpu_flags()
    return onednn and (flags is None or bool(flags & NATIVE_BF16_FLAGS))


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
