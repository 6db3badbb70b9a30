"""The user model store: model folders registered by ``rsviz models add`` (or the API), kept in the workspace.

A registered model lives in ``<workspace>/models/<name>/`` (:func:`store_dir`; the workspace is
``RSVIZ_WORKSPACE``), so it survives restarts and is listed by :func:`rsviz.models.api.list_models` next to
the bundled ones. :func:`add_model` accepts a folder that :func:`rsviz.models.api.from_pretrained` loads: a
``card.json`` (what the model expects and predicts) with ``config.json`` and either ``model.safetensors`` (smp /
rsviz architectures) or an ONNX, TorchScript or ``torch.export`` file named by ``config.json``'s ``runtime``
and ``file`` keys (never unpickled; see :mod:`rsviz.models.runtimes`). An MLM item (``mlm.json``) beside them
is read and checked too. Before the folder is kept, one tile of the card's input is predicted (the smoke
test): a model that cannot run is refused with the reason, and nothing is left in the store.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from rsviz.errors import ModelFolderError, RsvizError
from rsviz.resources import workspace_dir

#: Names a registered model may have (a folder name, no path separators).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Largest model folder accepted, bytes.
MAX_FOLDER_BYTES = 2 * 1024**3
#: Side of the smoke-test tile, pixels (multilabel models: the card's tile).
SMOKE_PX = 64


def store_dir() -> Path:
    """``<workspace>/models``: the folder whose sub-folders are the registered models (created)."""
    d = workspace_dir() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass(frozen=True)
class AddedModel:
    """A model registered by :func:`add_model`.

    Attributes:
        name: Registry name.
        folder: Its folder in the store.
        runtime: ``pytorch`` (safetensors), ``onnx``, ``torchscript`` or ``export``.
        task: The card's task.
        bands: Input band names, in order.
        outputs: Head name -> output shape of the smoke tile.
        smoke_seconds: Wall time of the smoke inference.
    """

    name: str
    folder: Path
    runtime: str
    task: str
    bands: tuple[str, ...]
    outputs: dict[str, tuple[int, ...]]
    smoke_seconds: float


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _fixed_tile(lm: Any) -> int | None:
    """The tile side an ONNX model with a fixed input size takes, else None."""
    shape = getattr(lm.net, "input_shape", None)
    return int(shape[2]) if shape is not None and shape[2] is not None else None


def smoke_test(lm: Any) -> dict[str, tuple[int, ...]]:
    """Predict one tile of mid-range values of the card's input; returns the output shapes.

    Raises:
        ModelFolderError: The model fails on it, or gives non-finite outputs (the message says which head).
    """
    from rsviz.inference import predict
    from rsviz.inference.classify import classify_patch

    card = lm.card
    bands = card.in_channels
    dtype = np.dtype(card.input.dtype)
    mid = float(card.input.scale) / 2 if card.input.scale else 0.5
    try:
        if any(h.kind == "multilabel" for h in card.heads.values()) and not any(
            h.kind in ("binary", "multiclass", "regression") for h in card.heads.values()
        ):
            side = int(card.input.tile_size)
            out = {"labels": np.asarray(classify_patch(lm, np.full((bands, side, side), mid, dtype)))}
        else:
            side = _fixed_tile(lm) or SMOKE_PX
            p = predict(lm, np.full((bands, side, side), mid, dtype), tile=side, tta=False)
            out = dict(p.heads)
    except (RsvizError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ModelFolderError(f"model {card.name!r} fails on a {bands}-band test tile: {exc}") from exc
    for k, v in out.items():
        if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(v).all():
            raise ModelFolderError(f"model {card.name!r} gives non-finite values in its {k!r} output on a test tile")
    return {k: tuple(np.shape(v)) for k, v in out.items()}


#: Largest number of files an uploaded archive may hold.
MAX_ARCHIVE_FILES = 64


def extract_archive(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Unpack a ``.zip`` of a model folder safely and return the model folder inside it.

    Members must be plain files with relative paths inside ``target`` (no ``..``, no absolute paths, no links);
    at most :data:`MAX_ARCHIVE_FILES` files and :data:`MAX_FOLDER_BYTES` uncompressed. The model folder is the
    archive's root or its single top-level folder, whichever holds ``card.json`` or ``mlm.json``.

    Raises:
        ModelFolderError: Not a zip file, an unsafe member (named), too many or too large files, or no model folder.
    """
    import stat
    import zipfile

    src, root = Path(archive), Path(target)
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFolderError(f"{src.name} is not a zip archive ({exc}); zip the model folder") from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_ARCHIVE_FILES:
            raise ModelFolderError(
                f"{src.name} holds {len(infos)} files; a model folder has at most {MAX_ARCHIVE_FILES}"
            )
        total = sum(i.file_size for i in infos)
        if total > MAX_FOLDER_BYTES:
            raise ModelFolderError(
                f"{src.name} unpacks to {total / 1e9:.1f} GB; the store takes up to {MAX_FOLDER_BYTES / 1e9:.1f} GB"
            )
        for i in infos:
            mode = i.external_attr >> 16
            dest = (root / i.filename).resolve()
            if (
                Path(i.filename).is_absolute()
                or ".." in Path(i.filename).parts
                or not dest.is_relative_to(root.resolve())
                or stat.S_ISLNK(mode)
            ):
                raise ModelFolderError(f"{src.name}: member {i.filename!r} is a link or points outside the archive")
        zf.extractall(root)
    for cand in [root, *[d for d in root.iterdir() if d.is_dir() and not d.name.startswith("__MACOSX")]]:
        if (cand / "card.json").is_file() or (cand / "mlm.json").is_file():
            return cand
    raise ModelFolderError(
        f"{src.name} holds no model folder: card.json or mlm.json must be at its root or in its one top folder"
    )


