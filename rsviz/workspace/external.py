"""Predictions made elsewhere as workspace runs: a class-id or probability raster from another pipeline,
compared, scored and exported like a model run.

:func:`import_prediction` writes the raster onto the scene's grid, block by block, into the run COG layout of
:func:`rsviz.inference.output_band_layout` (class ids in band 1, 255 = nodata) under ``runs/<key>/``, with a
``card.json`` beside it that describes the classes (:class:`ClassTable`); the Compare, Metrics and Export
pages read :attr:`rsviz.workspace.runs.RunResult.card` and so treat it like any model's run. A raster on
another grid (another CRS, GSD or footprint) is warped onto the scene's grid through GDAL's warper
(:class:`rasterio.vrt.WarpedVRT`): nearest neighbour for class ids, bilinear for probabilities, and the
result says so in its warnings.

Accepted rasters:

* one integer band of class ids (values of the class table; the raster's nodata and 255 are nodata); for a
  two-class table a ``0/255`` mask is read as ``0/1`` (with a warning), as ground-truth masks are;
* float probabilities in ``[0, 1]``: one band (the positive class of a two-class table, thresholded) or one
  band per class (arg-max).

The class table comes, in this order of preference, from a JSON file (:func:`class_table_from_json`), a
model's card (:func:`class_table_from_model`), the raster's own colour table
(:func:`class_table_from_colormap`) or the scene's ground-truth legend (:func:`class_table_of_scene`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from affine import Affine
from rasterio.windows import Window

from rsviz.errors import GridMismatchError, ModelInputError, RasterReadError, UnknownNameError
from rsviz.types import NODATA_CLASS, ClassInfo
from rsviz.workspace.runs import RunOptions, RunResult, _runs_root, _stage_run, load_run
from rsviz.workspace.scene import Extent, Scene, resolve_extent

#: Prefix of the model name of an external run (``external:<name>``).
EXTERNAL_PREFIX = "external:"
#: Tasks an external prediction can be scored as.
TASKS = ("buildings", "roads", "landcover")
#: Side of the blocks the raster is read and written by, pixels.
BLOCK = 1024
#: Probabilities may exceed [0, 1] by this much (rounding of the writer) before the raster is refused.
PROB_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ClassTable:
    """What the values of an external prediction mean.

    Attributes:
        task: ``buildings``, ``roads`` (two classes, id 1 positive) or ``landcover`` (any number of classes).
        classes: Class ids with names and RGB colours.
        ignore_index: Class id excluded from the metrics, or None.
        source: Where the table came from (shown in the app and kept in the run's card).
    """

    task: str
    classes: tuple[ClassInfo, ...]
    ignore_index: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelInputError(f"class table task {self.task!r} is not one of {', '.join(TASKS)}")
        ids = [c.id for c in self.classes]
        if len(ids) < 2:
            raise ModelInputError(f"a class table needs at least two classes; got {ids}")
        if len(set(ids)) != len(ids) or any(not 0 <= i < NODATA_CLASS for i in ids):
            raise ModelInputError(f"class ids must be distinct integers in 0-254; got {ids}")
        if self.task in ("buildings", "roads") and sorted(ids) != [0, 1]:
            raise ModelInputError(f"a {self.task} class table has the classes 0 (background) and 1; got ids {ids}")

    @property
    def binary(self) -> bool:
        """Two classes scored as a binary mask (buildings, roads)."""
        return self.task in ("buildings", "roads")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form :func:`class_table_from_json` reads."""
        return {
            "task": self.task,
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes],
            "ignore_index": self.ignore_index,
        }


