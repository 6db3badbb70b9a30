"""Open Sentinel-2 L2A scenes as users have them, and read windows in model units.

Two layouts are recognised by :func:`open_s2`:

* a **stacked** GeoTIFF / COG (or VRT) with every band on one 10 m grid. Bands are named by their
  descriptions (``B02``, ``B8A``...) where the file has them; a 12-band file without descriptions is
  taken in L2A product order ``B01, B02, B03, B04, B05, B06, B07, B08, B8A, B09, B11, B12`` (BigEarthNet's
  file order; 13 bands: L1C order with B10), or ``bands=`` names them;
* a **per-band folder** of JP2 / TIFF files, one band per file at its native 10 / 20 / 60 m (an L2A
  ``.SAFE`` product, its ``IMG_DATA`` or ``R10m``/``R20m``/``R60m`` folders, a BigEarthNet patch folder).
  Each band is taken from its finest file and stacked on the 10 m grid by a VRT written to the
  derived cache, 20 m and 60 m bands upsampled by **nearest neighbour** (exact x2 / x6 pixel replication
  on aligned grids). That is what all three fusion variants take (:mod:`rsviz.models.s2`: 12 bands at
  120 x 120, 20 / 60 m bands pixel-replicated; the intermediate and late variants recover the native
  bands by average pooling, exact for replicated pixels), and how BigEarthNet patches are stacked
  (:func:`rsviz.datasets.bigearthnet.upsample_stack`).

Values are L2A digital numbers; :class:`~rsviz.sentinel2.bands.L2AScaling` (from the product metadata,
the ``_Nxxxx_`` baseline in the product name, or given) brings them to model units. DN 0 is NODATA
(Sentinel-2 L2A product specification) unless the file declares another nodata value; a pixel is valid
when no band is nodata.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from rsviz.errors import BandCountError, CRSError, GridMismatchError, RasterReadError
from rsviz.raster import grid_window_from_bounds, read_failed
from rsviz.sentinel2.bands import (
    FALSE_COLOUR,
    L1C_ORDER,
    L2A_NODATA,
    L2A_ORDER,
    RESOLUTION_M,
    TRUE_COLOUR,
    L2AScaling,
    band_indexes,
    band_name,
    parse_baseline,
)
from rsviz.types import BBox

#: File suffixes of a per-band folder.
BAND_SUFFIXES = (".jp2", ".tif", ".tiff")


@dataclass(frozen=True)
class S2Scene:
    """An opened Sentinel-2 scene on its 10 m grid.

    Attributes:
        path: The raster read: the stacked file itself, or the VRT built from a per-band folder.
        source: What was opened (file or folder).
        layout: ``"stack"`` or ``"folder"``.
        bands: Band names in ``path``'s band order.
        bands_assumed: True when the names come from the band count (no descriptions, none given).
        width: Columns of the 10 m grid, px.
        height: Rows, px.
        transform: Pixel -> CRS affine of the grid (10 m pixels for L2A).
        crs: Its CRS (a UTM zone for L2A tiles).
        nodata: DN marking missing pixels.
        dtype: Data type of the bands (``uint16`` for L2A).
        scaling: DN -> model units.
    """

    path: Path
    source: Path
    layout: str
    bands: tuple[str, ...]
    bands_assumed: bool
    width: int
    height: int
    transform: Affine
    crs: CRS
    nodata: float
    dtype: str
    scaling: L2AScaling

    @property
    def gsd(self) -> float:
        """Pixel size, CRS units (metres)."""
        return float(abs(self.transform.a))

    @property
    def bounds(self) -> BBox:
        """``(west, south, east, north)`` in :attr:`crs`."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    @property
    def bounds_4326(self) -> BBox:
        """:attr:`bounds` in EPSG:4326 degrees."""
        from rsviz.geo import WGS84, reproject_bounds

        return reproject_bounds(self.bounds, self.crs, WGS84)

    def window_of_bounds(self, bounds: BBox, bounds_crs: CRS | str = "EPSG:4326") -> Window:
        """Pixel window covering ``bounds`` (clipped to the scene).

        Raises:
            ExtentError: The bounds do not overlap the scene.
        """
        return grid_window_from_bounds(self.transform, self.crs, (self.height, self.width), bounds, bounds_crs)

    def band_indexes(self, wanted: Sequence[str]) -> tuple[int, ...]:
        """0-based positions of ``wanted`` bands (a card's ``input.bands``) in :attr:`bands`.

        Raises:
            BandCountError: A band is missing or named twice; the message names it.
        """
        return band_indexes(self.bands, wanted, f"scene {self.source.name}")

    @contextmanager
    def open(self) -> Iterator[rasterio.io.DatasetReader]:
        """The rasterio dataset of :attr:`path` (closed on exit).

        Raises:
            RasterReadError: The file cannot be read.
        """
        try:
            ds = rasterio.open(self.path)
        except (rasterio.errors.RasterioIOError, OSError) as exc:
            raise read_failed(self.path, exc) from exc
        with ds:
            yield ds

    def read_dn(
        self,
        ds: rasterio.io.DatasetReader,
        window: Window,
        bands: Sequence[str],
        out_shape: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw DNs of ``bands`` in a window, and the valid mask.

        Args:
            ds: From :meth:`open`.
            window: Pixel window of the 10 m grid.
            bands: Names, in the order wanted.
            out_shape: ``(h, w)`` to decimate to (nearest), default the window's size.

        Returns:
            ``(len(bands), h, w)`` array of :attr:`dtype`, and ``(h, w)`` bool, True where no band of the
            scene's 12 L2A bands present is nodata.
        """
        idx = self.band_indexes(bands)
        shape = out_shape or (int(window.height), int(window.width))
        kw = {"window": window, "out_shape": (len(idx), *shape), "resampling": Resampling.nearest}
        try:
            dn = ds.read([i + 1 for i in idx], **kw)
        except rasterio.errors.RasterioIOError as exc:
            raise read_failed(self.path, exc) from exc
        valid = np.all(dn != self.nodata, axis=0)
        return dn, valid

    def read(
        self, window: Window, bands: Sequence[str], ds: rasterio.io.DatasetReader | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``bands`` of a window in model units (float32 reflectance x 10000, :meth:`L2AScaling.to_model_units`)
        and the ``(h, w)`` bool valid mask.

        Raises:
            BandCountError: A band is missing.
            RasterReadError: The file cannot be read.
        """
        if ds is None:
            with self.open() as d:
                return self.read(window, bands, d)
        dn, valid = self.read_dn(ds, window, bands)
        return self.scaling.to_model_units(dn), valid

    def composite(
        self,
        kind: str = "true",
        *,
        window: Window | None = None,
        max_size: int = 1024,
        percentiles: tuple[float, float] = (2.0, 98.0),
    ) -> np.ndarray:
        """True-colour (B04, B03, B02) or false-colour (B08, B04, B03) picture with a robust stretch.

        Each band is stretched between its ``percentiles`` of the valid pixels of a decimated read
        (longest side at most ``max_size`` px), so a few clouds, saturated (65535) or dark pixels do not
        flatten the rest; nodata pixels are black.

        Args:
            kind: ``"true"`` or ``"false"``.
            window: Pixel window (default: the whole scene).
            max_size: Longest side of the result, px.
            percentiles: Low / high stretch percentiles, 0-100.

        Returns:
            ``(h, w, 3)`` uint8.

        Raises:
            ValueError: Unknown ``kind``.
            BandCountError: The scene lacks a band of the composite.
        """
        from rsviz.display import to_rgb8

        if kind not in ("true", "false"):
            raise ValueError(f"composite kind must be 'true' or 'false'; got {kind!r}")
        win = window or Window(0, 0, self.width, self.height)
        f = max(1.0, max(win.width, win.height) / max_size)
        shape = (max(1, round(win.height / f)), max(1, round(win.width / f)))
        with self.open() as ds:
            dn, valid = self.read_dn(ds, win, TRUE_COLOUR if kind == "true" else FALSE_COLOUR, shape)
        rgb = to_rgb8(self.scaling.to_model_units(dn), percentiles=percentiles, valid=valid)
        rgb[~valid] = 0
        return rgb

    def display_range(
        self, kind: str = "true", *, max_size: int = 512, percentiles: tuple[float, float] = (2.0, 98.0)
    ) -> tuple[tuple[float, float], ...]:
        """Per-band ``(low, high)`` DN of a composite's robust stretch, from the valid pixels of a decimated read
        (what a map tile layer of :meth:`rgb_indexes` is rescaled with; nodata never enters the percentiles).

        Returns:
            Three ``(low, high)`` pairs, ``low < high``, in DN.
        """
        win = Window(0, 0, self.width, self.height)
        f = max(1.0, max(self.width, self.height) / max_size)
        shape = (max(1, round(self.height / f)), max(1, round(self.width / f)))
        with self.open() as ds:
            dn, valid = self.read_dn(ds, win, TRUE_COLOUR if kind == "true" else FALSE_COLOUR, shape)
        out = []
        for band in dn:
            vals = band[valid].astype(np.float32)
            lo, hi = (float(v) for v in np.percentile(vals, percentiles)) if vals.size else (0.0, 1.0)
            out.append((lo, hi if hi > lo else lo + 1.0))
        return tuple(out)

    def rgb_indexes(self, kind: str = "true") -> tuple[int, int, int]:
        """1-based band indexes of a composite in :attr:`path` (for a map tile layer)."""
        i = self.band_indexes(TRUE_COLOUR if kind == "true" else FALSE_COLOUR)
        return (i[0] + 1, i[1] + 1, i[2] + 1)


def _metadata_scaling(texts: Sequence[str]) -> L2AScaling | None:
    """Scaling from L2A metadata text (``MTD_MSIL2A.xml`` or tags): ``BOA_ADD_OFFSET`` wins, then the baseline."""
    for t in texts:
        off = re.search(r"BOA_ADD_OFFSET[^>]*>\s*(-?\d+(?:\.\d+)?)\s*<", t)
        base = re.search(r"PROCESSING_BASELINE[^>]*>\s*(\d{1,2}\.\d{2})\s*<", t)
        q = re.search(r"BOA_QUANTIFICATION_VALUE[^>]*>\s*(\d+(?:\.\d+)?)\s*<", t)
        b = parse_baseline(base.group(1)) if base else None
        if off:
            return L2AScaling(float(off.group(1)), float(q.group(1)) if q else 10000.0, b, "metadata")
        if b is not None:
            return L2AScaling.for_baseline(b, "metadata")
    return None


def detect_scaling(source: Path, tags: dict[str, str] | None = None) -> L2AScaling:
    """The L2A scaling of a scene: from its tags (``BOA_ADD_OFFSET`` / ``PROCESSING_BASELINE``), an
    ``MTD_MSIL2A.xml`` in its folder or up to four folders above, the ``_Nxxxx_`` baseline of a product
    name in its path; else no offset (``source="assumed"``: pre-04.00 products, BigEarthNet)."""
    texts = []
    if tags:
        texts.append("".join(f"<{k}>{v}<" for k, v in tags.items()))
    folder = source if source.is_dir() else source.parent
    for d in [folder, *list(folder.parents)[:4]]:
        mtd = d / "MTD_MSIL2A.xml"
        if mtd.is_file():
            texts.append(mtd.read_text(encoding="utf-8", errors="replace"))
            break
    found = _metadata_scaling(texts)
    if found is not None:
        return found
    for part in [source.name, *(p.name for p in source.parents)]:
        b = parse_baseline(part)
        if b is not None:
            return L2AScaling.for_baseline(b, "product name")
    return L2AScaling.for_baseline(None)


def _scaling(source: Path, baseline: float | str | None, tags: dict[str, str] | None) -> L2AScaling:
    if baseline is None or baseline == "auto":
        return detect_scaling(source, tags)
    b = parse_baseline(baseline) if isinstance(baseline, str) else float(baseline)
    if b is None:
        raise ValueError(f"processing baseline {baseline!r} is not a number like '04.00' or 'N0400'")
    return L2AScaling.for_baseline(b, "given")


def open_s2(
    path: str | Path,
    *,
    bands: Sequence[str] | None = None,
    baseline: float | str | None = "auto",
    nodata: float | None = None,
) -> S2Scene:
    """Open a Sentinel-2 L2A scene (see module docstring for the layouts).

    Args:
        path: A stacked GeoTIFF / COG / VRT, or a folder of per-band JP2 / TIFF files.
        bands: Names of a stacked file's bands in its order (overrides descriptions and the count rule).
        baseline: Processing baseline (``"04.00"``, ``"N0400"``, ``4.0``) or ``"auto"`` / None to detect it.
        nodata: Nodata DN (default: the file's, else 0 as in L2A).

    Returns:
        The :class:`S2Scene`.

    Raises:
        RasterReadError: Missing or unreadable path, or a folder without band files.
        BandCountError: Band names cannot be told (count neither 12 nor 13 and no descriptions), ``bands``
            has the wrong length, or a band is named twice.
        CRSError: No CRS, or per-band files in different CRSs.
        GridMismatchError: Per-band files that do not cover the same area.
        ValueError: ``baseline`` is not a baseline.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise RasterReadError(f"{p} does not exist; give a Sentinel-2 GeoTIFF / COG or a folder of band files")
    if p.is_dir():
        return _open_folder(p, baseline, nodata)
    try:
        ds = rasterio.open(p)
    except (rasterio.errors.RasterioIOError, OSError) as exc:
        raise read_failed(p, exc) from exc
    with ds:
        if ds.crs is None:
            raise CRSError(f"{p.name} has no CRS; Sentinel-2 scenes are georeferenced (UTM): give the original file")
        names: list[str | None]
        assumed = False
        if bands is not None:
            if len(bands) != ds.count:
                raise BandCountError(f"{p.name} has {ds.count} bands but {len(bands)} names were given")
            names = [band_name(b) or b for b in bands]
        else:
            names = [band_name(d) for d in ds.descriptions]
            if not all(names):
                if ds.count not in (12, 13):
                    raise BandCountError(
                        f"{p.name} has {ds.count} band(s) without Sentinel-2 band names in their descriptions; "
                        f"give a 12-band L2A stack ({', '.join(L2A_ORDER)}), name the bands, or open the folder "
                        "of per-band files"
                    )
                names, assumed = list(L2A_ORDER if ds.count == 12 else L1C_ORDER), True
        band_indexes([n or "" for n in names], [], p.name)  # duplicates
        tags = dict(ds.tags())
        return S2Scene(
            path=p,
            source=p,
            layout="stack",
            bands=tuple(n or "" for n in names),
            bands_assumed=assumed,
            width=ds.width,
            height=ds.height,
            transform=ds.transform,
            crs=ds.crs,
            nodata=float(nodata if nodata is not None else (ds.nodata if ds.nodata is not None else L2A_NODATA)),
            dtype=ds.dtypes[0],
            scaling=_scaling(p, baseline, tags),
        )


@dataclass(frozen=True)
class _BandFile:
    band: str
    path: Path
    width: int
    height: int
    transform: Affine
    crs: CRS
    dtype: str
    nodata: float | None


def band_files(folder: Path) -> dict[str, _BandFile]:
    """The finest file of each band below ``folder`` (recursively), by band name in the file name.

    Raises:
        RasterReadError: No band file, or one that cannot be read.
    """
    found: dict[str, _BandFile] = {}
    for f in sorted(folder.rglob("*")):
        if f.suffix.lower() not in BAND_SUFFIXES or not f.is_file():
            continue
        b = band_name(f.stem)
        if b is None:
            continue
        try:
            with rasterio.open(f) as ds:
                bf = _BandFile(b, f, ds.width, ds.height, ds.transform, ds.crs, ds.dtypes[0], ds.nodata)
        except (rasterio.errors.RasterioIOError, OSError) as exc:
            raise read_failed(f, exc) from exc
        if b not in found or abs(bf.transform.a) < abs(found[b].transform.a):
            found[b] = bf
    if not found:
        raise RasterReadError(
            f"{folder} has no Sentinel-2 band files (*_B02.jp2, *_B8A_20m.tif...); give a folder of per-band files "
            "or a stacked GeoTIFF"
        )
    return found


def _vrt_xml(files: list[_BandFile], ref: _BandFile, nodata: float) -> str:
    """A VRT stacking ``files`` on ``ref``'s grid, each upsampled by nearest neighbour."""
    t = ref.transform
    gt = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    dt = {"uint16": "UInt16", "int16": "Int16", "uint8": "Byte", "float32": "Float32", "uint32": "UInt32"}
    out = [
        f'<VRTDataset rasterXSize="{ref.width}" rasterYSize="{ref.height}">',
        f"  <SRS>{escape(ref.crs.to_wkt())}</SRS>",
        f"  <GeoTransform>{gt}</GeoTransform>",
    ]
    for i, f in enumerate(files, 1):
        fx, fy = f.transform.a / t.a, f.transform.e / t.e
        x0, y0 = (f.transform.c - t.c) / t.a, (f.transform.f - t.f) / t.e
        out += [
            f'  <VRTRasterBand dataType="{dt.get(f.dtype, "Float32")}" band="{i}">',
            f"    <Description>{f.band}</Description>",
            f"    <NoDataValue>{nodata:g}</NoDataValue>",
            '    <SimpleSource resampling="nearest">',
            f'      <SourceFilename relativeToVRT="0">{escape(str(f.path.resolve()))}</SourceFilename>',
            "      <SourceBand>1</SourceBand>",
            f'      <SrcRect xOff="0" yOff="0" xSize="{f.width}" ySize="{f.height}"/>',
            f'      <DstRect xOff="{x0:.10g}" yOff="{y0:.10g}" xSize="{f.width * fx:.10g}" ySize="{f.height * fy:.10g}"/>',
            "    </SimpleSource>",
            "  </VRTRasterBand>",
        ]
    out.append("</VRTDataset>")
    return "\n".join(out) + "\n"


def _open_folder(folder: Path, baseline: float | str | None, nodata: float | None) -> S2Scene:
    from rsviz.resources import cache_dir

    files = band_files(folder)
    crss = {f.crs.to_string() if f.crs else "" for f in files.values()}
    if "" in crss:
        raise CRSError(f"a band file in {folder} has no CRS; Sentinel-2 band files are georeferenced")
    if len(crss) > 1:
        raise CRSError(f"the band files in {folder} are in different CRSs ({', '.join(sorted(crss))})")
    ref = min(files.values(), key=lambda f: (abs(f.transform.a), f.band))
    rb = (ref.transform.c, ref.transform.f, ref.transform.c + ref.transform.a * ref.width)
    for f in files.values():
        fb = (f.transform.c, f.transform.f, f.transform.c + f.transform.a * f.width)
        if max(abs(a - b) for a, b in zip(fb, rb)) > abs(f.transform.a) / 2:
            raise GridMismatchError(
                f"{f.path.name} ({f.band}) does not cover the same area as {ref.path.name}; the band files of a "
                "folder must come from one product (tile or patch)"
            )
    order = [b for b in L2A_ORDER if b in files] + [b for b in files if b not in L2A_ORDER]
    ordered = [files[b] for b in order]
    nd = float(nodata if nodata is not None else (ref.nodata if ref.nodata is not None else L2A_NODATA))
    xml = _vrt_xml(ordered, ref, nd)
    key = hashlib.sha256(
        (xml + "".join(f"{f.path.stat().st_size}:{f.path.stat().st_mtime_ns}" for f in ordered)).encode()
    ).hexdigest()[:16]
    out = cache_dir() / "sentinel2" / "vrt" / f"{folder.name}-{key}.vrt"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(xml, encoding="utf-8")
        tmp.replace(out)
    return S2Scene(
        path=out,
        source=folder,
        layout="folder",
        bands=tuple(order),
        bands_assumed=False,
        width=ref.width,
        height=ref.height,
        transform=ref.transform,
        crs=ref.crs,
        nodata=nd,
        dtype=ref.dtype,
        scaling=_scaling(folder, baseline, None),
    )


__all__ = ["RESOLUTION_M", "S2Scene", "band_files", "detect_scaling", "open_s2"]
