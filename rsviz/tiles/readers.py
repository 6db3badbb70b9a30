"""Open rio-tiler readers once per thread and reuse them.

Opening a COG (parsing its IFDs) costs more than reading a tile from it, but rasterio datasets
are not thread-safe. Each thread therefore keeps a small LRU of open
:class:`rio_tiler.io.Reader` objects keyed by ``(path, size, mtime_ns)``: a rewritten file is
reopened, and a thread never shares a dataset with another.

GDAL's block cache is process-wide and defaults to 5 % of RAM; :func:`configure_gdal` lowers it to
:data:`GDAL_CACHEMAX_BYTES` the first time a reader is opened (unless ``GDAL_CACHEMAX`` is set in
the environment), which bounds the tile server's resident memory.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

from rasterio.env import get_gdal_config, set_gdal_config
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rio_tiler.errors import NoOverviewWarning
from rio_tiler.io import Reader

from rsviz.errors import RasterReadError

#: Open readers each thread keeps (least recently used closed first).
READERS_PER_THREAD = 8
#: GDAL block cache ceiling set by :func:`configure_gdal`, bytes.
GDAL_CACHEMAX_BYTES = 256 * 1024 * 1024

_local = threading.local()
_configured = False
_config_lock = threading.Lock()

ReaderKey = tuple[str, int, int]


def configure_gdal() -> None:
    """Cap GDAL's block cache at :data:`GDAL_CACHEMAX_BYTES` once per process.

    Leaves a lower current value, and an explicit ``GDAL_CACHEMAX`` environment variable, alone.
    """
    global _configured
    if _configured:
        return
    with _config_lock:
        if not _configured and "GDAL_CACHEMAX" not in os.environ:
            current = get_gdal_config("GDAL_CACHEMAX")
            if not isinstance(current, int) or current > GDAL_CACHEMAX_BYTES:
                set_gdal_config("GDAL_CACHEMAX", GDAL_CACHEMAX_BYTES)
        _configured = True


def open_reader(path: str) -> Reader:
    """Open ``path`` as a rio-tiler reader (``WebMercatorQuad`` tile matrix set).

    Raises:
        RasterReadError: GDAL cannot open the file.
    """
    configure_gdal()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoOverviewWarning)
            return Reader(path)
    except RasterioIOError as exc:
        raise RasterReadError(f"{Path(path).name} is not a raster GDAL can read ({exc})") from exc


def _cache() -> OrderedDict[ReaderKey, Reader]:
    cache: OrderedDict[ReaderKey, Reader] | None = getattr(_local, "readers", None)
    if cache is None:
        cache = OrderedDict()
        _local.readers = cache
    return cache


def reader_for(path: Path | str) -> Reader:
    """This thread's open reader of ``path``, opened on first use or when the file changed.

    Args:
        path: A raster file.

    Returns:
        An open :class:`rio_tiler.io.Reader`; use it only from the calling thread, and do not close it.

    Raises:
        RasterReadError: The file is missing or GDAL cannot read it.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError as exc:
        raise RasterReadError(f"raster file not found: {p}; the layer must be registered again") from exc
    key = (p, st.st_size, st.st_mtime_ns)
    cache = _cache()
    reader = cache.get(key)
    if reader is not None:
        cache.move_to_end(key)
        return reader
    # a rewritten file: drop this thread's readers of its older versions
    for old in [k for k in cache if k[0] == p]:
        _close(cache.pop(old))
    reader = open_reader(p)
    cache[key] = reader
    while len(cache) > READERS_PER_THREAD:
        _, evicted = cache.popitem(last=False)
        _close(evicted)
    return reader


def dataset_for(path: Path | str) -> DatasetReader:
    """The open rasterio dataset of this thread's reader of ``path`` (see :func:`reader_for`)."""
    ds = reader_for(path).dataset
    assert isinstance(ds, DatasetReader)
    return ds


def _close(reader: Any) -> None:
    reader.close()


def close_thread_readers() -> None:
    """Close the calling thread's cached readers (tests; a thread about to exit)."""
    cache = _cache()
    while cache:
        _, r = cache.popitem()
        _close(r)