def class_table_from_json(data: str | bytes | os.PathLike[str], source: str = "") -> ClassTable:
    """Read a class table: ``{"task": "landcover", "classes": [{"id": 0, "name": "...", "color": [r, g, b]}, ...],
    "ignore_index": null}`` (``color`` optional; ``task`` defaults to ``buildings`` for two classes named
    background/building, ``roads`` likewise, else ``landcover``).

    Args:
        data: JSON text or bytes, or the path of a JSON file.
        source: Recorded origin (default: the file name, or ``JSON``).

    Raises:
        ModelInputError: Not JSON, or a field is missing or wrong (the message names it and quotes the value).
    """
    if isinstance(data, os.PathLike):
        path = Path(data)
        source = source or path.name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelInputError(f"class table {path} cannot be read ({exc})") from exc
    source = source or "JSON"
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelInputError(f"class table {source} is not JSON ({exc})") from exc
    if not isinstance(d, dict) or not isinstance(d.get("classes"), list):
        raise ModelInputError(f'class table {source}: expected an object with a "classes" list; got {str(d)[:80]!r}')
    classes: list[ClassInfo] = []
    for i, c in enumerate(d["classes"]):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise ModelInputError(f'class table {source}: classes[{i}] needs "id" and "name"; got {c!r}')
        colour = c.get("color", c.get("colour"))
        if colour is None:
            colour = _default_colour(len(classes))
        if not (
            isinstance(colour, (list, tuple))
            and len(colour) in (3, 4)
            and all(isinstance(v, int) and 0 <= v <= 255 for v in colour)
        ):
            raise ModelInputError(f"class table {source}: classes[{i}].color must be [r, g, b] (0-255); got {colour!r}")
        try:
            classes.append(ClassInfo(int(c["id"]), str(c["name"]), (int(colour[0]), int(colour[1]), int(colour[2]))))
        except (TypeError, ValueError) as exc:
            raise ModelInputError(f"class table {source}: classes[{i}].id must be an integer; got {c['id']!r}") from exc
    names = sorted(c.name.lower() for c in classes)
    guess = "landcover"
    if len(classes) == 2 and names[0] == "background" and names[1] in ("building", "buildings", "road", "roads"):
        guess = "roads" if names[1].startswith("road") else "buildings"
    ignore = d.get("ignore_index")
    if ignore is not None and not isinstance(ignore, int):
        raise ModelInputError(f"class table {source}: ignore_index must be an integer or null; got {ignore!r}")
    return ClassTable(str(d.get("task", guess)), tuple(classes), ignore, source)


def _default_colour(i: int) -> tuple[int, int, int]:
    palette = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48))
    return palette[i % len(palette)]


def class_table_from_model(name: str) -> ClassTable:
    """The classes of a registered model's card (a prediction made by that model elsewhere).

    Raises:
        UnknownNameError: No such model (the message lists the valid names).
        ModelInputError: The model does not predict classes per pixel (e.g. a scene classifier).
    """
    from rsviz.models.api import get_model_card

    card = get_model_card(name)
    seg = card.heads.get("seg")
    if seg is None or seg.kind not in ("binary", "multiclass") or card.task not in TASKS:
        raise ModelInputError(f"{name} does not predict classes per pixel ({card.task}); pick a segmentation model")
    classes = tuple(card.classes) or (ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "positive", (230, 25, 75)))
    return ClassTable(card.task, classes, card.ignore_index, f"model {name}")


def class_table_from_colormap(path: str | os.PathLike[str]) -> ClassTable | None:
    """The raster's own colour table (band 1), as a class table; None when it has none.

    The ids kept are those the raster's ``class_names`` / ``CLASS_NAMES`` metadata (comma-separated) names, else
    the ids up to the last entry whose colour differs from the table's padding (GDAL pads tables to 256
    entries with one colour); names default to ``class <id>``.
    """
    from rsviz.raster import open_raster

    with open_raster(path) as ds:
        try:
            cmap = ds.colormap(1)
        except ValueError:  # GDAL: no colour table
            return None
        names_tag = ds.tags().get("class_names") or ds.tags().get("CLASS_NAMES") or ""
    names = [n.strip() for n in names_tag.split(",")] if names_tag else []
    entries = {i: tuple(v) for i, v in cmap.items() if i < NODATA_CLASS}
    if names:
        ids = [i for i in sorted(entries) if i < len(names)]
    else:  # GDAL pads a table to 256 entries with one filler colour: keep ids up to the last other colour
        filler = Counter(entries.values()).most_common(1)[0][0] if entries else None
        last = max((i for i, v in entries.items() if v != filler), default=-1)
        ids = [i for i in sorted(entries) if i <= last]
    if len(ids) < 2:
        return None
    classes = tuple(
        ClassInfo(i, names[i] if i < len(names) and names[i] else f"class {i}", tuple(cmap[i][:3])) for i in ids
    )
    task = "buildings" if [c.id for c in classes] == [0, 1] else "landcover"
    return ClassTable(task, classes, None, "the raster's colour table")


