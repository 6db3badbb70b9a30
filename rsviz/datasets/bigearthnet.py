"""BigEarthNet Sentinel-2 patches (GeoTIFF form) and the 43 -> 19 class nomenclature.

Patches are 1.2 km x 1.2 km: 10 m bands 120x120, 20 m bands 60x60, 60 m bands 20x20
(Sumbul et al., "BigEarthNet", IGARSS 2019). The 19-class nomenclature and its mapping
from the 43 CORINE Land Cover level-3 labels follow Sumbul et al., "BigEarthNet-MM",
IEEE GRSM 2021 (11 labels without a 19-class counterpart are dropped).

Split rule for the 11 GeoTIFF sample patches: sorted by name, every fourth patch
(index 3, 7) is *test*, index 10 is *val*, the rest *train*.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from rsviz.data import catalog
from rsviz.datasets.base import Sample, SceneRef
from rsviz.raster import read_raster

BIGEARTHNET = "bigearthnet"
BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
BANDS_60M = ("B01", "B09")
#: Input order of the 12-band models: 10 m, then 20 m, then 60 m bands.
BANDS = BANDS_10M + BANDS_20M + BANDS_60M

LABELS_19 = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

#: CORINE level-3 label (BigEarthNet 43) -> 19-class label.
MAP_43_TO_19 = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Industrial or commercial units": "Industrial or commercial units",
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Pastures": "Pastures",
    "Complex cultivation patterns": "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation": "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas": "Agro-forestry areas",
    "Broad-leaved forest": "Broad-leaved forest",
    "Coniferous forest": "Coniferous forest",
    "Mixed forest": "Mixed forest",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Beaches, dunes, sands": "Beaches, dunes, sands",
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}


def labels_to_19(labels: list[str]) -> np.ndarray:
    """Multi-hot ``(19,)`` uint8 vector from BigEarthNet-43 label names (unmapped labels dropped)."""
    v = np.zeros(len(LABELS_19), np.uint8)
    for lab in labels:
        if lab in MAP_43_TO_19:
            v[LABELS_19.index(MAP_43_TO_19[lab])] = 1
        elif lab in LABELS_19:
            v[LABELS_19.index(lab)] = 1
    return v


def load_patch(folder: Path, split: str) -> Sample:
    """One GeoTIFF-form BigEarthNet patch.

    Returns:
        Sample whose ``image`` is ``(12, 120, 120)`` uint16 L2A reflectance x 10000 in
        :data:`BANDS` order with 20 m / 60 m bands upsampled to 10 m by pixel replication
        (x2 / x6, so average pooling recovers the native bands exactly);
        ``extra`` holds the native ``"10m"`` ``(4, 120, 120)``, ``"20m"`` ``(6, 60, 60)``,
        ``"60m"`` ``(2, 20, 20)`` arrays, ``"labels43"`` (names) and ``"labels19"``
        (multi-hot ``(19,)``).
    """
    name = folder.name
    arrs, transform, crs = {}, None, None
    for b in BANDS:
        r = read_raster(folder / f"{name}_{b}.tif")
        arrs[b] = r.array[0]
        if b == "B02":
            transform, crs = r.transform, r.crs
    native = {
        "10m": np.stack([arrs[b] for b in BANDS_10M]),
        "20m": np.stack([arrs[b] for b in BANDS_20M]),
        "60m": np.stack([arrs[b] for b in BANDS_60M]),
    }
    up = upsample_stack(arrs)
    meta = json.loads((folder / f"{name}_labels_metadata.json").read_text())
    return Sample(
        id=name,
        dataset=BIGEARTHNET,
        split=split,
        image=np.stack(up),
        band_names=BANDS,
        scale=(0.0, 10000.0),
        transform=transform,
        crs=crs,
        path=folder / f"{name}_B02.tif",
        extra={**native, "labels43": meta["labels"], "labels19": labels_to_19(meta["labels"])},
    )


def upsample_stack(bands: dict[str, np.ndarray]) -> np.ndarray:
    """Stack the 12 bands at 120 x 120 in :data:`BANDS` order, replicating 20 m (x2) and 60 m (x6) pixels.

    Args:
        bands: Band name -> native array (120, 60 or 20 pixels square).

    Returns:
        ``(12, 120, 120)`` array of the input dtype.
    """
    out = []
    for b in BANDS:
        a = np.asarray(bands[b])
        f = 120 // a.shape[0]
        out.append(np.repeat(np.repeat(a, f, axis=0), f, axis=1) if f > 1 else a)
    return np.stack(out)


LMDB_V2 = "configilm/extra/mock_data/BENv2"


def lmdb_patches() -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """BigEarthNet v2 Sentinel-2 patches from the LMDB of safetensors (configilm mock data).

    Values are read with :func:`safetensors.numpy.load` (never unpickled); labels and the
    split come from ``metadata.parquet`` (v2 labels are already in the 19-class nomenclature).

    Returns:
        ``[(patch_id, split, image (12, 120, 120) uint16, labels19 (19,) uint8)]`` with split
        ``train`` / ``val`` / ``test``.
    """
    import lmdb
    import pyarrow.parquet as pq
    from safetensors.numpy import load

    root = catalog.require(BIGEARTHNET) / LMDB_V2
    meta = pq.read_table(root / "metadata.parquet").to_pylist()
    out = []
    env = lmdb.open(str(root / "BigEarthNet-V2-LMDB"), readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            for row in meta:
                v = txn.get(row["patch_id"].encode())
                if v is None:
                    continue
                split = {"validation": "val"}.get(row["split"], row["split"])
                out.append((row["patch_id"], split, upsample_stack(load(v)), labels_to_19(list(row["labels"]))))
    finally:
        env.close()
    return out


def patch_split(index: int) -> str:
    """Split by sorted index (see module docstring)."""
    return "test" if index in (3, 7) else "val" if index == 10 else "train"


def bigearthnet_scenes() -> list[SceneRef]:
    """The 11 GeoTIFF-form sample patches."""
    root = catalog.dataset_root(BIGEARTHNET).parent
    folders = sorted(
        {
            (root / e.path).parent
            for e in catalog.files(BIGEARTHNET)
            if re.search(r"tests/datasets/tiny/.+_B02\.tif$", e.path)
        }
    )
    return [
        SceneRef(BIGEARTHNET, f.name, patch_split(i), f, (lambda f=f, s=patch_split(i): load_patch(f, s)), task="scene")
        for i, f in enumerate(folders)
    ]


def patches_by_split(root: str | None = None) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """Every labelled BigEarthNet patch by split.

    Args:
        root: A full BigEarthNet-S2 folder (``<patch>/<patch>_<band>.tif``) to read instead of the
            sample data; split by :func:`patch_split`.

    Returns:
        ``{split: [(patch id, (12, 120, 120) uint16 image in :data:`BANDS` order, (19,) {0, 1} labels)]}``.
    """
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    if root:
        for i, f in enumerate(sorted(p for p in Path(root).iterdir() if p.is_dir())):
            s = load_patch(f, patch_split(i))
            out[s.split].append((s.id, s.image, s.extra["labels19"]))
        return out
    for ref in bigearthnet_scenes():
        s = ref.load()
        out[s.split].append((s.id, s.image, s.extra["labels19"]))
    for pid, split, img, lab in lmdb_patches():
        out[split].append((pid, img, lab))
    return out
