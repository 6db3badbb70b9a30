"""``python -m rsviz evaluate``: metrics of a prediction raster against a ground-truth raster."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a prediction raster against ground truth",
        description="PRED and GT are single-band rasters on the same grid; a grid mismatch is an "
        "error, never a silent resample. Buildings/roads: GT > 0 is positive, PRED == 1 "
        "is positive, 255 is nodata. For buildings, roads and landcover, ground truth 255 is nodata "
        "even when the file has no nodata tag. Roads: either may instead be road vectors, GeoJSON "
        "LineStrings or SpaceNet's CSV (ImageId,WKT_Pix in pixels of --image); then APLS alone is scored "
        "as SpaceNet does, on graphs in metres (a mask on the other side becomes its skeleton graph).",
    )
    p.add_argument("--pred", required=True, help="prediction raster (band 1 used), or road vectors (--task roads)")
    p.add_argument("--gt", required=True, help="ground-truth raster on the same grid, or road vectors (--task roads)")
    p.add_argument(
        "--model",
        help="score PRED, a prediction written by `rsviz predict` with this model, with everything its card "
        "states (object F1 on its instances, edge and height heads, APLS on its road graph), block by block over "
        "rasters of any size; --task then only overrides the card's task",
    )
    p.add_argument(
        "--image",
        help="with --model: the input imagery on the same grid (scores a reconstruction head); with road "
        "vectors: the georeferenced image whose grid places WKT_Pix pixel coordinates and whose location "
        "gives the metric CRS (its own if projected in metres, else its UTM zone)",
    )
    p.add_argument(
        "--image-id",
        help="road CSV: the ImageId whose rows are read (default: the only one, or the "
        "one that ends the --image file name)",
    )
    p.add_argument(
        "--task",
        choices=["landcover", "segmentation", "buildings", "roads", "height"],
        help="what is scored (segmentation = landcover: multiclass)",
    )
    p.add_argument("--classes", help='JSON file: [{"id": 0, "name": "building", "color": [r, g, b]}, ...]')
    p.add_argument("--ignore-index", type=int, help="ground-truth id not evaluated (segmentation)")
    p.add_argument("--out", required=True, help="eval.json path; a CSV is written beside it")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rsviz.cli_predict import check_output
    from rsviz.errors import RsvizError
    from rsviz.evaluation import evaluate, write_eval
    from rsviz.geo import gsd_metres
    from rsviz.raster import check_same_grid, read_raster
    from rsviz.types import NODATA_CLASS, ClassInfo

    out = Path(args.out)
    inputs = [Path(p) for p in (args.pred, args.gt, args.image, args.classes) if p]
    for target in (out, out.with_suffix(".csv")):  # a re-run replaces its own results, never an input
        check_output(target, inputs, overwrite=True)
    vectors = [p for p in (args.pred, args.gt) if Path(p).suffix.lower() in _VECTOR_SUFFIXES]
    if vectors:
        if args.model or (args.task or "roads") != "roads":
            raise RsvizError(
                f"{', '.join(vectors)}: road vectors are scored with --task roads (APLS), without --model; give "
                "rasters for other tasks"
            )
        return _evaluate_road_vectors(args)
    if args.model:
        if args.classes or args.ignore_index is not None:
            raise RsvizError("--classes and --ignore-index come from the model card with --model; leave them out")
        return _evaluate_with_card(args)
    if not args.task:
        raise RsvizError("give --task (buildings, roads, landcover, height), or --model NAME to score with its card")
    _check_size(args.pred)
    pred = read_raster(args.pred, bands=[1])
    gt = read_raster(args.gt, bands=[1])
    check_same_grid(pred, gt)
    classes = None
    if args.classes:
        try:
            classes = [
                ClassInfo(int(c["id"]), str(c["name"]), tuple(c.get("color", (128, 128, 128))))
                for c in json.loads(Path(args.classes).read_text())
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RsvizError(
                f'cannot read classes file {args.classes}: {exc}; expected a JSON list of {{"id": .., "name": ..}}'
            ) from exc
    gsd = gsd_metres(gt.transform, gt.crs, *gt.shape) if gt.crs is not None else None
    valid = pred.valid & gt.valid
    if args.task != "height":  # 255 is nodata in binary and class ground truth, tagged or not (see --help)
        valid &= gt.array[0] != NODATA_CLASS
    res = evaluate(
        pred.array[0], gt.array[0], args.task, classes=classes, valid=valid, ignore_index=args.ignore_index, gsd=gsd
    )
    out = Path(args.out)
    write_eval(res, out, out.with_suffix(".csv"), meta={"pred": str(args.pred), "gt": str(args.gt)})
    print(", ".join(f"{k}={v:.4f}" for k, v in res.values.items() if isinstance(v, float)))
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


#: File suffixes read as road vectors rather than rasters.
_VECTOR_SUFFIXES = (".geojson", ".json", ".csv")


def _evaluate_road_vectors(args: argparse.Namespace) -> int:
    """``evaluate --task roads`` with road vectors on one side or both: APLS in metres."""
    from rsviz.errors import CRSError
    from rsviz.evaluation import write_eval
    from rsviz.evaluation.road_vectors import evaluate_road_lines
    from rsviz.postprocess.road_graph import (
        RoadGraphSettings,
        clean_road_mask,
        graph_from_mask,
        graph_road_lines,
        metric_crs,
        read_road_lines,
    )
    from rsviz.raster import open_raster, read_raster
    from rsviz.types import NODATA_CLASS

    grid = None
    if args.image:
        with open_raster(args.image) as ds:
            if ds.crs is None:
                raise CRSError(f"{args.image} has no CRS; road vectors need a georeferenced --image")
            grid = (ds.transform, ds.crs, ds.width, ds.height)
    rasters = {
        k: p for k, p in (("pred", args.pred), ("gt", args.gt)) if Path(p).suffix.lower() not in _VECTOR_SUFFIXES
    }
    for p in rasters.values():
        _check_size(p)
    read = {k: read_raster(p, bands=[1]) for k, p in rasters.items()}
    for k, r in read.items():
        if r.crs is None:
            raise CRSError(f"{rasters[k]} has no CRS; a mask scored against road vectors must be georeferenced")
    metric = None
    if grid is not None:
        t, crs, w, h = grid
        metric = metric_crs(crs, *(t * (w / 2.0, h / 2.0)))
    elif read:
        r = next(iter(read.values()))
        metric = metric_crs(r.crs, *(r.transform * (r.shape[1] / 2.0, r.shape[0] / 2.0)))
    settings = RoadGraphSettings()
    lines = {}
    for k, path in (("gt", args.gt), ("pred", args.pred)):
        if k in read:
            r = read[k]
            a = r.array[0]
            valid = r.valid & (a != NODATA_CLASS)
            if k == "gt":
                g = graph_from_mask((a > 0) & valid, min_spur=settings.min_spur)
            else:
                g = graph_from_mask(
                    clean_road_mask((a == 1) & valid, closing_px=settings.closing_px), min_spur=settings.min_spur
                )
            lines[k] = graph_road_lines(g, r.transform, r.crs, metric)
        else:
            lines[k] = read_road_lines(
                path,
                transform=grid[0] if grid else None,
                crs=grid[1] if grid else None,
                metric=metric,
                image_id=args.image_id,
                image_name=Path(args.image).name if args.image else None,
            )
            metric = metric or lines[k].crs
    res = evaluate_road_lines(lines["gt"], lines["pred"])
    out = Path(args.out)
    meta = {"pred": str(args.pred), "gt": str(args.gt), **({"image": str(args.image)} if args.image else {})}
    write_eval(res, out, out.with_suffix(".csv"), meta=meta)
    print(", ".join(f"{k}={v:.4f}" for k, v in res.values.items() if isinstance(v, float)))
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


def _check_size(path: str) -> None:
    from rsviz.errors import ExtentError
    from rsviz.raster import open_raster
    from rsviz.workspace.scene import MAX_READ_PX

    with open_raster(path) as ds:
        px = ds.width * ds.height
    if px > MAX_READ_PX:
        raise ExtentError(
            f"{path} has {px / 1e6:.0f} MPx, more than the {MAX_READ_PX / 1e6:.0f} MPx scored in memory; pass "
            "--model NAME (the model that wrote it) to score it block by block"
        )


def _evaluate_with_card(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rsviz.evaluation import evaluate_rasters, target_spec, write_eval
    from rsviz.models.api import get_model_card

    card = get_model_card(args.model)
    gt_path = Path(args.gt)
    spec = target_spec(card, {"buildings": 1, "roads": 1, "classes": 1, "height": 1}) if not args.task else None
    target = (
        spec.target
        if spec is not None
        else {"segmentation": "classes", "landcover": "classes"}.get(args.task, args.task)
    )
    with tqdm(desc="rsviz evaluate", unit="block", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        res = evaluate_rasters(
            card, args.pred, {target: gt_path}, image_path=args.image, task=args.task or None, progress=progress
        )
    if res is None:
        from rsviz.errors import RsvizError

        raise RsvizError(f"{args.model} cannot be scored against a {target!r} ground truth; pick --task")
    out = Path(args.out)
    write_eval(
        res, out, out.with_suffix(".csv"), meta={"pred": str(args.pred), "gt": str(args.gt), "model": args.model}
    )
    print(", ".join(f"{k}={v:.4f}" for k, v in res.values.items() if isinstance(v, float)))
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0