def class_table_of_scene(scene: Scene) -> ClassTable:
    """The scene's ground-truth legend as the class table (a prediction of the scene's own classes).

    Raises:
        ModelInputError: The scene has no class ground truth to take the legend from.
    """
    if scene.task not in TASKS or not scene.classes:
        raise ModelInputError(
            f"scene {scene.name} has no class legend ({scene.task}); give a class table (JSON) or a model's classes"
        )
    return ClassTable(scene.task, tuple(scene.classes), None, f"the legend of {scene.name}")


@dataclass(frozen=True)
class ExternalRun:
    """The outcome of :func:`import_prediction`.

    Attributes:
        run: The workspace run (model ``external:<name>``).
        warnings: What was done to the raster that the user should know (warping, a 0/255 mask...).
        from_workspace: The same raster and class table had been imported before; its run was reopened.
    """

    run: RunResult
    warnings: tuple[str, ...]
    from_workspace: bool


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def external_card(name: str, table: ClassTable, source: str) -> Any:
    """The :class:`~rsviz.models.card.ModelCard` an external run is scored with: the table's classes in a
    ``seg`` head (binary for buildings/roads, else multiclass) and no input (it is never run)."""
    from rsviz.models.card import HeadSpec, InputSpec, ModelCard

    kind = "binary" if table.binary else "multiclass"
    return ModelCard(
        name=f"{EXTERNAL_PREFIX}{name}",
        title=f"External prediction {name}",
        task=table.task,
        architecture="external prediction raster",
        paper="",
        heads={"seg": HeadSpec(kind, 1 if table.binary else len(table.classes), description="imported class ids")},
        input=InputSpec(bands=[]),
        classes=list(table.classes),
        ignore_index=table.ignore_index,
        extra={"external": {"source": source, "class_table": table.source}},
        licence="as its producer's",
    )


def _grid_of(ds: Any) -> tuple[Any, Any, int, int]:
    return ds.crs, ds.transform, ds.height, ds.width


def _same_grid(ds: Any, scene: Scene) -> bool:
    crs, t, h, w = _grid_of(ds)
    same_crs = (crs is None and scene.crs is None) or (crs is not None and scene.crs is not None and crs == scene.crs)
    return bool(same_crs and (h, w) == scene.shape and t.almost_equals(scene.transform, precision=1e-9))


def _values_kind(ds: Any, table: ClassTable, name: str) -> str:
    """``ids`` (class ids), ``mask255`` (a 0/255 two-class mask) or ``probs`` (probabilities)."""
    dtype = np.dtype(ds.dtypes[0])
    if np.issubdtype(dtype, np.floating):
        if ds.count not in (1, len(table.classes)) or (ds.count == 1 and not table.binary):
            raise ModelInputError(
                f"{name} holds {ds.count} float band(s); probabilities need one band (the positive class of a "
                f"two-class table) or one per class ({len(table.classes)})"
            )
        return "probs"
    if not np.issubdtype(dtype, np.integer):
        raise ModelInputError(f"{name} has {dtype} pixels; give class ids (integers) or probabilities (float)")
    if ds.count != 1:
        raise ModelInputError(f"{name} holds {ds.count} integer bands; a class-id raster has one band")
    if table.binary and ds.nodata != NODATA_CLASS:
        small = ds.read(1, out_shape=(min(ds.height, 512), min(ds.width, 512)))
        vals = set(np.unique(small).tolist()) - ({int(ds.nodata)} if ds.nodata is not None else set())
        if vals and vals <= {0, 255} and 255 in vals:
            return "mask255"
    return "ids"


