"""``python -m rsviz batch``: a model over many scenes on Dask, predictions as COGs, scores pooled."""

from __future__ import annotations

import argparse
import sys

from rsviz.cli_predict import add_inference_options

EPILOG = """\
SCENES: raster files, folders (every raster in them), glob patterns (quote them: 'tiles/**/*.tif') and catalog
dataset names (banepa-buildings, or banepa-buildings:test for one split; their ground truth comes with them).

--gt pairs ground truth with file scenes by one rule: a FOLDER (the file with the scene's stem and one of
.tif .tiff .png .geojson .json; scenes without one are predicted, not scored), a CSV with a header scene,gt
(paths relative to the CSV; scene may be a stem), a GeoJSON of building polygons burnt onto every scene, or one
raster for a single scene. Ground-truth rasters must be on the scene's grid (class ids, a 0/1 or 0/255 mask, or
float heights; 255 = nodata).

Outputs in --out: <scene>.tif (the prediction COG, band layout of `rsviz predict`), manifest.json, eval.json
(raster-vision layout: overall from the summed counts, per_scene), eval.csv, scenes.csv and report.html.
A rerun skips the scenes that are complete (same model weights, scene files and options); failed scenes are
tried again. No file is ever left half-written under its final name.

Without --scheduler a LocalCluster is started on this machine (one worker per GPU, or one per 2 CPU cores);
with --scheduler tcp://host:8786 (or a scheduler file .json) the batch runs on that cluster, whose workers must
see the same paths. --workers 0 runs the scenes one after another in this process, without Dask.
Exit status: 0 when every scene is done, 2 when any failed (they are listed) or on a usage error.
"""


def add_batch_parser(sub) -> None:
    p = sub.add_parser(
        "batch",
        help="predict and score many scenes on a Dask cluster (a LocalCluster by default)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model name (python -m rsviz models list)")
    p.add_argument("scenes", nargs="+", metavar="SCENES", help="files, folders, globs or catalog dataset names")
    p.add_argument("--out", required=True, help="batch folder (created if missing)")
    p.add_argument("--gt", help="ground truth: folder, CSV scene,gt, building GeoJSON, or one raster")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786) or scheduler file (.json)")
    p.add_argument("--workers", type=int, help="LocalCluster workers (0: no Dask, one scene after another here)")
    p.add_argument("--threads-per-worker", type=int, help="LocalCluster tasks per worker at once (default 1)")
    add_inference_options(p, device_help="auto (a GPU worker's GPU), cpu, cuda, cuda:N or mps")
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rsviz.batch import BatchOptions, resolve_scenes, run_batch
    from rsviz.evaluation import fmt, metric_label
    from rsviz.models.api import model_dir

    model_dir(args.model)
    specs = resolve_scenes(args.scenes, args.gt)
    opts = BatchOptions(
        tile=args.tile,
        overlap=args.overlap,
        blend=args.blend,
        tta=args.tta,
        compress=args.compress,
        batch_size=args.batch_size,
        device=args.device,
        match_gsd=args.match_gsd,
    )
    bar = tqdm(total=len(specs), desc="rsviz batch", unit="scene", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    def on_start(link: str | None, workers: int) -> None:
        where = f"{workers} Dask worker(s)" if workers else "this process (no Dask)"
        bar.write(f"rsviz batch: {len(specs)} scenes on {where}" + (f"; dashboard: {link}" if link else ""))

    try:
        s = run_batch(
            args.model,
            specs,
            args.out,
            options=opts,
            scheduler=args.scheduler,
            workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            progress=progress,
            on_start=on_start,
        )
    finally:
        bar.close()
    print(
        f"{args.model}: {len(s.done)} of {len(s.outcomes)} scenes done ({len(s.skipped)} already complete), "
        f"{len(s.per_scene)} scored, {s.pixels / 1e6:.1f} MPx in {s.seconds:.1f} s"
    )
    if s.overall is not None:
        from rsviz.evaluation import task_spec

        keys = [k for k in task_spec(s.overall.task).headline if k in s.overall.values]
        print("pooled: " + ", ".join(f"{metric_label(k)[0]} {fmt(s.overall.values[k], 4)}" for k in keys))
    print("wrote " + ", ".join(str(f) for f in s.files))
    if s.failed:
        print(
            f"error: {len(s.failed)} scene(s) failed (recorded in manifest.json; a rerun tries them again):",
            file=sys.stderr,
        )
        for o in s.failed:
            print(f"  {o.name}: {o.error}", file=sys.stderr)
        return 2
    return 0
