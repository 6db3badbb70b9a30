"""Height datasets: Potsdam nDSM patches, NEON canopy height, Alexandria lidar.

* **Potsdam**: IR-R-G 8-bit patches with an 8-bit normalised DSM. The height target is
  ``dsm / 255`` -- *relative* height (one global scale, ground ~0), not metres.
  Splits: the origin's ``train`` / ``val`` / ``test`` folders.
* **NEON**: RGB 0.1 m with a 1 m canopy height model in metres; the CHM is resampled
  onto the RGB grid (nearest neighbour, explicit). *test* only.
* **Alexandria**: 2 m lidar DSM (image, metres) with height above ground (metres) and
  rasterized building polygons. *test* only.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from rasterio.warp import Resampling, reproject

from rsviz.data import catalog
from rsviz.datasets.base import Sample, SceneRef
from rsviz.raster import read_raster

POTSDAM = "potsdam-height"
NEON = "neon-trees"
ALEXANDRIA = "alexandria-height"


def load_potsdam(img: Path, dsm: Path, split: str) -> Sample:
    """One Potsdam patch: IR, R, G uint8 (256x256) and relative height in [0, 1]."""
    r = read_raster(img)
    h = read_raster(dsm).array[0].astype(np.float32) / 255.0
    return Sample(
        id=img.stem.removesuffix("_img"),
        dataset=POTSDAM,
        split=split,
        image=r.array[:3],
        band_names=("nir", "red", "green"),
        targets={"height": h},
        height_units="relative",
        path=img,
    )


def potsdam_scenes() -> list[SceneRef]:
    """All 180 Potsdam pairs with the origin's splits."""
    root = catalog.dataset_root(POTSDAM).parent
    out = []
    for e in catalog.files(POTSDAM):
        m = re.search(r"dataset/(train|val|test)A/(.+)_img\.png$", e.path)
        if m:
            img = root / e.path
            dsm = root / e.path.replace(f"{m[1]}A/", f"{m[1]}B/").replace("_img.png", "_dsm.png")
            out.append(
                SceneRef(
                    POTSDAM,
                    img.stem.removesuffix("_img"),
                    m[1],
                    img,
                    (lambda i=img, d=dsm, s=m[1]: load_potsdam(i, d, s)),
                    task="height",
                )
            )
    return sorted(out, key=lambda s: s.id)


def load_neon(site: str) -> Sample:
    """NEON plot ``site`` (``SJER_052`` or ``JERC_049``): RGB with CHM (metres) on the RGB grid."""
    base = "tests/data/NeonTreeEvaluation/evaluation"
    p = catalog.local_path(NEON, f"{base}/RGB/{site}.tif")
    r = read_raster(p)
    c = read_raster(catalog.local_path(NEON, f"{base}/CHM/{site}_CHM.tif"))
    h = np.full(r.shape, np.nan, np.float32)
    src = np.where(c.valid, c.array[0], np.nan).astype(np.float32)
    reproject(
        src,
        h,
        src_transform=c.transform,
        src_crs=c.crs,
        dst_transform=r.transform,
        dst_crs=r.crs,
        resampling=Resampling.nearest,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    valid = r.valid & np.isfinite(h)
    return Sample(
        id=site,
        dataset=NEON,
        split="test",
        image=r.array[:3],
        band_names=("red", "green", "blue"),
        transform=r.transform,
        crs=r.crs,
        valid=valid,
        targets={"height": np.nan_to_num(h)},
        height_units="m",
        path=p,
    )


def load_alexandria() -> Sample:
    """Alexandria lidar: DSM (metres) as a 1-band image, height above ground (m) and building mask."""
    from rsviz.datasets.buildings import BUILDING_CLASSES
    from rsviz.labels import rasterize_polygons, read_geojson_features

    p = catalog.local_path(ALEXANDRIA, "elevation/dsm.tif")
    dsm = read_raster(p)
    hag = read_raster(catalog.local_path(ALEXANDRIA, "elevation/hag.tif"))
    feats, crs = read_geojson_features(catalog.local_path(ALEXANDRIA, "elevation/buildings.geojson"))
    mask = rasterize_polygons([f["geometry"] for f in feats], dsm.transform, dsm.shape, dsm.crs, crs)
    valid = dsm.valid & hag.valid
    return Sample(
        id="alexandria",
        dataset=ALEXANDRIA,
        split="test",
        image=dsm.array.astype(np.float32),
        band_names=("dsm",),
        scale=(float(dsm.array[0][valid].min()), float(dsm.array[0][valid].max())),
        transform=dsm.transform,
        crs=dsm.crs,
        valid=valid,
        targets={"height": np.where(valid, hag.array[0], 0).astype(np.float32), "buildings": mask},
        classes=BUILDING_CLASSES,
        height_units="m",
        path=p,
    )


def neon_scenes() -> list[SceneRef]:
    """The two NEON plots that have a CHM."""
    root = catalog.dataset_root(NEON) / "tests/data/NeonTreeEvaluation/evaluation/RGB"
    return [
        SceneRef(NEON, s, "test", root / f"{s}.tif", (lambda s=s: load_neon(s)), task="height")
        for s in ("JERC_049", "SJER_052")
    ]


def alexandria_scenes() -> list[SceneRef]:
    """The Alexandria lidar scene."""
    return [
        SceneRef(
            ALEXANDRIA,
            "alexandria",
            "test",
            catalog.dataset_root(ALEXANDRIA) / "elevation/dsm.tif",
            load_alexandria,
            task="height",
        )
    ]