def _classes_of(block: np.ndarray, valid: np.ndarray, kind: str, table: ClassTable, threshold: float) -> np.ndarray:
    """``(h, w)`` uint8 class ids (255 nodata) of a ``(bands, h, w)`` block."""
    out = np.full(block.shape[1:], NODATA_CLASS, np.uint8)
    if kind == "probs":
        p = block.astype(np.float32)
        v = valid & np.isfinite(p).all(0)
        if v.any():
            lo, hi = float(p[:, v].min()), float(p[:, v].max())
            if lo < -PROB_TOLERANCE or hi > 1 + PROB_TOLERANCE:
                raise ModelInputError(
                    f"probabilities must lie in [0, 1]; this raster holds {lo:.3g} to {hi:.3g} (class ids must be "
                    "an integer raster)"
                )
        ids = np.array([c.id for c in table.classes], np.uint8)
        cls = (p[0] >= threshold).astype(np.uint8) if p.shape[0] == 1 else ids[np.argmax(np.nan_to_num(p), 0)]
        out[v] = cls[v]
        return out
    a = block[0]
    if kind == "mask255":
        a = np.where(a == 255, 1, a)
    known = np.array(sorted(c.id for c in table.classes))
    bad = valid & ~np.isin(a, known)
    if bad.any():
        found = np.unique(a[bad])[:8].tolist()
        raise ModelInputError(
            f"class ids {found} are not in the class table ({', '.join(f'{c.id} {c.name}' for c in table.classes)});"
            " give the table that matches the raster"
        )
    out[valid] = a[valid].astype(np.uint8)
    return out


