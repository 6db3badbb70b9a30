"""ONNX Runtime (CPU) vs the PyTorch engine on the same input: MPx/s of each and their ratio (issue #21).

``python scripts/bench_runtimes.py [--model building-seg] [--side 1024] [--repeats 3]``

The model is exported with ``rsviz models export`` to a temporary folder, and both runtimes predict the same
``side x side`` mosaic of real Banepa chips through :func:`rsviz.inference.predict` (tile 512, overlap 0.25,
no TTA, fp32). Prints one Markdown row with the CPU for ``docs/benchmarks.md``; medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_gsd import cpu_name  # noqa: E402

from rsviz.data import catalog  # noqa: E402
from rsviz.inference import predict  # noqa: E402
from rsviz.models.api import from_pretrained, load_model  # noqa: E402
from rsviz.models.export import export_model  # noqa: E402


def mosaic(side: int) -> np.ndarray:
    """``(3, side, side)`` uint8 tiled from the Banepa chips of the data mirror."""
    chips = sorted((catalog.data_dir() / "banepa-buildings/data/sample/train/oam").glob("*.tif"))
    out = np.zeros((3, side, side), np.uint8)
    k = 0
    for r in range(0, side, 512):
        for c in range(0, side, 512):
            with rasterio.open(chips[k % len(chips)]) as ds:
                a = ds.read([1, 2, 3])
            h, w = min(512, side - r), min(512, side - c)
            out[:, r : r + h, c : c + w] = a[:, :h, :w]
            k += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="building-seg")
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    x = mosaic(a.side)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = from_pretrained(export_model(a.model, "onnx", Path(tmp) / "onnx"), "cpu")
        torch_lm = load_model(a.model, "cpu")
        runs = (("PyTorch", torch_lm), ("ONNX Runtime", onnx))
        secs: dict[str, list[float]] = {label: [] for label, _ in runs}
        for _, lm in runs:
            predict(lm, x[:, :512, :512], tile=512, tta=False, precision="fp32")  # warm-up
        for _ in range(a.repeats):  # interleaved, so a change in machine load hits both alike
            for label, lm in runs:
                t0 = time.perf_counter()
                predict(lm, x, tile=512, overlap=0.25, tta=False, precision="fp32")
                secs[label].append(time.perf_counter() - t0)
        rates = {label: a.side * a.side / 1e6 / statistics.median(s) for label, s in secs.items()}
        ratios = sorted(secs["PyTorch"][i] / secs["ONNX Runtime"][i] for i in range(a.repeats))
    print(f"CPU: {cpu_name()}")
    print("| model | input | PyTorch MPx/s | ONNX Runtime MPx/s | ONNX / PyTorch |")
    print("|---|---|---|---|---|")
    print(
        f"| {a.model} | {a.side}² px, tile 512, overlap 0.25, fp32 | {rates['PyTorch']:.3f} | "
        f"{rates['ONNX Runtime']:.3f} | {rates['ONNX Runtime'] / rates['PyTorch']:.2f} "
        f"(per-repeat range {ratios[0]:.2f}-{ratios[-1]:.2f}) |"
    )


if __name__ == "__main__":
    main()
