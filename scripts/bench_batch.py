"""Benchmark of ``rsviz batch``: the sequential loop vs Dask with 1 and 2 workers, in one run, on this machine.

Each configuration predicts and scores the same real scenes (Banepa chips, 512 x 512 px, with their OSM
footprints) from scratch: a fresh batch folder and a fresh workspace (so each one rasterises the ground truth
again), the model loaded once (in the process, or once per worker by the worker plugin). The
``LocalCluster``'s start is timed apart. Scheduler overhead per task is the round trip of no-op tasks on the
2-worker cluster.

Usage::

    RSVIZ_DATA_DIR=... python scripts/bench_batch.py [--scenes 24] [--model building-seg] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

OSM = "banepa-buildings/data/sample/train/osm/osm_features_ac7e343eb1faacd2.geojson"


def _noop(i: int) -> int:
    return i


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "")
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} cores, {simd}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=24)
    ap.add_argument("--model", default="building-seg")
    ap.add_argument("--noop-tasks", type=int, default=200)
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    from rsviz.batch import resolve_scenes, run_batch
    from rsviz.batch.cluster import local_cluster_size
    from rsviz.data import catalog

    root = catalog.data_dir()
    chips = sorted((root / "banepa-buildings/data/sample/train/oam").glob("*.tif"))[: args.scenes]
    specs = resolve_scenes([str(c) for c in chips], gt=root / OSM)
    tmp = Path(tempfile.mkdtemp(prefix="rsviz-bench-batch-"))
    rows = []
    for label, workers in (("sequential loop (no Dask)", 0), ("Dask, 1 worker", 1), ("Dask, 2 workers", 2)):
        os.environ["RSVIZ_WORKSPACE"] = str(tmp / f"ws-{workers}")  # read at each call, inherited by workers
        started: list[float] = []
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        # as `rsviz batch --workers N`: a LocalCluster of N one-thread workers, torch threads = cores / N
        s = run_batch(
            args.model,
            specs,
            tmp / f"out-{workers}",
            workers=workers,
            threads_per_worker=None if workers == 0 else 1,
            on_start=lambda link, n: started.append(time.perf_counter()),
        )
        end = time.perf_counter()
        if s.failed:
            raise SystemExit(f"scenes failed: {[o.error for o in s.failed]}")
        wall, start_s = end - started[0], started[0] - t0
        mpx = s.pixels / 1e6
        rows.append(
            {
                "config": label,
                "workers": workers,
                "torch_threads": local_cluster_size(workers, 1).torch_threads if workers else None,
                "scenes": len(s.done),
                "mpx": round(mpx, 2),
                "wall_s": round(wall, 2),
                "start_s": round(start_s, 2),
                "end_to_end_s": round(end - t0, 2),
                "scenes_per_min": round(len(s.done) / wall * 60, 1),
                "mpx_per_s": round(mpx / wall, 3),
                "task_s_mean": round(sum(o.seconds for o in s.done) / len(s.done), 3),
                "iou": s.overall.values["iou"],
                "load_1min_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather(client.map(_noop, range(10), pure=False))  # warm
        t1 = time.perf_counter()
        client.gather(client.map(_noop, range(args.noop_tasks), pure=False))
        noop_ms = (time.perf_counter() - t1) / args.noop_tasks * 1000
        t1 = time.perf_counter()
        for i in range(50):  # one at a time: the latency a single task pays
            client.submit(_noop, i, pure=False).result()
        serial_ms = (time.perf_counter() - t1) / 50 * 1000
    # torch's intra-op thread count changes float rounding, so probabilities near the threshold may flip a pixel:
    # the pooled figures of the configurations agree to ~1e-6, not bit for bit (the CI test compares pooling alone)
    iou_spread = max(r["iou"] for r in rows) - min(r["iou"] for r in rows)
    doc = {
        "cpu": _cpu(),
        "model": args.model,
        "load_average": os.getloadavg(),
        "rows": rows,
        "noop_task_ms_batched": round(noop_ms, 2),
        "noop_task_ms_one_at_a_time": round(serial_ms, 2),
        "iou_spread": iou_spread,
    }
    print(f"\nCPU: {doc['cpu']}; {args.model}; {len(specs)} Banepa chips of 512 x 512 px\n")
    print(
        "| configuration | scenes/min | MPx/s | processing s | mean task s | start s (cluster + model) | end to end s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['config']} | {r['scenes_per_min']} | {r['mpx_per_s']} | {r['wall_s']} | {r['task_s_mean']} | "
            f"{r['start_s']} | {r['end_to_end_s']} |"
        )
    print(f"\npooled IoU spread over the configurations: {iou_spread:.2e}")
    print(
        f"\nscheduler overhead per no-op task (2 workers): {doc['noop_task_ms_batched']} ms submitted together, "
        f"{doc['noop_task_ms_one_at_a_time']} ms one at a time"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
