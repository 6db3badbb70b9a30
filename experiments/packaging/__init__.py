"""Card packaging: evaluate training runs on the held-out splits and write candidate model folders."""

from __future__ import annotations

import argparse
from pathlib import Path

#: Help of every packager's ``--out``.
OUT_HELP = "parent folder of the model folders written (never weights/: promote a candidate with `rsviz promote`)"


def add_out_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The ``--out DIR`` every packager takes: candidates go there, never into ``weights/``."""
    parser.add_argument("--out", type=Path, required=required, help=OUT_HELP)
