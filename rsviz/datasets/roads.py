"""Road datasets: ETH CIL tiles and the SpaceNet Las Vegas samples.

ETH split rule: by image number, ``satImage_001``-``080`` *train*, ``081``-``090`` *val*,
``091``-``100`` *test* (separate crops of different suburbs). Masks are anti-aliased
0-255 and thresholded at 128.

ETH GSD: the source does not state it and the tiles carry no georeferencing, so it was measured
(:data:`ETH_GSD_M`) from the regulation tennis courts (ITF: 23.77 x 10.97 m doubles, 8.23 m singles
width, 12.80 m between service lines) in ``satImage_005`` (pixel columns 346-376, rows 167-231).
Line centres 30 px apart across the doubles width, 22 px across the singles width, 64 px between
baselines and 34 px between service lines give 0.366, 0.374, 0.371 and 0.376 m/px (mean 0.372; the
1 px reading error is 1.5-4.5 %). All 100 tiles are Chicago crops of one source at one scale (house
and street sizes match across tiles); the measurement assumes they share it.
"""

from __future__ import annotations

import re
from pathlib import Path

from rsviz.data import catalog
from rsviz.datasets.base import ClassInfo, Sample, SceneRef
from rsviz.labels import edges_from_mask, threshold_mask
from rsviz.raster import read_raster

ETH = "eth-roads"
ROAD_CLASSES = (ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "road", (255, 200, 0)))
SPACENET = "spacenet-samples"

#: Ground sampling distance of the ETH tiles, metres per pixel, measured (see the module docstring).
ETH_GSD_M = 0.372


def eth_split(n: int) -> str:
    """Split of ETH image number ``n`` (see module docstring)."""
    return "train" if n <= 80 else "val" if n <= 90 else "test"


def load_eth(img: Path, mask: Path, n: int) -> Sample:
    """One ETH tile (RGB uint8 400x400, not georeferenced) with its road mask."""
    r = read_raster(img)
    m = threshold_mask(read_raster(mask).array)
    return Sample(
        id=img.stem,
        dataset=ETH,
        split=eth_split(n),
        image=r.array[:3],
        band_names=("red", "green", "blue"),
        targets={"roads": m, "edges": edges_from_mask(m)},
        classes=ROAD_CLASSES,
        path=img,
        extra={"gsd_m": ETH_GSD_M},
    )


def eth_scenes() -> list[SceneRef]:
    """The 100 ETH tiles."""
    root = catalog.dataset_root(ETH).parent
    out = []
    for e in catalog.files(ETH):
        m = re.search(r"/images/satImage_(\d+)\.png$", e.path)
        if m:
            n = int(m[1])
            img = root / e.path
            mask = root / e.path.replace("/images/", "/groundtruth/")
            out.append(
                SceneRef(ETH, img.stem, eth_split(n), img, (lambda i=img, k=mask, n=n: load_eth(i, k, n)), task="roads")
            )
    return sorted(out, key=lambda s: s.id)


def load_vegas() -> Sample:
    """SpaceNet Las Vegas road tile (solaris sample): 1-band uint16 image with the road raster mask (EPSG:4326)."""
    p = catalog.local_path(SPACENET, "solaris/data/road_mask_input.tif")
    r = read_raster(p)
    m = read_raster(catalog.local_path(SPACENET, "solaris/data/sample_road_raster_mask.tif"))
    mask = (m.array[0] > 0).astype("uint8")
    return Sample(
        id="vegas-roads",
        dataset=SPACENET,
        split="test",
        image=r.array,
        band_names=("pan",),
        scale=(0.0, float(r.array.max() or 1)),
        transform=r.transform,
        crs=r.crs,
        valid=r.valid,
        targets={"roads": mask, "edges": edges_from_mask(mask)},
        classes=ROAD_CLASSES,
        path=p,
    )


def load_vegas_rgb() -> Sample:
    """SpaceNet Las Vegas RGB-PanSharpen tile (apls sample), EPSG:4326, first three bands, no raster labels."""
    p = catalog.local_path(SPACENET, "apls/data/images/RGB-PanSharpen_AOI_2_Vegas_img0.tif")
    r = read_raster(p)
    return Sample(
        id="vegas-rgb",
        dataset=SPACENET,
        split="predict",
        image=r.array[:3],
        band_names=("red", "green", "blue"),
        transform=r.transform,
        crs=r.crs,
        valid=r.valid,
        classes=ROAD_CLASSES,
        path=p,
    )


def load_atlanta() -> Sample:
    """SpaceNet Atlanta panchromatic tile (uint16, EPSG:32616, 0.5 m) with building polygons."""
    from rsviz.datasets.buildings import BUILDING_CLASSES
    from rsviz.labels import rasterize_polygons, read_geojson_features

    p = catalog.local_path(SPACENET, "solaris/data/sample_geotiff.tif")
    r = read_raster(p)
    feats, crs = read_geojson_features(catalog.local_path(SPACENET, "solaris/data/geotiff_labels.geojson"))
    mask = rasterize_polygons([f["geometry"] for f in feats], r.transform, r.shape, r.crs, crs)
    return Sample(
        id="atlanta-pan",
        dataset=SPACENET,
        split="test",
        image=r.array,
        band_names=("pan",),
        scale=(0.0, 2047.0),
        transform=r.transform,
        crs=r.crs,
        valid=r.valid,
        targets={"buildings": mask, "edges": edges_from_mask(mask)},
        classes=BUILDING_CLASSES,
        path=p,
    )


def spacenet_scenes() -> list[SceneRef]:
    """SpaceNet samples: Vegas roads (pan + mask), Vegas RGB, Atlanta pan buildings."""
    root = catalog.dataset_root(SPACENET)
    return [
        SceneRef(
            SPACENET, "atlanta-pan", "test", root / "solaris/data/sample_geotiff.tif", load_atlanta, task="buildings"
        ),
        SceneRef(
            SPACENET,
            "vegas-rgb",
            "predict",
            root / "apls/data/images/RGB-PanSharpen_AOI_2_Vegas_img0.tif",
            load_vegas_rgb,
            task="roads",
        ),
        SceneRef(SPACENET, "vegas-roads", "test", root / "solaris/data/road_mask_input.tif", load_vegas, task="roads"),
    ]
