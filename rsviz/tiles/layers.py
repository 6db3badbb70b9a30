"""What a map tile layer shows, and the registry that maps opaque layer ids to layers.

A :class:`Layer` names a raster on disk and how to colour it; its :meth:`Layer.id` is a
content-addressed, opaque 16-hex-digit id. The tile server (:mod:`rsviz.app.routes`) accepts only
ids found in a :class:`TileRegistry`, so a URL never carries a file path.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path

from rsviz.errors import UnknownNameError
from rsviz.types import BBox


class LayerKind(str, Enum):
    """How a layer's pixels become colours.

    * ``IMAGERY``: 1 band (grey) or 3 bands (RGB), each rescaled from a value range to 0..255.
    * ``CLASSES``: class ids through a discrete colormap; unlisted ids are transparent.
    * ``CONTINUOUS``: one band rescaled to 0..255 through a rio-tiler colormap (e.g. heights).
    * ``ERRORS``: prediction vs. ground truth, TP/FP/FN (binary) or agree/disagree (multiclass).
    * ``DIFFERENCE``: prediction minus ground truth through a diverging colormap.
    """

    IMAGERY = "imagery"
    CLASSES = "classes"
    CONTINUOUS = "continuous"
    ERRORS = "errors"
    DIFFERENCE = "difference"

    def __str__(self) -> str:
        return self.value


#: The colormap a ``DIFFERENCE`` layer uses when none is given (diverging; rio-tiler name).
DIFFERENCE_CMAP = "rdbu"
_DEFAULT_CMAP = "viridis"


@dataclass(frozen=True)
class Layer:
    """A raster layer of the map, and how to colour it.

    Attributes:
        kind: How pixels become colours, see :class:`LayerKind`.
        path: Raster on disk (COG, GeoTIFF, VRT, JP2... anything GDAL reads), in any CRS.
        bands: 1-based band indexes; ``IMAGERY`` takes 1 (grey) or 3 (RGB), the others 1.
        rescale: ``IMAGERY`` / ``CONTINUOUS`` / ``DIFFERENCE``: ``(low, high)`` value range mapped to
            0..255, one pair per band or one pair for all. Empty: uint8 imagery is shown as is, other
            data get a 2..98 percentile stretch from a decimated read (symmetric for ``DIFFERENCE``).
        colormap: ``CLASSES``: ``(class id, (r, g, b, a))`` pairs, 0..255 each; ids not listed are
            transparent.
        cmap: ``CONTINUOUS`` / ``DIFFERENCE``: a rio-tiler colormap name (``rio_tiler.colormap.cmap``).
            A ``DIFFERENCE`` layer left at the default ``"viridis"`` uses :data:`DIFFERENCE_CMAP`.
        nodata: Overrides the nodata value of ``path`` (not of ``reference``).
        reference: ``ERRORS`` / ``DIFFERENCE``: the ground-truth raster compared with ``path``. Both are
            warped onto each tile, so only pixels where both have data are coloured.
        reference_band: 1-based band of ``reference``.
        positive: ``ERRORS`` with ``binary``: the ids that count as positive.
        binary: ``ERRORS``: True -> TP green, FP red, FN blue, TN transparent; False (multiclass) ->
            agreement transparent, disagreement red.
        ignore: ``ERRORS``: ids, in either raster, that are not scored (transparent).
    """

    kind: LayerKind
    path: Path
    bands: tuple[int, ...] = (1,)
    rescale: tuple[tuple[float, float], ...] = ()
    colormap: tuple[tuple[int, tuple[int, int, int, int]], ...] = ()
    cmap: str = _DEFAULT_CMAP
    nodata: float | None = None
    reference: Path | None = None
    reference_band: int = 1
    positive: tuple[int, ...] = (1,)
    binary: bool = True
    ignore: tuple[int, ...] = (255,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", LayerKind(self.kind))
        object.__setattr__(self, "path", Path(self.path))
        if self.reference is not None:
            object.__setattr__(self, "reference", Path(self.reference))
        if not self.bands or any(b < 1 for b in self.bands):
            raise ValueError(f"bands must be 1-based band indexes; got {self.bands}")
        if self.kind is LayerKind.IMAGERY and len(self.bands) not in (1, 3):
            raise ValueError(f"an imagery layer shows 1 (grey) or 3 (RGB) bands; got {len(self.bands)}")
        if self.kind in (LayerKind.ERRORS, LayerKind.DIFFERENCE) and self.reference is None:
            raise ValueError(f"a {self.kind} layer needs a reference (ground-truth) raster")
        if self.rescale and len(self.rescale) not in (1, len(self.bands)):
            raise ValueError(f"rescale needs one (low, high) pair or one per band; got {len(self.rescale)}")

    @property
    def effective_cmap(self) -> str:
        """The colormap name used: :attr:`cmap`, or :data:`DIFFERENCE_CMAP` for a default difference."""
        if self.kind is LayerKind.DIFFERENCE and self.cmap == _DEFAULT_CMAP:
            return DIFFERENCE_CMAP
        return self.cmap

    @property
    def files(self) -> tuple[Path, ...]:
        """The raster files this layer reads: ``path`` and, where set, ``reference``."""
        return (self.path,) if self.reference is None else (self.path, self.reference)

    def id(self) -> str:
        """Opaque id of this layer *and* the current state of its files.

        The sha256 of the layer's fields plus each file's absolute path, size and ``st_mtime_ns``,
        truncated to 16 lowercase hex digits. A rewritten file gives a new id, so tiles served under
        an id never change and may be cached as immutable.

        Returns:
            16 characters ``[0-9a-f]``.

        Raises:
            FileNotFoundError: A file of the layer does not exist.
        """
        doc: dict[str, object] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            doc[f.name] = os.fspath(v) if isinstance(v, Path) else (v.value if isinstance(v, Enum) else v)
        stats = []
        for p in self.files:
            st = os.stat(p)
            stats.append([os.fspath(Path(p).resolve()), st.st_size, st.st_mtime_ns])
        doc["_files"] = stats
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class LayerInfo:
    """Where a layer is on the map and which zooms to request.

    Attributes:
        bounds: ``(west, south, east, north)`` in EPSG:4326 degrees.
        minzoom: Lowest XYZ zoom worth requesting (the raster is about a quarter tile wide there).
        maxzoom: ``native_zoom + 2``: tiles beyond native resolution (pixels enlarged).
        native_zoom: XYZ zoom whose web-mercator pixel is closest to the raster's GSD at its
            centre latitude (:func:`rsviz.tiles.render.max_zoom_for_gsd` with ``beyond=0``).
    """

    bounds: BBox
    minzoom: int
    maxzoom: int
    native_zoom: int


class TileRegistry:
    """Thread-safe map of layer ids to layers: the only way a tile URL reaches a file."""

    def __init__(self) -> None:
        self._layers: dict[str, Layer] = {}
        self._lock = threading.Lock()

    def register(self, layer: Layer) -> str:
        """Make ``layer`` servable; idempotent.

        Args:
            layer: The layer; its files must exist.

        Returns:
            ``layer.id()``, the id tile URLs use.

        Raises:
            FileNotFoundError: A file of the layer does not exist.
        """
        layer_id = layer.id()
        with self._lock:
            self._layers[layer_id] = layer
        return layer_id

    def get(self, layer_id: str) -> Layer:
        """The layer registered under ``layer_id``.

        Raises:
            UnknownNameError: (a ``KeyError``) ``layer_id`` is not registered.
        """
        with self._lock:
            layer = self._layers.get(layer_id)
        if layer is None:
            raise UnknownNameError(f"unknown tile layer {layer_id!r}; register the layer before requesting tiles")
        return layer

    def __contains__(self, layer_id: object) -> bool:
        with self._lock:
            return layer_id in self._layers

    def __len__(self) -> int:
        with self._lock:
            return len(self._layers)


#: The process-wide registry the app's tile routes serve from.
REGISTRY = TileRegistry()
