#!/usr/bin/env python3
"""Extent -> metrics, the app's path without the browser: predict an extent of the Banepa mosaic into the
workspace (COG), then score it by windows; cold (nothing stored) and cached (the same choice again).

Usage: ``RSVIZ_DATA_DIR=../shared/rsviz-data python scripts/bench_extents.py [--mpx 1 4 16] [--model building-mtl]``.
The workspace and derived cache are temporary folders unless ``RSVIZ_WORKSPACE`` / ``RSVIZ_CACHE_DIR`` are set.
Prints a markdown table (figures for docs/benchmarks.md) and writes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mpx", type=float, nargs="+", default=[1, 4, 16])
    ap.add_argument("--model", default="building-mtl")
    ap.add_argument("--json", default="runs/bench_extents.json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rsviz-bench-")
    os.environ.setdefault("RSVIZ_WORKSPACE", os.path.join(tmp, "workspace"))
    os.environ.setdefault("RSVIZ_CACHE_DIR", os.path.join(tmp, "derived"))
    from rasterio.windows import Window

    from rsviz.datasets.mosaics import build_mosaic
    from rsviz.models.api import get_model_card, load_model_cached
    from rsviz.workspace import Extent, RunOptions, run_model
    from rsviz.workspace.metrics import evaluate_run_cached
    from rsviz.workspace.scene import open_mosaic

    scene = open_mosaic(build_mosaic("banepa-block"))
    card = get_model_card(a.model)
    load_model_cached(a.model, "cpu")  # model loading is not part of the figures
    opts = RunOptions(tile=512, overlap=0.25, tta=False, device="cpu")
    rows = []
    for mpx in a.mpx:
        side = int(math.sqrt(mpx * 1e6))
        w, h = min(side, scene.width), min(int(mpx * 1e6 / min(side, scene.width)), scene.height)
        win = Window((scene.width - w) // 2, (scene.height - h) // 2, w, h)
        ext = Extent(win, None)
        out = {"mpx": round(w * h / 1e6, 2), "width": w, "height": h}
        for tag in ("cold", "cached"):
            t0 = time.perf_counter()
            run, from_ws = run_model(a.model, scene, ext, opts)
            t1 = time.perf_counter()
            res, from_cache = evaluate_run_cached(scene, run, card)
            t2 = time.perf_counter()
            out[tag] = {"run_s": round(t1 - t0, 2), "metrics_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2)}
            out["iou"] = round(float(res["iou"]), 4)
        rows.append(out)
        print(json.dumps(out), flush=True)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
        platform.processor(),
    )
    meta = {"cpu": cpu, "cores": os.cpu_count(), "model": a.model, "options": opts.key(), "rows": rows}
    os.makedirs(os.path.dirname(a.json) or ".", exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(meta, f, indent=1)
    print(f"\n{a.model} on {cpu} ({os.cpu_count()} cores), {opts.key()}\n")
    print("| extent | cold: run + metrics = total (s) | cached: total (s) |")
    print("|---|---|---|")
    for r in rows:
        c, k = r["cold"], r["cached"]
        print(
            f"| {r['width']} x {r['height']} ({r['mpx']} MPx) | {c['run_s']} + {c['metrics_s']} = {c['total_s']} | {k['total_s']} |"
        )


if __name__ == "__main__":
    main()
