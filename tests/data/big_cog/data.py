#!/usr/bin/env python3
"""Generate a 20,000 x 20,000 px RGB COG on the web-mercator tile grid (torchgeo-style fixture generator).

The raster is in EPSG:3857 at exactly the pixel size of XYZ zoom 19 (0.2986 m, about 0.26 m on the ground at
Banepa's latitude) with its origin on a zoom-19 tile corner, so every zoom-19 XYZ tile is exactly one
256 x 256 window of the file: a tile served at native resolution must equal those source pixels. The
central 2,048 x 2,048 px hold real imagery (a Banepa chip of the data mirror, tiled); the rest is black,
which keeps the file small and quick to build. Also written: a 0/1 ground-truth mask on the same grid.

Outputs are built into a folder the caller names (the test session's), never committed:
``big.tif`` (COG, deflate, internal overviews), ``big_gt.tif`` and ``fixture.json`` (grid facts).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

SIZE = 20_000
ZOOM = 19
HALF = 20037508.342789244  # EPSG:3857 half extent, metres
LON, LAT = 85.52, 27.63
CORE = 2048


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """XYZ tile holding a point (the slippy-map formula)."""
    n = 2**z
    r = math.radians(lat)
    return int((lon + 180.0) / 360.0 * n), int((1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n)


def build(folder: Path, chip: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "big.tif"
    meta = folder / "fixture.json"
    if out.exists() and meta.exists():
        return json.loads(meta.read_text())
    tx, ty = tile_of(LON, LAT, ZOOM)
    tile_m = 2 * HALF / 2**ZOOM
    res = tile_m / 256
    x0, y0 = tx - 39, ty - 39  # the raster starts 39 tiles west and north of the chosen point
    transform = Affine(res, 0, x0 * tile_m - HALF, 0, -res, HALF - y0 * tile_m)
    with rasterio.open(chip) as ds:
        rgb = ds.read([1, 2, 3])
    core = np.tile(rgb, (1, CORE // rgb.shape[1] + 1, CORE // rgb.shape[2] + 1))[:, :CORE, :CORE]
    c0 = (SIZE - CORE) // 2 // 256 * 256  # on the tile grid
    prof = dict(
        driver="GTiff",
        width=SIZE,
        height=SIZE,
        crs="EPSG:3857",
        transform=transform,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        zlevel=1,
        BIGTIFF="IF_SAFER",
    )
    tmp = folder / "big_tiled.tif"
    with rasterio.open(tmp, "w", count=3, dtype="uint8", **prof) as ds:
        ds.write(core, window=Window(c0, c0, CORE, CORE))  # the rest stays 0 (sparse)
    with rasterio.open(tmp, "r+") as ds:
        ds.build_overviews([2, 4, 8, 16, 32, 64], rasterio.enums.Resampling.average)
    rasterio.shutil.copy(
        tmp, out, driver="COG", COMPRESS="DEFLATE", LEVEL=1, OVERVIEWS="FORCE_USE_EXISTING", BIGTIFF="IF_SAFER"
    )
    tmp.unlink()
    gt = np.zeros((1, CORE, CORE), np.uint8)
    gt[:, 256:768, 256:1024] = 1
    gt[:, 1200:1800, 900:1300] = 1
    gp = dict(prof, count=1, dtype="uint8")
    with rasterio.open(folder / "big_gt.tif", "w", **gp) as ds:
        ds.write(gt, window=Window(c0, c0, CORE, CORE))
        ds.build_overviews([2, 4, 8, 16, 32, 64], rasterio.enums.Resampling.nearest)
    facts = {"zoom": ZOOM, "x0": x0, "y0": y0, "core_off": c0, "core": CORE, "size": SIZE}
    meta.write_text(json.dumps(facts))
    return facts


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
