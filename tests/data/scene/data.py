#!/usr/bin/env python3
"""Generate the small seeded GeoTIFF fixtures in this folder (torchgeo style).

Run from anywhere: ``python tests/data/scene/data.py``. Outputs (all EPSG:32633, 0.5 m):

* ``image.tif``: 3 x 96 x 160 uint8 RGB, nodata 0 in the top-left 8 x 8 block.
* ``gt.tif``: 1 x 96 x 160 uint8 building mask on the same grid (two rectangles).
* ``gt_shifted.tif``: like ``gt.tif`` but its grid is shifted by 10 m (grid mismatch).
* ``one_band.tif``: 1 x 96 x 160 uint8 (wrong band count for RGB models).
* ``no_crs.tif``: 3 x 32 x 32 uint8 without CRS or transform.
* ``not_a_raster.tif``: a text file with a .tif name.
* ``buildings.geojson``: the two rectangles as EPSG:4326 polygons.
"""

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_geom

HERE = Path(__file__).resolve().parent
CRS = "EPSG:32633"
ORIGIN = (500000.0, 5000000.0)
RES = 0.5
H, W = 96, 160
RECTS = [(10, 20, 40, 60), (50, 90, 80, 150)]  # row0, col0, row1, col1 (exclusive)


def _write(path: Path, arr: np.ndarray, transform=None, crs=CRS, nodata=None) -> None:
    profile = {
        "driver": "GTiff",
        "height": arr.shape[1],
        "width": arr.shape[2],
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
    }
    if transform is not None:
        profile.update(transform=transform, crs=crs)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)


def main() -> None:
    rng = np.random.default_rng(0)
    t = from_origin(*ORIGIN, RES, RES)
    img = rng.integers(30, 220, size=(3, H, W), dtype=np.uint8)
    mask = np.zeros((H, W), np.uint8)
    for r0, c0, r1, c1 in RECTS:
        mask[r0:r1, c0:c1] = 1
        img[:, r0:r1, c0:c1] = np.array([200, 60, 60], np.uint8)[:, None, None]
    img[:, :8, :8] = 0
    _write(HERE / "image.tif", img, t, nodata=0)
    _write(HERE / "gt.tif", mask[None], t)
    _write(HERE / "gt_shifted.tif", mask[None], from_origin(ORIGIN[0] + 10, ORIGIN[1], RES, RES))
    _write(HERE / "one_band.tif", img[:1], t)
    with rasterio.open(HERE / "no_crs.tif", "w", driver="GTiff", height=32, width=32, count=3, dtype="uint8") as dst:
        dst.write(img[:, :32, :32])
    (HERE / "not_a_raster.tif").write_text("this is not a raster\n")
    feats = []
    for r0, c0, r1, c1 in RECTS:
        x0, y0 = t * (c0, r0)
        x1, y1 = t * (c1, r1)
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        g = transform_geom(CRS, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
        feats.append({"type": "Feature", "properties": {"building": "yes"}, "geometry": g})
    import json

    (HERE / "buildings.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))


if __name__ == "__main__":
    main()
