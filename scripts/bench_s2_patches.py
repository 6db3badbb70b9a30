"""Patches per second of each BigEarthNet-19 fusion variant over a Sentinel-2 scene (``rsviz.sentinel2``).

The scene is dense: the real BigEarthNet sample patches of the data mirror tiled into a
``--side`` x ``--side`` patch GeoTIFF (12 bands, uint16, deflate, tiled 240), so every patch is predicted.
Each variant runs alone through :func:`rsviz.sentinel2.predict_variants` (read, fill, normalise, batched
forward; fp32 on the CPU), fastest of ``--repeats`` rounds after one warm-up, the rows run round-robin (the least disturbed by other
processes on a shared machine); a second figure is the three
variants in one call (the scene read once). Prints a Markdown table for ``docs/benchmarks.md``.

    python scripts/bench_s2_patches.py --side 8 --repeats 3 --batch 32
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine


def dense_scene(folder: Path, side: int) -> Path:
    from rsviz.datasets.bigearthnet import BANDS, bigearthnet_scenes
    from rsviz.sentinel2.bands import L2A_ORDER

    imgs = [r.load().image for r in bigearthnet_scenes()]
    n = side * 120
    p = folder / "dense.tif"
    prof = dict(
        driver="GTiff",
        width=n,
        height=n,
        count=12,
        dtype="uint16",
        crs="EPSG:32629",
        transform=Affine(10, 0, 600000, 0, -10, 5900040),
        nodata=0,
        tiled=True,
        blockxsize=240,
        blockysize=240,
        compress="deflate",
    )
    order = [BANDS.index(b) for b in L2A_ORDER]
    with rasterio.open(p, "w", **prof) as ds:
        ds.descriptions = L2A_ORDER
        arr = np.zeros((12, n, n), np.uint16)
        for k in range(side * side):
            r, c = divmod(k, side)
            arr[:, r * 120 : r * 120 + 120, c * 120 : c * 120 + 120] = imgs[k % len(imgs)][order]
        ds.write(arr)
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=8, help="patches per side of the dense scene")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from rsviz.sentinel2 import open_s2, predict_variants

    variants = ("s2-resize", "s2-intermediate", "s2-late")
    with tempfile.TemporaryDirectory() as d:
        scene = open_s2(dense_scene(Path(d), a.side))
        n = a.side * a.side
        configs = [(v, f) for v in [*[(x,) for x in variants], variants] for f in (True, False)]
        for v, f in configs:
            predict_variants(scene, v, batch_size=a.batch, folded=f)  # warm-up (weights, allocator)
        best = {c: float("inf") for c in configs}
        for _ in range(a.repeats):  # round robin: a burst of other work on the machine hits every row alike
            for v, f in configs:
                t = time.perf_counter()
                predict_variants(scene, v, batch_size=a.batch, folded=f)
                best[(v, f)] = min(best[(v, f)], time.perf_counter() - t)
        rows = [
            (" + ".join(v), best[(v, True)], n * len(v) / best[(v, True)], n * len(v) / best[(v, False)])
            for v in [*[(x,) for x in variants], variants]
        ]
    print(
        f"{platform.processor() or platform.machine()} · torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(f"{n} patches of 120 x 120 px x 12 bands, batch {a.batch}, fp32, fastest of {a.repeats}\n")
    print("| variant(s) | fastest s | patches/s (patch x model) | patches/s, network as loaded (`folded=False`) |")
    print("|---|---|---|---|")
    for name, s, pps, slow in rows:
        print(f"| {name} | {s:.2f} | {pps:.1f} | {slow:.1f} |")


if __name__ == "__main__":
    main()
