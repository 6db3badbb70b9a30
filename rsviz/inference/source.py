"""The region a prediction reads: an in-memory array or a window of a raster file, read lazily in strips."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from types import TracebackType

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from rsviz.errors import ModelInputError
from rsviz.raster import RasterData, open_raster, read_failed, window_from_bounds
from rsviz.types import BBox

Span = tuple[int, int, int, int]


def _int_window(window: Window) -> Window:
    return Window(int(window.col_off), int(window.row_off), int(window.width), int(window.height))


def _finite(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``valid`` with NaN and infinite pixels (of any band) also False; a new array only for float data."""
    if data.dtype.kind != "f":
        return valid
    return valid & np.all(np.isfinite(data), axis=0)


class RasterSource:
    """Lazy reader of the region to predict; a context manager that closes the file it opened.

    Args:
        source: Raster path (anything :func:`rsviz.raster.open_raster` reads), ``(bands, H, W)`` array or
            :class:`RasterData`.
        window: Pixel window of the source (clipped to the raster); the whole raster by default.
        bounds: ``(west, south, east, north)`` in ``bounds_crs`` instead of ``window`` (files only).
        bounds_crs: CRS of ``bounds``.

    Attributes:
        window: The integer pixel window read, on the source grid.
        height, width: Its size, pixels.
        count: Bands.
        dtype: NumPy dtype of the bands.
        transform: Affine transform of the window.
        crs: CRS, None for non-georeferenced input.

    Raises:
        RasterReadError: Unreadable file.
        ExtentError: ``bounds`` do not overlap the raster.
        ModelInputError: ``bounds`` given for an array.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | np.ndarray | RasterData,
        window: Window | None = None,
        bounds: BBox | None = None,
        bounds_crs: CRS | str | int = "EPSG:4326",
    ) -> None:
        self._stack = ExitStack()
        self._ds: DatasetReader | None = None
        self._r: RasterData | None = None
        self.crs: CRS | None
        self._path: str | None = None
        if isinstance(source, (str, os.PathLike)):
            self._path = os.fspath(source)
            ds = self._stack.enter_context(open_raster(source))
            self._ds = ds
            try:
                if bounds is not None:
                    window = window_from_bounds(ds, bounds, bounds_crs)
                full = Window(0, 0, ds.width, ds.height)
                self.window = _int_window(full if window is None else window.intersection(full))
            except BaseException:
                self.close()
                raise
            if ds.count < 1 or ds.width < 1 or ds.height < 1:
                self.close()
                raise ModelInputError(
                    f"{self._path} has {ds.count} bands of {ds.width}x{ds.height} px; give an image with pixels"
                )
            self.count, self.dtype = int(ds.count), np.dtype(ds.dtypes[0])
            # no nodata value, mask band or alpha: every pixel is valid, skip reading masks
            self._all_valid = all(flags == [MaskFlags.all_valid] for flags in ds.mask_flag_enums)
            self.transform: Affine = ds.window_transform(self.window)
            self.crs = ds.crs
        else:
            r = source if isinstance(source, RasterData) else RasterData(np.asarray(source))
            self._r = r
            h, w = r.shape
            if bounds is not None:
                raise ModelInputError("bounds need a georeferenced raster file; pass window= for arrays")
            full = Window(0, 0, w, h)
            self.window = _int_window(full if window is None else window.intersection(full))
            self.count, self.dtype = int(r.count), r.array.dtype
            self._all_valid = False
            self.transform = r.transform * Affine.translation(self.window.col_off, self.window.row_off)
            self.crs = r.crs
        self.height, self.width = int(self.window.height), int(self.window.width)

    @property
    def path(self) -> str | None:
        """The file read, or None for an array source."""
        return self._path

    def read_rows(self, r0: int, r1: int, c0: int = 0, c1: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[r0, r1)``, columns ``[c0, c1)`` of the region (window coordinates).

        Returns:
            ``(bands, n, m)`` raw data in the source dtype and ``(n, m)`` bool valid mask (False on nodata).
            Array sources return views.
        """
        c1 = self.width if c1 is None else c1
        w = Window(self.window.col_off + c0, self.window.row_off + r0, c1 - c0, r1 - r0)
        if self._ds is not None:
            try:
                data: np.ndarray = self._ds.read(window=w)
                valid = (
                    np.ones(data.shape[1:], bool)
                    if self._all_valid
                    else np.all(self._ds.read_masks(window=w) > 0, axis=0)
                )
            except RasterioIOError as exc:
                raise read_failed(self._path or "raster", exc) from exc
            return data, _finite(data, valid)
        assert self._r is not None
        r = self._r
        sl = (slice(int(w.row_off), int(w.row_off + w.height)), slice(int(w.col_off), int(w.col_off + w.width)))
        assert r.valid is not None  # RasterData fills it in __post_init__
        arr = r.array[(slice(None), *sl)]
        return arr, _finite(arr, r.valid[sl])

    def value_range(self, max_side: int = 1024) -> tuple[float, float] | None:
        """Minimum and maximum over all bands of the whole region, from a cheap decimated read.

        Files are read at most ``max_side`` pixels a side (GDAL uses overviews where the file has them);
        arrays are strided. NaN, infinity and nodata pixels are left out.

        Args:
            max_side: Longest side of the decimated read, pixels.

        Returns:
            ``(min, max)``, or None when no pixel is valid.

        Raises:
            RasterReadError: The file's pixels cannot be read (truncated or corrupt).
        """
        step = max(1, -(-max(self.height, self.width) // max_side))
        if self._ds is not None:
            shape = (self.count, max(1, self.height // step), max(1, self.width // step))
            try:
                data = self._ds.read(window=self.window, out_shape=shape, resampling=Resampling.nearest)
                masks = None if self._all_valid else self._ds.read_masks(window=self.window, out_shape=shape)
            except RasterioIOError as exc:
                raise read_failed(self._path or "raster", exc) from exc
            valid = np.ones(shape[1:], bool) if masks is None else np.all(masks > 0, axis=0)
        else:
            data, valid = self.read_rows(0, self.height)
            data, valid = data[:, ::step, ::step], valid[::step, ::step]
        valid = _finite(data, valid)
        if not valid.any():
            return None
        px = data[:, valid]
        return float(px.min()), float(px.max())

    def iter_rows(self, spans: Sequence[Span]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield :meth:`read_rows` of each ``(r0, r1, c0, c1)`` span, in order.

        For files, the next span is read in a background thread while the caller works on the
        current one (GDAL decodes blocks with the GIL released), so decoding overlaps inference.
        One read is in flight at a time, so the dataset is never used concurrently and at most
        two strips are held.
        """
        if self._ds is None or len(spans) < 2:
            for sp in spans:
                yield self.read_rows(*sp)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="rsviz-read") as pool:
            pending = pool.submit(self.read_rows, *spans[0])
            for nxt in spans[1:]:
                done = pending.result()
                pending = pool.submit(self.read_rows, *nxt)
                yield done
            yield pending.result()

    def close(self) -> None:
        """Close the file, if one was opened (idempotent)."""
        self._stack.close()
        self._ds = None

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
