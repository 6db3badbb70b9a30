"""Sentinel-2 L2A scenes and the BigEarthNet-19 multi-label models run over them as a grid of patches.

* :mod:`~rsviz.sentinel2.bands`: the band table, band names checked against a model card, L2A scaling;
* :mod:`~rsviz.sentinel2.scene`: open a stacked GeoTIFF / COG or a per-band folder (JP2 / TIFF at
  10 / 20 / 60 m, stacked through a VRT), read windows in model units, composites;
* :mod:`~rsviz.sentinel2.patches`: the sliding 120 x 120 px patch grid, batched through the models;
* :mod:`~rsviz.sentinel2.export`: GeoTIFF (one band per label) and GeoJSON grid;
* :mod:`~rsviz.sentinel2.scoring`: per-label P / R / F1, micro / macro F1, mAP and the majority baseline.
"""

from rsviz.sentinel2.bands import L2A_BANDS, L2AScaling, band_indexes
from rsviz.sentinel2.patches import PatchPrediction, predict_patches, predict_variants
from rsviz.sentinel2.scene import S2Scene, open_s2

__all__ = [
    "L2A_BANDS",
    "L2AScaling",
    "PatchPrediction",
    "S2Scene",
    "band_indexes",
    "open_s2",
    "predict_patches",
    "predict_variants",
]
