"""What a batch runs over: SCENES arguments resolved to :class:`SceneSpec` s, and their ground truth paired.

SCENES are, in any mix: raster files, folders (every raster directly inside, sorted), glob patterns
(``tiles/*.tif``, ``**`` allowed) and catalog dataset names (``banepa-buildings``, or
``banepa-buildings:test`` for one split; ground truth then comes from the dataset loader).

Ground-truth pairing rule (``--gt``), one of:

1. a **folder**: a scene ``<stem>.<ext>`` is scored against the file of the same stem in it, with one of
   the suffixes of :data:`GT_SUFFIXES` (a raster on the scene's grid, or a GeoJSON of building polygons);
   a scene without such a file is predicted but not scored; two candidates for one stem are an error;
2. a **CSV** file with a header ``scene,gt``: ``scene`` is a scene's path (relative paths resolve against
   the CSV's folder) or its stem, ``gt`` its ground truth (same resolution); scenes not listed are not scored,
   rows naming no scene of the batch are an error;
3. a **GeoJSON** file (``.geojson`` / ``.json``): one set of building polygons, any CRS, burnt onto every
   scene's grid (e.g. an OSM extract covering all chips of an area);
4. a single **raster**: only for a batch of one scene.

Scenes are named by their file stem, which names their outputs; two scenes with one stem are an error.
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rsviz.errors import RasterReadError, RsvizError

#: Raster suffixes taken from folders and globs (as ``rsviz predict``).
RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".vrt")
#: Ground-truth suffixes looked for in a ``--gt`` folder, in this order.
GT_SUFFIXES = (".tif", ".tiff", ".png", ".geojson", ".json")
_VECTOR = (".geojson", ".json")


class BatchInputError(RsvizError, ValueError):
    """The SCENES or ``--gt`` arguments of a batch name nothing usable, or pair ambiguously."""


@dataclass(frozen=True)
class SceneSpec:
    """One scene of a batch, cheap to send to a worker (paths only, no pixels).

    Attributes:
        name: Unique name in the batch (the file stem, or the catalog scene id); names the outputs.
        image: Image path (for a catalog scene, its chip's file).
        gt: Ground-truth path (raster on the image grid or building GeoJSON), or None.
        dataset: Catalog dataset of a catalog scene (ground truth from its loader), else None.
        scene_id: Catalog scene id, with ``dataset``.
        split: Split of a catalog scene (``predict`` scenes have no ground truth), else None.
    """

    name: str
    image: str
    gt: str | None = None
    dataset: str | None = None
    scene_id: str | None = None
    split: str | None = None

    @property
    def scored(self) -> bool:
        """Whether the scene has ground truth to be scored against (a catalog scene: unless split ``predict``)."""
        return self.gt is not None or (self.dataset is not None and self.split != "predict")

    def stamp(self) -> list[Any]:
        """What identifies the scene's content: ``[path, size, mtime_ns]`` of the image and the ground truth, and
        the catalog dataset and id.

        Raises:
            RasterReadError: A file is gone.
        """
        out: list[Any] = [self.dataset, self.scene_id, self.split]
        for p in (self.image, self.gt):
            if p is None:
                out.append(None)
                continue
            try:
                st = os.stat(p)
            except OSError as exc:
                raise RasterReadError(f"{p} cannot be read ({exc.strerror}); check the path") from exc
            out.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
        return out

    def open(self) -> Any:
        """Open the scene in the workspace (:func:`rsviz.workspace.open_path` / :func:`~rsviz.workspace.open_sample`).

        Returns:
            The :class:`~rsviz.workspace.Scene` (image and ground-truth rasters on one grid).

        Raises:
            RasterReadError, GridMismatchError: As the workspace reports them (unreadable or corrupt file, ground
                truth on another grid).
            UnknownNameError: A catalog scene that is no longer in its dataset.
        """
        from rsviz.workspace import open_path, open_sample

        if self.dataset is not None:
            from rsviz.datasets import scenes
            from rsviz.errors import unknown_name

            refs = {r.id: r for r in scenes(self.dataset)}
            if self.scene_id not in refs:
                raise unknown_name(f"scene of {self.dataset}", str(self.scene_id), list(refs))
            return open_sample(refs[self.scene_id])
        return open_path(self.image, self.gt, source=f"path:{self.image}")


def _rasters_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in RASTER_SUFFIXES)


def _dataset_specs(item: str) -> list[SceneSpec] | None:
    """Specs of a catalog dataset name (``name`` or ``name:split``), or None when ``item`` names none."""
    from rsviz.data import catalog
    from rsviz.datasets import list_loaders, scenes

    name, _, split = item.partition(":")
    if name not in list_loaders():
        return None
    catalog.require(name)  # DataMissingError naming the fetch command
    refs = scenes(name, split or None)
    return [SceneSpec(r.id, str(r.path), None, name, r.id, r.split) for r in refs]


def resolve_scenes(items: Sequence[str], gt: str | os.PathLike[str] | None = None) -> list[SceneSpec]:
    """Expand SCENES arguments into scene specs with their ground truth (see the module docstring).

    Args:
        items: Files, folders, glob patterns and catalog dataset names (``name`` or ``name:split``).
        gt: The ``--gt`` argument: a folder, a CSV ``scene,gt``, a building GeoJSON, a raster (one scene), or None.

    Returns:
        The specs in the order given (folders and globs sorted), duplicates of one file dropped.

    Raises:
        BatchInputError: An item names nothing, a folder or glob holds no raster, two scenes share a stem, ``--gt``
            with catalog datasets, or an ambiguous / unknown pairing.
        DataMissingError: A catalog dataset is not in the data cache (the message names the fetch command).
        UnknownNameError: Unknown split of a catalog dataset.
    """
    if not items:
        raise BatchInputError("no SCENES given: name raster files, folders, globs or a catalog dataset")
    specs: list[SceneSpec] = []
    from_catalog = False
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            files = _rasters_in(p)
            if not files:
                raise BatchInputError(f"folder {p} holds no rasters ({', '.join(RASTER_SUFFIXES)})")
        elif p.is_file():
            files = [p]
        elif glob.has_magic(item):
            files = sorted(Path(f) for f in glob.glob(os.path.expanduser(item), recursive=True) if Path(f).is_file())
            files = [f for f in files if f.suffix.lower() in RASTER_SUFFIXES]
            if not files:
                raise BatchInputError(f"no raster matches {item!r}; check the pattern (quote it from the shell)")
        else:
            ds = _dataset_specs(item)
            if ds is None:
                raise BatchInputError(
                    f"{item!r} is no file, folder, matching glob or catalog dataset; give a path, or a dataset "
                    "name from `python -m rsviz data list` (name or name:split)"
                )
            if not ds:
                raise BatchInputError(f"catalog dataset {item!r} has no scenes")
            specs += ds
            from_catalog = True
            continue
        specs += [SceneSpec(f.stem, str(f)) for f in files]
    seen: dict[str, SceneSpec] = {}
    out: list[SceneSpec] = []
    for s in specs:
        if s.name in seen:
            if Path(seen[s.name].image).resolve() == Path(s.image).resolve():
                continue  # the same file named twice
            raise BatchInputError(
                f"two scenes are named {s.name!r} ({seen[s.name].image} and {s.image}); outputs are named by "
                "the file stem: rename one, or run them in separate batches"
            )
        seen[s.name] = s
        out.append(s)
    if gt is None:
        return out
    if from_catalog:
        raise BatchInputError("catalog scenes bring their own ground truth; leave out --gt, or give files")
    return pair_ground_truth(out, gt)


def pair_ground_truth(specs: Sequence[SceneSpec], gt: str | os.PathLike[str]) -> list[SceneSpec]:
    """Attach ground truth to file scenes by the rule of the module docstring.

    Raises:
        BatchInputError: ``gt`` does not exist, a folder holds two candidates for one stem, a CSV lacks the
            ``scene,gt`` header or names a scene not in the batch or a missing file, or a single raster is given
            for several scenes.
    """
    g = Path(gt).expanduser()
    if g.is_dir():
        out = []
        for s in specs:
            found = [
                g / f"{Path(s.image).stem}{suf}" for suf in GT_SUFFIXES if (g / f"{Path(s.image).stem}{suf}").is_file()
            ]
            if len(found) > 1:
                raise BatchInputError(
                    f"ground-truth folder {g} has {len(found)} files for scene {s.name} "
                    f"({', '.join(f.name for f in found)}); keep one"
                )
            out.append(SceneSpec(s.name, s.image, str(found[0]) if found else None))
        return out
    if not g.is_file():
        raise BatchInputError(f"--gt {g} does not exist; give a folder, a CSV scene,gt, a GeoJSON or a raster")
    if g.suffix.lower() == ".csv":
        return _pair_csv(specs, g)
    if g.suffix.lower() in _VECTOR:
        return [SceneSpec(s.name, s.image, str(g)) for s in specs]
    if len(specs) != 1:
        raise BatchInputError(
            f"--gt {g.name} is one raster but the batch has {len(specs)} scenes; give a folder of ground truths "
            "named like the scenes, or a CSV scene,gt"
        )
    return [SceneSpec(specs[0].name, specs[0].image, str(g))]


def _pair_csv(specs: Sequence[SceneSpec], path: Path) -> list[SceneSpec]:
    base = path.parent
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BatchInputError(f"cannot read the CSV {path} ({exc}); it needs a header scene,gt") from exc
    if not rows or not {"scene", "gt"} <= set(rows[0]):
        raise BatchInputError(f"the CSV {path} needs a header row `scene,gt` and one row per scored scene")
    by_path = {str(Path(s.image).resolve()): s for s in specs}
    by_name = {s.name: s for s in specs}
    pairs: dict[str, str] = {}
    for i, row in enumerate(rows, start=2):
        sc, gv = (row.get("scene") or "").strip(), (row.get("gt") or "").strip()
        if not sc or not gv:
            raise BatchInputError(f"{path} line {i}: both scene and gt are needed")
        sp = Path(sc).expanduser()
        key = str((sp if sp.is_absolute() else base / sp).resolve())
        spec = by_path.get(key) or by_name.get(sc) or by_name.get(Path(sc).stem)
        if spec is None:
            raise BatchInputError(f"{path} line {i}: scene {sc!r} is not one of the batch's scenes")
        gp = Path(gv).expanduser()
        gp = gp if gp.is_absolute() else base / gp
        if not gp.is_file():
            raise BatchInputError(f"{path} line {i}: ground truth {gp} does not exist")
        pairs[spec.name] = str(gp)
    return [SceneSpec(s.name, s.image, pairs.get(s.name)) for s in specs]
