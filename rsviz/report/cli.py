"""``rsviz report RUN [RUN2] --out FILE``: the QA report of workspace runs as HTML or PDF."""

from __future__ import annotations

import argparse
import sys
import time

from rsviz.errors import RsvizError


def cmd_report(args: argparse.Namespace) -> int:
    """Build and write the report of one run, or of two runs of the same scene compared."""
    from rsviz.report import build_report, write_report
    from rsviz.workspace import load_run, load_scene

    out = args.out
    if not str(out).lower().endswith((".html", ".htm", ".pdf")):
        raise RsvizError(f"--out must end in .html or .pdf, not {out!r}")
    runs = [load_run(k) for k in args.runs]
    if len(runs) == 2 and runs[0].scene_key != runs[1].scene_key:
        raise RsvizError(f"runs {runs[0].key} and {runs[1].key} are of different scenes; compare runs of one scene")
    scene = load_scene(runs[0].scene_key)
    t0 = time.perf_counter()
    rep = build_report(scene, runs, title=args.title)
    path = write_report(rep, out)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def add_report_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` sub-command to the ``rsviz`` parser."""
    r = sub.add_parser("report", help="QA report of a workspace run (or two compared) as one offline HTML file or PDF")
    r.add_argument("runs", nargs="+", metavar="RUN", help="run id(s) of this workspace (16 hex); a second is compared")
    r.add_argument("--out", required=True, metavar="FILE", help="report file: .html (self-contained) or .pdf")
    r.add_argument("--title", default=None, help="title (default names the models)")
    r.set_defaults(func=cmd_report)
