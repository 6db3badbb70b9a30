"""Regenerate ``rsviz/data/registry.tsv`` from a sample-data ``MANIFEST.tsv``.

Usage: ``python tools/make_registry.py ../shared/rsviz-data/MANIFEST.tsv``

The registry holds only metadata (relative path, sha256, size, public origin); the
data itself is fetched at run time by ``python -m rsviz data fetch``.
"""

import csv
import sys
from pathlib import Path

SKIP = (".DS_Store",)


def main(manifest: str) -> None:
    out = Path(__file__).resolve().parents[1] / "rsviz" / "data" / "registry.tsv"
    with open(manifest, newline="", encoding="utf-8") as f, open(out, "w", newline="", encoding="utf-8") as g:
        r = csv.DictReader(f, delimiter="\t")
        w = csv.writer(g, delimiter="\t", lineterminator="\n")
        w.writerow(["dataset", "path", "sha256", "bytes", "origin"])
        n = 0
        for row in r:
            if row["path"].endswith(SKIP):
                continue
            w.writerow([row["dataset"], row["path"], row["sha256"], row["bytes"], row["origin"]])
            n += 1
    print(f"wrote {n} entries to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
