"""Sentinel-2 L2A band table, band names checked against a model card, and the L2A value scaling.

Band resolutions and the L2A scaling follow the Sentinel-2 Level-2A Product Specification
(S2-PDGS-TAS-DI-PSD, "Products Specification Document"): bottom-of-atmosphere reflectance is

    ``reflectance = (DN + BOA_ADD_OFFSET) / QUANTIFICATION_VALUE``

with ``QUANTIFICATION_VALUE = 10000`` and, since processing baseline 04.00 (products from 25 January
2022, and the reprocessed Collection-1 archive), ``BOA_ADD_OFFSET = -1000`` for every band (0 before);
``DN = 0`` is NODATA. The bundled BigEarthNet-19 models (Sumbul et al., IEEE GRSM 2021) were trained on
BigEarthNet patches cut from baseline 02.xx products, i.e. on ``DN = reflectance x 10000`` without an
offset, divided by the card's ``scale`` (10000) in :func:`rsviz.inference.classify.normalise_s2`. So a
scene is brought to those *model units* by :meth:`L2AScaling.to_model_units`:
``clip(DN + BOA_ADD_OFFSET, 0, None)`` as float32, before the card's normalisation (the clip at 0, as in
Earth Engine's ``S2_SR_HARMONIZED``, keeps dark pixels of new products in the trained value range).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rsviz.errors import BandCountError, ModelInputError


@dataclass(frozen=True)
class S2Band:
    """One Sentinel-2 MSI band.

    Attributes:
        name: ``B01`` ... ``B12``, ``B8A``.
        resolution_m: Native ground sampling distance of the L2A product, metres (10, 20 or 60).
        wavelength_nm: Central wavelength (Sentinel-2A), nm.
    """

    name: str
    resolution_m: int
    wavelength_nm: float


#: The 12 L2A bands in product order (B10, cirrus, is not in L2A). A 12-band stack without band
#: descriptions is read in this order, which is also BigEarthNet's file order.
L2A_BANDS: tuple[S2Band, ...] = (
    S2Band("B01", 60, 442.7),
    S2Band("B02", 10, 492.4),
    S2Band("B03", 10, 559.8),
    S2Band("B04", 10, 664.6),
    S2Band("B05", 20, 704.1),
    S2Band("B06", 20, 740.5),
    S2Band("B07", 20, 782.8),
    S2Band("B08", 10, 832.8),
    S2Band("B8A", 20, 864.7),
    S2Band("B09", 60, 945.1),
    S2Band("B11", 20, 1613.7),
    S2Band("B12", 20, 2202.4),
)
L2A_ORDER: tuple[str, ...] = tuple(b.name for b in L2A_BANDS)
#: L1C order, 13 bands (B10 included): a 13-band stack without descriptions is read in this order.
L1C_ORDER: tuple[str, ...] = (*L2A_ORDER[:10], "B10", *L2A_ORDER[10:])
RESOLUTION_M: dict[str, int] = {b.name: b.resolution_m for b in L2A_BANDS} | {"B10": 60}
#: Display composites (band names, R G B).
TRUE_COLOUR = ("B04", "B03", "B02")
FALSE_COLOUR = ("B08", "B04", "B03")
#: L2A quantification value and the offset of processing baselines >= 04.00.
QUANTIFICATION_VALUE = 10000.0
BOA_ADD_OFFSET_0400 = -1000.0
#: L2A NODATA digital number.
L2A_NODATA = 0

_NAME = re.compile(r"(?<![A-Za-z0-9])B0?(\d{1,2})(A?)(?![0-9])", re.IGNORECASE)


def band_name(text: str | None) -> str | None:
    """The canonical band name in a file name or band description, or None.

    ``"B2"``, ``"b02"``, ``"T29UPU_20220301T113321_B02_10m.jp2"``, ``"B8a"`` -> ``"B02"`` / ``"B8A"``.
    """
    for m in _NAME.finditer(text or ""):
        num, a = m.group(1), m.group(2).upper()
        name = f"B{int(num)}A" if a else f"B{int(num):02d}"
        if name in RESOLUTION_M:
            return name
    return None


def band_indexes(available: Sequence[str], wanted: Sequence[str], what: str = "the scene") -> tuple[int, ...]:
    """0-based positions in ``available`` of each band of ``wanted`` (a card's ``input.bands``).

    Args:
        available: Band names of the scene, in its order.
        wanted: Band names the model takes, in its input order.
        what: How to name the scene in messages.

    Returns:
        ``len(wanted)`` indexes into ``available``.

    Raises:
        BandCountError: A band is missing, or named twice, in ``available``; the message names them.
    """
    dup = sorted({b for b in available if list(available).count(b) > 1})
    if dup:
        raise BandCountError(f"{what} names band(s) {', '.join(dup)} more than once; each band must appear once")
    missing = [b for b in wanted if b not in available]
    if missing:
        raise BandCountError(
            f"{what} has no band {', '.join(missing)} (it has {', '.join(available) or 'no named bands'}); "
            f"the model takes {', '.join(wanted)}"
        )
    return tuple(list(available).index(b) for b in wanted)


def parse_baseline(text: str | None) -> float | None:
    """Processing baseline as a number from ``"04.00"``, ``"N0400"`` (product names), ``"5.09"``; None if absent."""
    if not text:
        return None
    m = re.search(r"_N(\d{2})(\d{2})(?:_|$)", text) or re.search(r"^\s*(\d{1,2})\.(\d{2})\s*$", text)
    if m is None:
        return None
    v = float(f"{int(m.group(1))}.{m.group(2)}")
    return None if v >= 99 else v  # N9999: BigEarthNet v2's placeholder, not a real baseline


@dataclass(frozen=True)
class L2AScaling:
    """How L2A digital numbers become reflectance and model units (see module docstring).

    Attributes:
        offset: ``BOA_ADD_OFFSET`` in DN (0 before baseline 04.00, -1000 from it).
        quantification: ``QUANTIFICATION_VALUE`` (10000).
        baseline: The processing baseline it was derived from, None when unknown (then ``offset`` is 0
            unless given).
        source: Where the offset came from (``"metadata"``, ``"product name"``, ``"given"``, ``"assumed"``).
    """

    offset: float = 0.0
    quantification: float = QUANTIFICATION_VALUE
    baseline: float | None = None
    source: str = "assumed"

    @classmethod
    def for_baseline(cls, baseline: float | None, source: str = "given") -> L2AScaling:
        """The scaling of a processing baseline (None: unknown, no offset, ``source="assumed"``)."""
        if baseline is None:
            return cls(0.0, QUANTIFICATION_VALUE, None, "assumed")
        return cls(BOA_ADD_OFFSET_0400 if baseline >= 4.0 else 0.0, QUANTIFICATION_VALUE, baseline, source)

    def reflectance(self, dn: np.ndarray) -> np.ndarray:
        """Bottom-of-atmosphere reflectance (float32, about 0-1; may be slightly negative) of L2A DNs."""
        return ((np.asarray(dn, np.float32) + np.float32(self.offset)) / np.float32(self.quantification)).astype(
            np.float32
        )

    def to_model_units(self, dn: np.ndarray) -> np.ndarray:
        """L2A DNs -> float32 ``reflectance x 10000`` as the BigEarthNet models were trained on,
        ``clip(DN + offset, 0)`` (the quantification is 10000 in every baseline).

        Raises:
            ModelInputError: The quantification value is not 10000 (no bundled model was trained so).
        """
        if self.quantification != QUANTIFICATION_VALUE:
            raise ModelInputError(
                f"QUANTIFICATION_VALUE {self.quantification:g} is not the 10000 the Sentinel-2 models were trained on"
            )
        x = np.asarray(dn, np.float32)
        if self.offset == 0:
            return x
        out: np.ndarray = np.maximum(x + np.float32(self.offset), np.float32(0.0))
        return out

    def describe(self) -> str:
        """One line for the page: offset and where it came from."""
        b = f"baseline {self.baseline:05.2f}" if self.baseline is not None else "baseline unknown"
        return f"L2A DN / {self.quantification:g} with offset {self.offset:+g} ({b}, {self.source})"
