"""``python -m rsviz evaluate``: metrics of a prediction raster against a ground-truth raster."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a prediction raster against ground truth",
        description="PRED and GT are single-band rasters on the same grid; a grid mismatch is an "
        "error, never a silent resample. Buildings/roads: GT > 0 is positive, PRED == 1 "
        "is positive, 255 is nodata.",
    )
    p.add_argument("--pred", required=True, help="prediction raster (band 1 used)")
    p.add_argument("--gt", required=True, help="ground-truth raster on the same grid")
    p.add_argument(
        "--task",
        required=True,
        choices=["landcover", "segmentation", "buildings", "roads", "height"],
        help="what is scored (segmentation = landcover: multiclass)",
    )
    p.add_argument("--classes", help='JSON file: [{"id": 0, "name": "building", "color": [r, g, b]}, ...]')
    p.add_argument("--ignore-index", type=int, help="ground-truth id not evaluated (segmentation)")
    p.add_argument("--out", required=True, help="eval.json path; a CSV is written beside it")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rsviz.errors import RsvizError
    from rsviz.evaluation import evaluate, write_eval
    from rsviz.geo import gsd_metres
    from rsviz.raster import check_same_grid, read_raster
    from rsviz.types import ClassInfo

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
    res = evaluate(
        pred.array[0], gt.array[0], args.task, classes=classes, valid=valid, ignore_index=args.ignore_index, gsd=gsd
    )
    out = Path(args.out)
    write_eval(res, out, out.with_suffix(".csv"), meta={"pred": str(args.pred), "gt": str(args.gt)})
    print(", ".join(f"{k}={v:.4f}" for k, v in res.values.items() if isinstance(v, float)))
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0
