"""Raster I/O: reading images and labels with their grid, windows and nodata.

All reads go through :func:`open_raster`, which turns GDAL failures into
:class:`~rsviz.errors.RasterReadError` with a message that says what to fix.
Arrays are ``(bands, height, width)`` in the file's dtype.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import array_bounds
from rasterio.windows import Window, from_bounds

from rsviz.errors import ExtentError, GridMismatchError, RasterReadError
from rsviz.geo import reproject_bounds, to_crs
from rsviz.types import BBox


@dataclass
class RasterData:
    """An in-memory raster and its pixel grid.

    Attributes:
        array: ``(bands, height, width)`` pixel values in the source dtype.
        transform: Affine pixel-to-CRS transform of ``array[:, 0, 0]``'s corner.
        crs: CRS of ``transform``; None for non-georeferenced images.
        valid: ``(height, width)`` bool, False where any band is nodata / alpha is 0.
        band_names: One name per band (e.g. ``("red", "green", "blue")``).
        scale: Value range of the data, e.g. ``(0, 255)`` for 8-bit imagery.
    """

    array: np.ndarray
    transform: Affine = field(default_factory=Affine.identity)
    crs: CRS | None = None
    valid: np.ndarray | None = None
    band_names: tuple[str, ...] = ()
    scale: tuple[float, float] = (0.0, 255.0)

    def __post_init__(self) -> None:
        if self.array.ndim == 2:
            self.array = self.array[None]
        if self.array.ndim != 3:
            raise ValueError(f"raster array must be (bands, height, width); got shape {self.array.shape}")
        if self.valid is None:
            self.valid = np.ones(self.array.shape[1:], dtype=bool)

    @property
    def valid_mask(self) -> np.ndarray:
        """:attr:`valid`, typed as set (``__post_init__`` fills it): ``(height, width)`` bool."""
        assert self.valid is not None
        return self.valid
        if not self.band_names:
            self.band_names = tuple(f"band{i + 1}" for i in range(self.array.shape[0]))

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return int(self.array.shape[1]), int(self.array.shape[2])

    @property
    def count(self) -> int:
        """Number of bands."""
        return int(self.array.shape[0])

    @property
    def bounds(self) -> BBox:
        """``(west, south, east, north)`` in CRS units."""
        h, w = self.shape
        return _bounds(self.transform, h, w)


def _bounds(transform: Affine, height: int, width: int) -> BBox:
    """``(west, south, east, north)`` of a grid, rotation included (:func:`rasterio.transform.array_bounds`);
    ordered min/max, so south < north also for row-up grids (positive ``e``, e.g. the identity)."""
    w, s, e, n = (float(v) for v in array_bounds(height, width, transform))
    return (min(w, e), min(s, n), max(w, e), max(s, n))


@contextlib.contextmanager
def open_raster(path: str | os.PathLike) -> Iterator[rasterio.io.DatasetReader]:
    """Open a raster for reading, with errors users can act on.

    Args:
        path: Local path or GDAL-readable URL of a GeoTIFF, COG, PNG, JPEG...

    Yields:
        An open rasterio dataset.

    Raises:
        RasterReadError: If the file does not exist or GDAL cannot read it as a raster.
    """
    path = os.fspath(path)
    if "://" not in path and not os.path.exists(path):
        raise RasterReadError(f"raster file not found: {path}; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise RasterReadError(
            f"{Path(path).name} is not a raster GDAL can read ({exc}); upload a GeoTIFF/COG, PNG or JPEG"
        ) from exc
    try:
        yield ds
    finally:
        ds.close()


#: Environment variable: the most GiB :func:`read_raster` reads into memory at once (default 8).
MAX_READ_ENV = "RSVIZ_MAX_READ_GIB"


def read_failed(path: str | os.PathLike[str], exc: Exception) -> RasterReadError:
    """The :class:`RasterReadError` for a read that failed after the file opened (truncated or corrupt data).

    Args:
        path: The raster.
        exc: GDAL's error.

    Returns:
        The error, ready to raise ``from exc``.
    """
    return RasterReadError(
        f"{os.fspath(path)} opened but its pixels cannot be read ({exc}); the file is truncated or corrupt: "
        "copy or download it again"
    )


def check_bounds(bounds: BBox) -> None:
    """Refuse an extent that is not four finite numbers with west < east and south < north.

    Raises:
        ExtentError: Quoting the extent and what is wrong with it.
    """
    try:
        w, s, e, n = (float(v) for v in bounds)
    except (TypeError, ValueError) as exc:
        raise ExtentError(f"bounds {bounds!r} must be four numbers (west, south, east, north)") from exc
    if not all(np.isfinite(v) for v in (w, s, e, n)):
        raise ExtentError(f"bounds {(w, s, e, n)} contain NaN or infinity; give four finite numbers W S E N")
    if w >= e:
        raise ExtentError(f"bounds west {w} is not less than east {e}; give W S E N with west < east")
    if s >= n:
        raise ExtentError(f"bounds south {s} is not less than north {n}; give W S E N with south < north")


def window_from_bounds(ds, bounds: BBox, bounds_crs: CRS | str | int = "EPSG:4326") -> Window:
    """Pixel window of ``ds`` covering ``bounds``, clipped to the raster.

    Args:
        ds: Open rasterio dataset (must be georeferenced).
        bounds: ``(west, south, east, north)`` in ``bounds_crs``.
        bounds_crs: CRS of ``bounds``; EPSG:4326 (what the map draws) by default.

    Returns:
        Integer-aligned window, clipped to the raster extent.

    Raises:
        ExtentError: If the extent does not overlap the raster.
        CRSError: If the raster has no CRS.
    """
    return grid_window_from_bounds(ds.transform, ds.crs, (ds.height, ds.width), bounds, bounds_crs)


def grid_window_from_bounds(
    transform: Affine, crs: CRS | None, shape: tuple[int, int], bounds: BBox, bounds_crs: CRS | str | int = "EPSG:4326"
) -> Window:
    """Like :func:`window_from_bounds` for a grid given by transform, CRS and ``(height, width)``."""
    check_bounds(bounds)
    crs = to_crs(crs)
    height, width = shape
    w, s, e, n = reproject_bounds(bounds, bounds_crs, crs)
    win = from_bounds(w, s, e, n, transform=transform)
    col0, row0 = max(int(np.floor(win.col_off)), 0), max(int(np.floor(win.row_off)), 0)
    col1 = min(int(np.ceil(win.col_off + win.width)), width)
    row1 = min(int(np.ceil(win.row_off + win.height)), height)
    if col1 <= col0 or row1 <= row0:
        rb = reproject_bounds(_bounds(transform, height, width), crs, bounds_crs)
        raise ExtentError(
            f"the extent {tuple(round(v, 6) for v in bounds)} does not overlap the raster "
            f"(raster covers {tuple(round(v, 6) for v in rb)}); draw the extent over the imagery"
        )
    return Window(col0, row0, col1 - col0, row1 - row0)


def read_raster(
    path: str | os.PathLike,
    *,
    window: Window | None = None,
    bounds: BBox | None = None,
    bounds_crs: CRS | str | int = "EPSG:4326",
    bands: Sequence[int] | None = None,
    band_names: Sequence[str] | None = None,
) -> RasterData:
    """Read a raster (optionally a window or geographic extent of it) into memory.

    Args:
        path: Raster path.
        window: Pixel window to read; mutually exclusive with ``bounds``.
        bounds: ``(west, south, east, north)`` extent in ``bounds_crs`` to read.
        bounds_crs: CRS of ``bounds`` (EPSG:4326 by default).
        bands: 1-based band indexes to read; all bands by default.
        band_names: Names for the bands read; default from the file's colour
            interpretation (``red``, ``green``...) or ``band<i>``.

    Returns:
        :class:`RasterData` with the array ``(bands, h, w)`` in the file dtype, the
        window's transform, the CRS, and the valid mask (from nodata / alpha / masks).

    Raises:
        RasterReadError: Unreadable file.
        ExtentError: ``bounds`` outside the raster.
        CRSError: ``bounds`` given for a raster without CRS.
    """
    if window is not None and bounds is not None:
        raise ValueError("give either window or bounds, not both")
    with open_raster(path) as ds:
        if bounds is not None:
            window = window_from_bounds(ds, bounds, bounds_crs)
        idx = list(bands) if bands is not None else list(range(1, ds.count + 1))
        h, w = (int(window.height), int(window.width)) if window is not None else (ds.height, ds.width)
        need = h * w * len(idx) * np.dtype(ds.dtypes[0]).itemsize
        limit = int(float(os.environ.get(MAX_READ_ENV, "8")) * 2**30)
        if need > limit:
            raise ExtentError(
                f"{Path(path).name} is {w}x{h} px x {len(idx)} bands ({need / 2**30:.1f} GiB), more than the "
                f"{limit / 2**30:g} GiB read into memory ({MAX_READ_ENV}); read a window or extent of it"
            )
        try:
            data = ds.read(idx, window=window)
            masks = ds.read_masks(idx, window=window)
        except RasterioIOError as exc:
            raise read_failed(path, exc) from exc
        valid = np.all(masks > 0, axis=0)
        transform = ds.window_transform(window) if window is not None else ds.transform
        names = (
            tuple(band_names)
            if band_names
            else tuple(
                (ci.name if ci.name not in ("undefined", "gray") else f"band{i}")
                for i, ci in zip(idx, [ds.colorinterp[i - 1] for i in idx], strict=False)
            )
        )
        lo, hi = dtype_range(data.dtype)
        return RasterData(array=data, transform=transform, crs=ds.crs, valid=valid, band_names=names, scale=(lo, hi))


def read_colour_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a colour-coded mask as ``(3, H, W)`` uint8 RGB, expanding paletted (1-band) images.

    Raises:
        RasterReadError: Unreadable file, or a 1-band mask without a colour table.
    """
    with open_raster(path) as ds:
        if ds.count >= 3:
            return ds.read([1, 2, 3])
        a = ds.read(1)
        try:
            cmap = ds.colormap(1)
        except ValueError as exc:
            raise RasterReadError(f"{Path(path).name} has one band and no colour table; expected an RGB mask") from exc
    lut = np.zeros((256, 3), np.uint8)
    for k, rgba in cmap.items():
        lut[k] = rgba[:3]
    return np.moveaxis(lut[a], -1, 0)


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """Nominal value range of a dtype: integer limits, or ``(0, 1)`` for floats."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def check_same_grid(a: RasterData, b: RasterData, what: str = "ground truth") -> None:
    """Check that two rasters share shape, transform and CRS.

    Raises:
        GridMismatchError: Naming the first difference and how to fix it
            (never a silent resample).
    """
    if a.shape != b.shape:
        raise GridMismatchError(
            f"{what} is {b.shape[1]}x{b.shape[0]} px but the image is {a.shape[1]}x{a.shape[0]} px; "
            f"resample the {what} onto the image grid (e.g. gdalwarp -te/-ts) first"
        )
    if (a.crs is None) != (b.crs is None) or (a.crs is not None and a.crs != b.crs):
        raise GridMismatchError(f"{what} CRS {b.crs} differs from the image CRS {a.crs}; reproject it first")
    if not a.transform.almost_equals(b.transform, precision=1e-9 * max(1.0, abs(a.transform.c))):
        raise GridMismatchError(
            f"{what} transform {tuple(b.transform)[:6]} differs from the image transform "
            f"{tuple(a.transform)[:6]}; align the grids first"
        )
