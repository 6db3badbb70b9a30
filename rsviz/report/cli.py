"""``rsviz report RUN [RUN2] --out FILE``: the QA report of workspace runs as HTML or PDF."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rsviz.errors import RsvizError


def cmd_report(args: argparse.Namespace) -> int:
    """Build and write the report of one run, or of two runs of the same scene compared."""
    from rsviz.report import build_report, write_report
    from rsviz.workspace import load_run, load_scene

    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm", ".pdf"):
        raise RsvizError(f"--out must end in .html or .pdf, not {str(out)!r}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise RsvizError(f"the output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise RsvizError(f"the output folder {folder} is not writable")
    if out.exists() and not args.overwrite:
        raise RsvizError(f"{out} exists; pass --overwrite to replace it")
    runs = [load_run(k) for k in args.runs]
    if len(runs) == 2 and runs[0].scene_key != runs[1].scene_key:
        raise RsvizError(f"runs {runs[0].key} and {runs[1].key} are of different scenes; compare runs of one scene")
    scene = load_scene(runs[0].scene_key)
    t0 = time.perf_counter()
    rep = build_report(scene, runs, title=args.title)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")  # a failed write leaves no half file under the name
    try:
        write_report(rep, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        raise RsvizError(f"could not write {out}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    path = out
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def add_report_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` sub-command to the ``rsviz`` parser."""
    r = sub.add_parser("report", help="QA report of a workspace run (or two compared) as one offline HTML file or PDF")
    r.add_argument("runs", nargs="+", metavar="RUN", help="run id(s) of this workspace (16 hex); a second is compared")
    r.add_argument("--out", required=True, metavar="FILE", help="report file: .html (self-contained) or .pdf")
    r.add_argument("--title", default=None, help="title (default names the models)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    r.set_defaults(func=cmd_report)
