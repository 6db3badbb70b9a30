"""Command-line interface: ``rsviz {data,models,predict,evaluate,batch,report,train,package,select,promote} ...``.

``rsviz`` (the console script) and ``python -m rsviz`` are the same program. ``train``, ``package``,
``select`` and ``promote`` come from the repository's ``experiments`` package through the
:data:`COMMAND_GROUP` entry points.

Errors derived from :class:`~rsviz.errors.RsvizError` print one line to stderr and
exit with status 2; no traceback for user mistakes.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rsviz.errors import RsvizError


def _tqdm_progress(desc: str):
    from tqdm import tqdm

    bar: dict = {}

    def cb(done: int, total: int) -> None:
        if "b" not in bar:
            bar["b"] = tqdm(
                total=total, desc=desc, unit="file", leave=False, file=sys.stderr, disable=not sys.stderr.isatty()
            )
        bar["b"].update(done - bar["b"].n)
        if done >= total:
            bar["b"].close()

    return cb


def cmd_data(args: argparse.Namespace) -> int:
    from rsviz.data import catalog

    if args.action == "list":
        root = catalog.data_dir()
        print(f"data cache: {root}  (set {catalog.ENV_VAR} to change)")
        print(f"{'dataset':28} {'files':>5} {'MB':>7}  {'cached':6}  title")
        for n in catalog.list_datasets():
            fs = catalog.files(n)
            mb = sum(f.size for f in fs) / 1e6
            have = sum((root / f.path).exists() for f in fs)
            print(f"{n:28} {len(fs):5d} {mb:7.1f}  {have:3d}/{len(fs):<3d} {catalog.dataset_info(n).title}")
        return 0
    if args.action == "mosaics":
        return _cmd_mosaics(args)
    if args.build:
        raise RsvizError("--build goes with `rsviz data mosaics` (e.g. rsviz data mosaics --build all)")
    names = args.names or catalog.list_datasets()
    if args.action == "fetch":
        for n in names:
            path = catalog.fetch(n, progress=_tqdm_progress(n))
            print(f"{n}: fetched into {path}")
        return 0
    failed = False
    for n in names:
        rep = catalog.verify(n, progress=_tqdm_progress(n))
        if rep.passed:
            print(f"OK       {n}: {rep.ok} files")
        else:
            failed = True
            print(f"FAILED   {n}: {rep.ok} ok, {len(rep.missing)} missing, {len(rep.corrupt)} corrupt")
            for p in rep.corrupt:
                print(f"  corrupt (sha256 mismatch): {catalog.data_dir() / p}")
            for p in rep.missing[:20]:
                print(f"  missing: {catalog.data_dir() / p}")
            if rep.missing:
                print(f"  fix: python -m rsviz data fetch {n}")
            if rep.corrupt:
                print(f"  fix: delete the corrupt file(s) and run python -m rsviz data fetch {n}")
    return 1 if failed else 0


def _cmd_mosaics(args: argparse.Namespace) -> int:
    """``rsviz data mosaics [NAME ...] [--build NAME|all]``: list the mosaic scenes, or build them."""
    from rsviz.datasets import mosaics

    available = mosaics.mosaic_names()
    if args.build:
        todo = available if args.build == "all" else [args.build]
        if not todo:
            print("no mosaics: fetch banepa-buildings, kampala-buildings or joplin-buildings first")
        for n in todo:
            m = mosaics.build_mosaic(n, progress=_tqdm_progress(n))
            print(f"{n}: {m.image.parent}")
        return 0
    if not available:
        print("no mosaics: fetch banepa-buildings, kampala-buildings or joplin-buildings first")
        return 0
    from rsviz.resources import cache_dir

    print(f"derived cache: {cache_dir()}  (set RSVIZ_CACHE_DIR to change)")
    print(f"{'mosaic':14} {'dataset':18} {'size px':>11} {'MPx':>5} {'chips':>5}  {'built':5}  title")
    for n in args.names or available:
        d = mosaics.describe(n)
        size = f"{d['width']}x{d['height']}"
        mpx = d["width"] * d["height"] / 1e6
        print(
            f"{n:14} {d['dataset']:18} {size:>11} {mpx:5.1f} {d['chips']:5d}  {'yes' if d['built'] else 'no':5}  "
            f"{d['title']}"
        )
    return 0


def cmd_list_models(args: argparse.Namespace) -> int:
    """``rsviz models list``."""
    from rsviz.models.api import get_model_card, list_models, model_problem

    names = list_models()
    if not names:
        print("no models registered")
        return 0
    print(f"{'model':22} {'task':10} {'bands':>5} {'tile':>5}  title")
    broken = 0
    for n in names:
        problem = model_problem(n)
        if problem is not None:  # one broken folder never hides the others
            broken += 1
            print(f"{n:22} {'BROKEN':10} {'-':>5} {'-':>5}  {problem}")
            continue
        c = get_model_card(n)
        print(f"{n:22} {c.task:10} {c.in_channels:5d} {c.input.tile_size:5d}  {c.title}")
    if broken:
        print(f"error: {broken} model folder(s) are broken (listed as BROKEN above)", file=sys.stderr)
        return 2
    return 0


#: Entry-point group of commands defined outside the library (the repository's ``experiments``
#: package registers ``train``, ``package``, ``select`` and ``promote``): each entry point is a
#: function ``add(subparsers)`` that adds one sub-command.
COMMAND_GROUP = "rsviz.commands"


def _plugin_commands(sub: argparse._SubParsersAction) -> None:
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            add = ep.load()
        except ImportError:  # the experiments package is not importable (an installed wheel without the repository)
            continue
        add(sub)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="rsviz", description="rsviz: QA of remote-sensing segmentation models")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="sample-data catalog: list, fetch, verify; mosaic scenes")
    d.add_argument("action", choices=["list", "fetch", "verify", "mosaics"])
    d.add_argument("names", nargs="*", help="dataset names (default: all); with `mosaics`: mosaic names")
    d.add_argument(
        "--build",
        metavar="NAME|all",
        help="with `mosaics`: build a mosaic scene (or all) into the derived cache (RSVIZ_CACHE_DIR)",
    )
    d.set_defaults(func=cmd_data)

    from rsviz.cli_models import add_models_parser

    add_models_parser(sub)

    from rsviz.cli_predict import add_predict_parser

    add_predict_parser(sub)
    from rsviz.cli_evaluate import add_evaluate_parser

    add_evaluate_parser(sub)
    from rsviz.cli_batch import add_batch_parser

    add_batch_parser(sub)
    from rsviz.report.cli import add_report_parser

    add_report_parser(sub)
    _plugin_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RsvizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main_exit() -> None:
    """Console-script entry point (``rsviz``): :func:`main` with its status as the exit code."""
    sys.exit(main())
