"""Land-cover datasets: Dubai aerial (6 classes) and Chesapeake NAIP patches.

Dubai split rule: by tile folder. ``Tile 8`` is *test*, ``Tile 7`` is *val*, Tiles 1-6
are *train*. Masks are RGB colour codes mapped to class ids with the hex codes below
(the ``classes.json`` shipped with the data has wrong colours and is not used); some
masks are paletted PNGs, expanded through their colour table.
``unlabelled`` (id 5) is the ignore index.

Chesapeake split rule: the origin's own ``test-train_patches`` / ``test-val_patches`` folders
(two different NAIP quarter-quads, so spatially disjoint).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rsviz.data import catalog
from rsviz.datasets.base import ClassInfo, Sample, SceneRef
from rsviz.labels import colour_mask_to_ids, edges_from_mask
from rsviz.raster import read_colour_mask, read_raster

DUBAI = "dubai-landcover"
DUBAI_CLASSES = (
    ClassInfo(0, "building", (0x3C, 0x10, 0x98)),
    ClassInfo(1, "land", (0x84, 0x29, 0xF6)),
    ClassInfo(2, "road", (0x6E, 0xC1, 0xE4)),
    ClassInfo(3, "vegetation", (0xFE, 0xDD, 0x3A)),
    ClassInfo(4, "water", (0xE2, 0xA9, 0x29)),
    ClassInfo(5, "unlabelled", (0x9B, 0x9B, 0x9B)),
)
DUBAI_IGNORE = 5

#: OpenEarthMap's 8 classes with its reference colours (Xia et al., WACV 2023).
OPENEARTHMAP_CLASSES = (
    ClassInfo(1, "bareland", (128, 0, 0)),
    ClassInfo(2, "rangeland", (0, 255, 36)),
    ClassInfo(3, "developed space", (148, 148, 148)),
    ClassInfo(4, "road", (255, 255, 255)),
    ClassInfo(5, "tree", (34, 97, 38)),
    ClassInfo(6, "water", (0, 69, 255)),
    ClassInfo(7, "agriculture land", (75, 181, 73)),
    ClassInfo(8, "building", (222, 31, 7)),
)


#: Id of Dubai's "unlabelled" class: the land-cover card's ignore_index, and where pixels of no class colour go.
DUBAI_UNLABELLED = 5


def dubai_split(tile: int) -> str:
    """Split of a Dubai tile folder number (see module docstring)."""
    return "test" if tile == 8 else "val" if tile == 7 else "train"


def load_dubai(img: Path, mask: Path, tile: int) -> Sample:
    """One Dubai image (RGB uint8 JPEG, not georeferenced) with class ids from its colour mask."""
    r = read_raster(img)
    # pixels of no class colour (546,609 black pixels in the Tile 8 masks) are unlabelled, not the nearest class
    ids = colour_mask_to_ids(read_colour_mask(mask), [c.color for c in DUBAI_CLASSES], unmatched=DUBAI_UNLABELLED)
    return Sample(
        id=f"tile{tile}-{img.stem}",
        dataset=DUBAI,
        split=dubai_split(tile),
        image=r.array[:3],
        band_names=("red", "green", "blue"),
        targets={"classes": ids, "edges": edges_from_mask(ids)},
        classes=DUBAI_CLASSES,
        path=img,
    )


def dubai_scenes() -> list[SceneRef]:
    """All 72 Dubai images with masks."""
    root = catalog.dataset_root(DUBAI).parent
    out = []
    for e in catalog.files(DUBAI):
        m = re.search(r"Tile (\d+)/images/(.+)\.jpg$", e.path)
        if not m:
            continue
        tile = int(m[1])
        img = root / e.path
        mask = root / e.path.replace("/images/", "/masks/").replace(".jpg", ".png")
        out.append(
            SceneRef(
                DUBAI,
                f"tile{tile}-{img.stem}",
                dubai_split(tile),
                img,
                (lambda i=img, k=mask, t=tile: load_dubai(i, k, t)),
                task="landcover",
            )
        )
    return sorted(out, key=lambda s: s.id)


CHESAPEAKE = "chesapeake-landcover"
#: Chesapeake Conservancy high-resolution land-cover classes (channel 8 of the patches).
CHESAPEAKE_CLASSES = (
    ClassInfo(0, "no data", (0, 0, 0)),
    ClassInfo(1, "water", (0, 0, 255)),
    ClassInfo(2, "tree canopy / forest", (0, 128, 0)),
    ClassInfo(3, "low vegetation / field", (128, 255, 128)),
    ClassInfo(4, "barren land", (128, 96, 96)),
    ClassInfo(5, "impervious (other)", (192, 192, 192)),
    ClassInfo(6, "impervious (road)", (64, 64, 64)),
)


def load_chesapeake(path: Path, split: str) -> Sample:
    """One Chesapeake patch: NAIP R, G, B, NIR (channels 0-3, 1 m) and land cover (channel 8).

    Class 15 (no data in the origin) is mapped to 0 and marked invalid.
    """
    with np.load(path, allow_pickle=False) as z:
        a = z["arr_0"][0]
    lc = a[8].astype(np.int64)
    valid = (lc >= 1) & (lc <= 6)
    lc = np.where(valid, lc, 0).astype(np.uint8)
    return Sample(
        id=path.stem,
        dataset=CHESAPEAKE,
        split=split,
        image=a[:4].astype(np.uint8),
        band_names=("red", "green", "blue", "nir"),
        valid=valid,
        targets={"classes": lc, "edges": edges_from_mask(lc)},
        classes=CHESAPEAKE_CLASSES,
        path=path,
    )


def chesapeake_scenes() -> list[SceneRef]:
    """The 16 Chesapeake patches (8 train, 8 val folder)."""
    root = catalog.dataset_root(CHESAPEAKE).parent
    out = []
    for e in catalog.files(CHESAPEAKE):
        if e.path.endswith(".npz"):
            split = "val" if "test-val_patches" in e.path else "train"
            p = root / e.path
            out.append(
                SceneRef(CHESAPEAKE, p.stem, split, p, (lambda p=p, s=split: load_chesapeake(p, s)), task="landcover")
            )
    return sorted(out, key=lambda s: s.id)
