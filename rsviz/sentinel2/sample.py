"""A Sentinel-2 scene assembled from the real BigEarthNet patches of the data mirror, each at its own place.

The GeoTIFF-form BigEarthNet sample patches (:func:`rsviz.datasets.bigearthnet.bigearthnet_scenes`) keep
their georeferencing (UTM, 10 / 20 / 60 m). The patches of the CRS that has most of them, within
:data:`CLUSTER_M` of their median centre (four patches in County Meath / Westmeath, Ireland, EPSG:32629),
are written into one scene (with nearest-neighbour overviews) whose upper-left corner is a patch corner, so every patch falls on the scene's
120 px grid. Pixels between patches are nodata (0, as in L2A), stored sparse (GDAL ``SPARSE_OK``), so the
files stay small. Two layouts of the same data are written into the derived cache:

* ``stack.tif``: 12 bands on the 10 m grid in L2A order, 20 / 60 m bands pixel-replicated as
  :func:`rsviz.datasets.bigearthnet.upsample_stack` does, band descriptions ``B01``...``B12``;
* ``bands/``: one file per band at its native resolution (``<name>_B02.tif`` at 10 m, ``_B05`` at 20 m,
  ``_B01`` at 60 m), as an L2A product ships them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from rsviz.sentinel2.bands import L2A_ORDER, RESOLUTION_M

#: Patches farther than this from their CRS group's median centre are left out, metres.
CLUSTER_M = 150_000.0
#: Version of the layout written (a change rebuilds the cache).
VERSION = 2
PATCH_M = 1200.0


@dataclass(frozen=True)
class ReferencePatch:
    """A labelled BigEarthNet patch placed by its georeferencing.

    Attributes:
        id: Patch name.
        split: ``train`` / ``val`` / ``test`` (:func:`rsviz.datasets.bigearthnet.patch_split`).
        bounds: ``(west, south, east, north)`` in ``crs``, metres.
        crs: Its CRS.
        labels19: ``(19,)`` uint8 multi-hot BigEarthNet-19 labels.
    """

    id: str
    split: str
    bounds: tuple[float, float, float, float]
    crs: CRS
    labels19: np.ndarray


@dataclass(frozen=True)
class SampleScene:
    """Paths of the assembled scene.

    Attributes:
        stack: The 12-band GeoTIFF.
        folder: The per-band folder.
        patches: The placed patches, with their labels.
    """

    stack: Path
    folder: Path
    patches: tuple[ReferencePatch, ...]


def reference_patches() -> list[ReferencePatch]:
    """Every GeoTIFF-form BigEarthNet sample patch with its bounds, CRS and labels (any CRS).

    Raises:
        DataMissingError: The BigEarthNet data are not in the mirror (message names the fetch command).
    """
    from rsviz.data import catalog
    from rsviz.datasets.bigearthnet import bigearthnet_scenes

    catalog.require("bigearthnet")
    out = []
    for ref in bigearthnet_scenes():
        s = ref.load()
        t = s.transform
        out.append(
            ReferencePatch(s.id, s.split, (t.c, t.f + t.e * 120, t.c + t.a * 120, t.f), s.crs, s.extra["labels19"])
        )
    return out


def _cluster(patches: list[ReferencePatch]) -> list[ReferencePatch]:
    by_crs: dict[str, list[ReferencePatch]] = {}
    for p in patches:
        by_crs.setdefault(p.crs.to_string(), []).append(p)
    group = max(by_crs.values(), key=len)
    cx = float(np.median([p.bounds[0] for p in group]))
    cy = float(np.median([p.bounds[3] for p in group]))
    near = [p for p in group if np.hypot(p.bounds[0] - cx, p.bounds[3] - cy) <= CLUSTER_M]
    x0, y1 = min(p.bounds[0] for p in near), max(p.bounds[3] for p in near)
    return [
        p
        for p in near
        if abs((p.bounds[0] - x0) / PATCH_M - round((p.bounds[0] - x0) / PATCH_M)) < 1e-6
        and abs((y1 - p.bounds[3]) / PATCH_M - round((y1 - p.bounds[3]) / PATCH_M)) < 1e-6
    ]


def _profile(width: int, height: int, count: int, transform: Affine, crs: CRS) -> dict[str, object]:
    return {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": "uint16",
        "crs": crs,
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 240,
        "blockysize": 240,
        "compress": "deflate",
        "sparse_ok": True,
    }


def bigearthnet_scene(root: Path | None = None) -> SampleScene:
    """Build (once) and return the assembled scene (see module docstring).

    Args:
        root: Folder to build in (default: ``<derived cache>/sentinel2/bigearthnet-v<VERSION>``).

    Returns:
        The :class:`SampleScene`.

    Raises:
        DataMissingError: The BigEarthNet data are not in the mirror.
    """
    from rsviz.datasets.bigearthnet import bigearthnet_scenes, load_patch
    from rsviz.resources import cache_dir

    root = root or cache_dir() / "sentinel2" / f"bigearthnet-v{VERSION}"
    placed = _cluster(reference_patches())
    x0, y1 = min(p.bounds[0] for p in placed), max(p.bounds[3] for p in placed)
    x1, y0 = max(p.bounds[2] for p in placed), min(p.bounds[1] for p in placed)
    crs = placed[0].crs
    w, h = round((x1 - x0) / 10), round((y1 - y0) / 10)
    stack, folder, done = root / "stack.tif", root / "bands", root / "done.json"
    if done.is_file() and json.loads(done.read_text()).get("patches") == [p.id for p in placed]:
        return SampleScene(stack, folder, tuple(placed))
    root.mkdir(parents=True, exist_ok=True)
    folder.mkdir(exist_ok=True)
    dirs = {r.id: r.path for r in bigearthnet_scenes()}
    samples = {p.id: load_patch(dirs[p.id], p.split) for p in placed}
    from rsviz.datasets.bigearthnet import BANDS

    t10 = Affine(10, 0, x0, 0, -10, y1)
    with rasterio.open(stack, "w", **_profile(w, h, 12, t10, crs)) as ds:
        ds.descriptions = L2A_ORDER
        for p in placed:
            img = samples[p.id].image  # BANDS order, replicated to 120 px
            col, row = round((p.bounds[0] - x0) / 10), round((y1 - p.bounds[3]) / 10)
            for i, b in enumerate(L2A_ORDER, 1):
                ds.write(img[BANDS.index(b)], i, window=Window(col, row, 120, 120))
    with rasterio.open(stack, "r+") as ds:  # overviews: the map's low-zoom tiles read a few blocks, not the scene
        ds.build_overviews([2, 4, 8, 16, 32], Resampling.nearest)
    stem = "S2_BigEarthNet_assembled"
    for b in L2A_ORDER:
        res = RESOLUTION_M[b]
        n = 120 * 10 // res
        key = {10: "10m", 20: "20m", 60: "60m"}[res]
        t = Affine(res, 0, x0, 0, -res, y1)
        with rasterio.open(folder / f"{stem}_{b}.tif", "w", **_profile(w * 10 // res, h * 10 // res, 1, t, crs)) as ds:
            ds.descriptions = (b,)
            for p in placed:
                native = samples[p.id].extra[key]
                from rsviz.datasets.bigearthnet import BANDS_10M, BANDS_20M, BANDS_60M

                names = {"10m": BANDS_10M, "20m": BANDS_20M, "60m": BANDS_60M}[key]
                col, row = round((p.bounds[0] - x0) / res), round((y1 - p.bounds[3]) / res)
                ds.write(native[names.index(b)], 1, window=Window(col, row, n, n))
    done.write_text(json.dumps({"patches": [p.id for p in placed]}))
    return SampleScene(stack, folder, tuple(placed))