def import_prediction(
    scene: Scene,
    path: str | os.PathLike[str],
    table: ClassTable | None = None,
    *,
    name: str | None = None,
    threshold: float = 0.5,
    extent: Extent | None = None,
) -> ExternalRun:
    """Record a prediction raster made elsewhere as a run over an extent of ``scene``.

    Args:
        scene: The workspace scene the prediction is of.
        path: Class-id raster (one integer band) or probabilities (float, one band or one per class), any
            GDAL format; on the scene's grid or on another one with a CRS that overlaps it.
        table: What the values mean (default: the raster's colour table, else the scene's legend).
        name: Run name shown in the app (default: the file's stem); the run's model is ``external:<name>``.
        threshold: Probability threshold of a one-band probability raster, 0-1.
        extent: The extent the run covers (None: the whole scene), as a model run over it would.

    Returns:
        :class:`ExternalRun`: the run (class ids in band 1, 255 nodata: outside the raster, its nodata, non-finite
        probabilities) and the warnings to show.

    Raises:
        RasterReadError: The file cannot be read.
        GridMismatchError: Not on the scene's grid and without a CRS to warp it by, or not overlapping the scene.
        ModelInputError: Values that do not fit the class table (the message names them), probabilities
            outside [0, 1], a band count that is neither, or no pixel of the prediction inside the extent.
    """
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from rsviz.inference.cogwriter import StreamedCOG
    from rsviz.raster import open_raster

    src = Path(path)
    name = (name or src.stem).strip() or src.stem
    if not 0.0 < threshold < 1.0:
        raise ModelInputError(f"threshold must lie in (0, 1); got {threshold}")
    if table is None:
        table = class_table_from_colormap(src) or class_table_of_scene(scene)
    digest = _sha256(src)
    from rsviz import __version__

    extent = extent if extent is not None else resolve_extent(scene, None)
    raw = "|".join(
        ("external", name, digest, scene.key, extent.key(), json.dumps(table.to_dict(), sort_keys=True), str(threshold))
    )
    key = hashlib.sha256(f"{raw}|{__version__}".encode()).hexdigest()[:16]
    warnings: list[str] = []
    with open_raster(src) as ds:
        kind = _values_kind(ds, table, src.name)
        same = _same_grid(ds, scene)
        if not same:
            if ds.crs is None or scene.crs is None:
                raise GridMismatchError(
                    f"{src.name} is {ds.height} x {ds.width} px and not on the scene's grid ({scene.height} x "
                    f"{scene.width}); without a CRS on both it cannot be placed; write it on the scene's grid"
                )
            from rsviz.geo import reproject_bounds
            from rsviz.raster import _bounds

            b = reproject_bounds(tuple(ds.bounds), ds.crs, scene.crs)
            sb = _bounds(scene.transform, scene.height, scene.width)
            if b[2] <= sb[0] or b[0] >= sb[2] or b[3] <= sb[1] or b[1] >= sb[3]:
                raise GridMismatchError(f"{src.name} does not overlap scene {scene.name}; check its CRS and extent")
            how = "nearest neighbour (class ids)" if kind != "probs" else "bilinear (probabilities)"
            warnings.append(
                f"{src.name} is on another grid ({ds.crs.to_string()}, {ds.height} x {ds.width} px, "
                f"{abs(ds.transform.a):.3g} units/px); it was reprojected onto the scene's grid "
                f"({scene.crs.to_string()}, {scene.height} x {scene.width} px) by {how}"
            )
        if kind == "mask255":
            warnings.append(f"{src.name} is a 0/255 mask: 255 was read as class 1 ({table.classes[1].name})")
        try:
            return ExternalRun(load_run(key), tuple(warnings), True)
        except UnknownNameError:
            pass
        nodata = ds.nodata
        reader: Any = ds
        if not same:
            reader = WarpedVRT(
                ds,
                crs=scene.crs,
                transform=scene.transform,
                width=scene.width,
                height=scene.height,
                resampling=Resampling.nearest if kind != "probs" else Resampling.bilinear,
                src_nodata=nodata,
                nodata=nodata if nodata is not None else (np.nan if kind == "probs" else NODATA_CLASS),
                add_alpha=False,
            )
        win = extent.window
        c0, r0, ew, eh = int(win.col_off), int(win.row_off), int(win.width), int(win.height)

        def write(tmp: Path) -> RunResult:
            card = external_card(name, table, f"{src.name} (sha256 {digest[:12]})")
            card.save(tmp / "card.json")
            scratch = Path(tempfile.mkdtemp(prefix="cog-", dir=tmp))
            cog = StreamedCOG(
                scratch,
                eh,
                ew,
                1,
                "uint8",
                scene.transform * Affine.translation(c0, r0),
                scene.crs,
                nodata=NODATA_CLASS,
                descriptions=["classes"],
                tags={"rsviz_bands": "classes", "rsviz_model": card.name},
            )
            seen = 0
            try:
                for row in range(0, eh, BLOCK):
                    for col in range(0, ew, BLOCK):
                        w = Window(c0 + col, r0 + row, min(BLOCK, ew - col), min(BLOCK, eh - row))
                        block = reader.read(window=w, masked=True)
                        valid = np.asarray(~np.ma.getmaskarray(block).any(0))
                        data = np.ma.getdata(block)
                        if kind == "ids":  # 255 is nodata in rsviz (in a 0/255 mask it is the positive class)
                            valid &= data[0] != NODATA_CLASS
                        ids = _classes_of(data, valid, kind, table, threshold)
                        seen += int((ids != NODATA_CLASS).sum())
                        cog.write(ids[None], row, col)
                if not seen:
                    raise ModelInputError(
                        f"{src.name} holds no pixel inside this extent of {scene.name} (all nodata or outside it)"
                    )
                cog.finish(tmp / "prediction.tif")
            finally:
                cog.close()
                shutil.rmtree(scratch, ignore_errors=True)
            return RunResult(
                key,
                card.name,
                scene.key,
                extent,
                RunOptions(),
                _runs_root() / key / "prediction.tif",
                0.0,
                run_options={"external": True, "source": src.name, "source_sha256": digest, "threshold": threshold},
                stats={"warnings": warnings},
            )

        try:
            run, reopened = _stage_run(key, write)
        finally:
            if reader is not ds:
                reader.close()
    return ExternalRun(run, tuple(warnings), reopened)


def import_upload(
    scene: Scene,
    filename: str,
    data: bytes | BinaryIO,
    table: ClassTable | None = None,
    *,
    name: str | None = None,
    threshold: float = 0.5,
    extent: Extent | None = None,
) -> ExternalRun:
    """:func:`import_prediction` of an uploaded file: streamed into a private folder of the workspace, imported,
    and removed (the run's COG keeps what was imported). Errors name ``filename``.

    Raises:
        See :func:`import_prediction`.
    """
    from rsviz.resources import workspace_dir
    from rsviz.workspace.scene import _stream_to

    up = workspace_dir() / "uploads"
    up.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".upload-", dir=up))
    try:
        path = tmp / Path(filename).name
        _stream_to(path, data)
        return import_prediction(scene, path, table, name=name, threshold=threshold, extent=extent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "EXTERNAL_PREFIX",
    "ClassTable",
    "ExternalRun",
    "RasterReadError",
    "class_table_from_colormap",
    "class_table_from_json",
    "class_table_from_model",
    "class_table_of_scene",
    "external_card",
    "import_prediction",
    "import_upload",
]
