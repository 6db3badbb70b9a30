"""Time evaluate_windows on a seeded synthetic buildings extent (building-mtl card: probs, edge, recon heads).

Usage: ``python tests/data/windows/bench_buildings.py [size] [block] [--full]`` (default 4096 px, 1024 px
blocks); ``--full`` also runs evaluate_sample on the whole extent and checks the figures are equal.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from scipy import ndimage

from rsviz.datasets.base import Sample
from rsviz.evaluation import evaluate_sample, evaluate_windows
from rsviz.models.api import get_model_card


def scene(size: int, seed: int = 0) -> tuple[dict[str, np.ndarray], Sample]:
    rng = np.random.default_rng(seed)
    inst = np.zeros((size, size), np.int32)
    cell = 64  # one building per 64 px cell, 20-56 px wide
    n = 0
    for r in range(0, size - cell + 1, cell):
        for c in range(0, size - cell + 1, cell):
            h, w = rng.integers(20, 57, 2)
            r0, c0 = r + rng.integers(0, cell - h + 1), c + rng.integers(0, cell - w + 1)
            n += 1
            inst[r0 : r0 + h, c0 : c0 + w] = n
    gt = (inst > 0).astype(np.uint8)
    pm = ndimage.shift(gt, (1, -1), order=0).astype(bool)
    pm &= ~np.isin(inst, rng.choice(np.arange(1, n + 1), n // 10, replace=False))
    prob = np.clip(ndimage.gaussian_filter(pm.astype(np.float32), 1.5) + rng.normal(0, 0.05, pm.shape), 0, 1)
    edge = ndimage.morphological_gradient(inst, size=3) > 0
    edge = np.clip(ndimage.gaussian_filter(edge.astype(np.float32), 1.0) * 2, 0, 1).astype(np.float32)
    image = rng.integers(0, 256, (3, size, size), dtype=np.uint8)
    recon = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.float32)
    heads = {
        "classes": (prob >= 0.5).astype(np.uint8),
        "probs": prob.astype(np.float32)[None],
        "edge": edge,
        "recon": recon,
    }
    t = Affine(0.5, 0, 500000, 0, -0.5, 4000000)
    s = Sample(
        "bench",
        "synthetic",
        "test",
        image,
        ("red", "green", "blue"),
        (0.0, 255.0),
        t,
        CRS.from_epsg(32633),
        np.ones((size, size), bool),
        {"buildings": gt, "instances": inst},
    )
    return heads, s


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    size = int(args[0]) if args else 4096
    block = int(args[1]) if len(args) > 1 else 1024
    heads, s = scene(size)
    card = get_model_card("building-mtl")

    def cut(a: np.ndarray, w: Window) -> np.ndarray:
        return a[..., w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]

    def read_sample(w: Window) -> Sample:
        return Sample(
            s.id,
            s.dataset,
            s.split,
            cut(s.image, w),
            s.band_names,
            s.scale,
            window_transform(w, s.transform),
            s.crs,
            cut(s.valid, w),
            {k: cut(v, w) for k, v in s.targets.items()},
        )

    t0 = time.perf_counter()
    r = evaluate_windows(card, lambda w: {k: cut(v, w) for k, v in heads.items()}, read_sample, size, size, block=block)
    print(f"evaluate_windows {size}x{size} block {block}: {time.perf_counter() - t0:.1f} s")
    assert r is not None
    print({k: r.values[k] for k in ("iou", "boundary_f1_2px", "object_f1_iou50", "object_tp", "recon_ssim")})
    if "--full" in sys.argv:
        t0 = time.perf_counter()
        f = evaluate_sample(card, heads, s)
        print(f"evaluate_sample whole extent: {time.perf_counter() - t0:.1f} s")
        assert f is not None
        diff = {k: (r.values[k], f.values[k]) for k in f.values if r.values[k] != f.values[k]}
        print("differences:", diff)


if __name__ == "__main__":
    main()