def add_model(
    path: str | os.PathLike[str],
    name: str | None = None,
    *,
    replace: bool = False,
    bands: list[str] | None = None,
    task: str | None = None,
) -> AddedModel:
    """Validate a model, smoke-test it and copy it into the store under ``name``.

    Args:
        path: A model folder (see the module docstring), a folder whose only descriptor is an MLM item
            (``mlm.json`` beside an ONNX / TorchScript / ``.pt2`` file: the card is derived from it,
            :func:`rsviz.models.importers.card_from_mlm`), a ``.zip`` of either (:func:`extract_archive`), or an
            ``.onnx`` file with Deepness metadata (:func:`rsviz.models.importers.import_deepness`).
        name: Registry name (default: the folder's or file's name); letters, digits, ``.``, ``_``, ``-``.
        replace: Replace a model of that name registered before (bundled models are never replaced).
        bands: With an ``.onnx`` file: its input band names (default red, green, blue).
        task: With an MLM-only folder or an ``.onnx`` file: the rsviz task (default inferred from the outputs).

    Returns:
        :class:`AddedModel`.

    Raises:
        ModelFolderError: Not a model folder, a bad name, a name taken, a folder over :data:`MAX_FOLDER_BYTES`,
            an unsafe archive or weights file, an invalid ``mlm.json`` (the message names the field), or a failed
            smoke test. The store is left as it was.
    """
    from rsviz.models.api import BUNDLED_DIR, from_pretrained, list_models, model_dir

    src = Path(path).expanduser()
    root = store_dir()
    tmp = Path(tempfile.mkdtemp(prefix=".add-", dir=root))
    try:
        if src.is_file() and src.suffix.lower() == ".zip":
            name = name or src.stem
            src = extract_archive(src, tmp / "unpacked")
        elif src.is_file() and src.suffix.lower() == ".onnx":
            from rsviz.models.importers import import_deepness

            name = name or src.stem
            src = import_deepness(src, tmp / "deepness", name=name, bands=bands, task=task)
        has_card = (src / "card.json").is_file() and (src / "config.json").is_file()
        if not src.is_dir() or not (has_card or (src / "mlm.json").is_file()):
            raise ModelFolderError(
                f"{src} is not a model folder: it needs card.json and config.json, or an MLM item (mlm.json), beside "
                "the weights file; `rsviz models export NAME` writes one"
            )
        name = name or src.name
        if not NAME_RE.match(name):
            raise ModelFolderError(
                f"model name {name!r} is not allowed: use letters, digits, '.', '_' and '-' (max 64)"
            )
        if name in list_models():
            where = model_dir(name)
            bundled = where.parent in (BUNDLED_DIR, BUNDLED_DIR.resolve())
            if bundled or not replace:
                raise ModelFolderError(
                    f"a model named {name!r} is already registered ({where}); choose another name"
                    + ("" if bundled else " or pass replace (--replace)")
                )
        size = _size(src)
        if size > MAX_FOLDER_BYTES:
            raise ModelFolderError(
                f"{src} holds {size / 1e9:.1f} GB; the store takes model folders up to {MAX_FOLDER_BYTES / 1e9:.1f} GB"
            )
        staged = tmp / "staged" / name
        shutil.copytree(src, staged, symlinks=False)
        if not has_card:  # the MLM item is the descriptor: the card derived from it (validating it) is kept
            from rsviz.models.importers import write_card_from_mlm

            write_card_from_mlm(staged, name=name, task=task)
        elif (staged / "mlm.json").is_file():
            from rsviz.models.mlm import read_mlm

            read_mlm(staged / "mlm.json")  # raises naming the field to fix
        lm = from_pretrained(staged, "cpu", name=name)
        t0 = time.perf_counter()
        outputs = smoke_test(lm)
        secs = time.perf_counter() - t0
        import json

        runtime = str(json.loads((staged / "config.json").read_text()).get("runtime", "pytorch"))
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(staged, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return AddedModel(name, final, runtime, lm.card.task, tuple(lm.card.input.bands), outputs, secs)


def add_upload(
    filename: str,
    data: bytes | BinaryIO,
    name: str | None = None,
    *,
    replace: bool = False,
    bands: list[str] | None = None,
    task: str | None = None,
) -> AddedModel:
    """:func:`add_model` of an uploaded ``.zip`` (a model folder) or ``.onnx`` file (Deepness metadata).

    The upload is streamed to a private folder of the store (refused past :data:`MAX_FOLDER_BYTES`), registered,
    and removed.

    Raises:
        ModelFolderError: Another file type, too large, or as :func:`add_model`.
    """
    suffix = Path(filename).suffix.lower()
    if suffix not in (".zip", ".onnx"):
        raise ModelFolderError(
            f"{filename}: upload a .zip of a model folder or a Deepness .onnx file (got {suffix or 'no extension'})"
        )
    from rsviz.workspace.scene import _stream_to

    tmp = Path(tempfile.mkdtemp(prefix=".upload-", dir=store_dir()))
    try:
        path = tmp / (Path(filename).stem[:64] + suffix)
        try:
            _stream_to(path, data, max_bytes=MAX_FOLDER_BYTES)
        except ValueError as exc:
            raise ModelFolderError(
                f"{filename} is over {MAX_FOLDER_BYTES / 1e9:.1f} GB, the largest model the store takes"
            ) from exc
        return add_model(path, name or Path(filename).stem, replace=replace, bands=bands, task=task)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_model(name: str) -> None:
    """Remove a model from the store.

    Raises:
        ModelFolderError: ``name`` is not in the store (bundled models cannot be removed).
    """
    d = store_dir() / name
    if not NAME_RE.match(name) or not (d / "card.json").is_file():
        raise ModelFolderError(f"{name!r} is not a model of the user store ({store_dir()})")
    shutil.rmtree(d)
