"""Sample and scene types shared by all dataset loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from rsviz.geo import gsd_metres
from rsviz.types import ClassInfo

__all__ = ["ClassInfo", "Sample", "SceneRef"]

Split = Literal["train", "val", "test", "predict"]
SPLITS: tuple[str, ...] = ("train", "val", "test", "predict")


@dataclass
class Sample:
    """One image with its aligned ground truth.

    Attributes:
        id: Scene id, unique within the dataset.
        dataset: Catalog dataset name.
        split: ``train`` / ``val`` / ``test`` / ``predict`` (no labels).
        image: ``(bands, height, width)`` pixel values (dtype as stored).
        band_names: One name per band.
        scale: Nominal value range of ``image`` (e.g. ``(0, 255)``).
        transform: Affine pixel-to-CRS transform (identity if not georeferenced).
        crs: CRS of ``transform`` or None.
        valid: ``(height, width)`` bool valid-data mask (nodata / alpha).
        targets: Ground truth on the image grid, each ``(height, width)``:
            ``buildings`` / ``roads`` (uint8 0/1), ``edges`` (uint8 0/1, see
            :func:`rsviz.labels.edges_from_mask`), ``classes`` (uint8 class ids),
            ``height`` (float32; units in ``height_units``).
        classes: Class legend for ``classes`` / binary targets.
        height_units: ``"m"``, ``"relative"`` (0-1 scaled nDSM) or ``""``.
        path: Image file.
        extra: Dataset-specific extras (e.g. per-resolution Sentinel-2 bands, image labels).
    """

    id: str
    dataset: str
    split: str
    image: np.ndarray
    band_names: tuple[str, ...]
    scale: tuple[float, float] = (0.0, 255.0)
    transform: Affine = field(default_factory=Affine.identity)
    crs: CRS | None = None
    valid: np.ndarray | None = None
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    classes: tuple[ClassInfo, ...] = ()
    height_units: str = ""
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.valid is None:
            self.valid = np.ones(self.image.shape[1:], dtype=bool)
        for k, v in self.targets.items():
            if v.shape != self.image.shape[1:]:
                raise ValueError(f"target {k!r} has shape {v.shape}, image grid is {self.image.shape[1:]}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return int(self.image.shape[1]), int(self.image.shape[2])

    def raster_data(self):
        """The image as a :class:`rsviz.raster.RasterData` (``(bands, H, W)``, same grid, CRS, valid mask,
        band names and value scale), e.g. for :func:`rsviz.inference.predict`; the targets are not part of it."""
        from rsviz.raster import RasterData

        return RasterData(self.image, self.transform, self.crs, self.valid, self.band_names, self.scale)

    @property
    def gsd(self) -> float | None:
        """Ground sampling distance in metres: from the CRS, else the dataset's stated or measured
        ``extra["gsd_m"]`` (e.g. the ETH road tiles), else None."""
        if self.crs is None:
            return self.extra.get("gsd_m")
        return gsd_metres(self.transform, self.crs, *self.shape)


@dataclass(frozen=True)
class SceneRef:
    """A lazily loaded scene: cheap to list, :meth:`load` reads it.

    Attributes:
        dataset: Catalog dataset name.
        id: Scene id.
        split: Split name.
        path: Image path.
        loader: Callable returning the :class:`Sample`.
        task: ``buildings`` / ``landcover`` / ``roads`` / ``height`` / ``scene``.
        image_loader: Callable returning the :class:`Sample` without reading its labels (``targets``
            empty), e.g. for the imagery around a chip in context inference; None: :meth:`load_image`
            falls back to :meth:`load` and drops the targets.
    """

    dataset: str
    id: str
    split: str
    path: Path
    loader: Callable[[], Sample] = field(compare=False, repr=False)
    task: str = "buildings"
    image_loader: Callable[[], Sample] | None = field(default=None, compare=False, repr=False)

    def load(self) -> Sample:
        """Read the image and ground truth."""
        return self.loader()

    def load_image(self) -> Sample:
        """Read the image only: the :class:`Sample` has no ``targets``."""
        if self.image_loader is not None:
            return self.image_loader()
        s = self.loader()
        s.targets = {}
        return s
