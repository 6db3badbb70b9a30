"""The batch folder's manifest: which scenes are done, with what, and their counts; the folder's lock.

``<out>/manifest.json`` holds one entry per scene (a :meth:`rsviz.batch.task.SceneOutcome.to_json`): its
status, the hash of what produced it (:func:`scene_hash`: model weights, the scene's files by path, size and
modification time, and the options that change outputs), its prediction file and its evaluation counts. It
is rewritten (temporary file, then rename) after every scene, so a batch stopped at any point (Ctrl-C, the
client's machine going down) keeps every scene finished so far. A rerun skips the scenes whose entry is
``done`` with the same hash and whose prediction is still there at the recorded size; failed scenes are tried
again. One batch at a time writes into a folder (:func:`folder_lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rsviz.batch.scenes import SceneSpec
from rsviz.batch.task import BatchOptions, SceneOutcome
from rsviz.errors import OutputPathError

MANIFEST = "manifest.json"
#: Manifest layout version (a manifest of another version is started afresh).
VERSION = 1
LOCK = ".rsviz-batch.lock"


def scene_hash(model: str, weights: str, spec: SceneSpec, options: BatchOptions) -> str:
    """sha256 (16 hex) of what a scene's outputs depend on: the model and its weights hash, the scene's files
    (:meth:`SceneSpec.stamp`), the options of :meth:`BatchOptions.identity` and the rsviz version.

    Raises:
        RasterReadError: A file of the scene is gone.
    """
    from rsviz import __version__

    raw = json.dumps([model, weights, spec.stamp(), options.identity(), __version__], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class Manifest:
    """The manifest of a batch folder (see the module docstring).

    Args:
        out: The batch folder.
        model: The batch's model.
        weights: Its weights hash.
    """

    def __init__(self, out: Path, model: str, weights: str) -> None:
        self.path = out / MANIFEST
        self.out, self.model, self.weights = out, model, weights
        self.scenes: dict[str, dict[str, Any]] = {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise OutputPathError(
                f"the manifest {self.path} is unreadable ({exc}); delete it to start the batch afresh"
            ) from exc
        if isinstance(doc, dict) and doc.get("version") == VERSION and isinstance(doc.get("scenes"), dict):
            self.scenes = dict(doc["scenes"])

    def complete(self, name: str, hash_: str) -> SceneOutcome | None:
        """The recorded outcome of a scene if it is done with this hash and its prediction is intact, else None."""
        d = self.scenes.get(name)
        if not d or d.get("status") != "done" or d.get("scene_hash") != hash_:
            return None
        try:
            o = SceneOutcome.from_json(d)
        except (KeyError, ValueError, TypeError):
            return None
        p = self.out / (o.prediction or "")
        if not o.prediction or not p.is_file() or p.stat().st_size != o.prediction_bytes:
            return None
        return o

    def record(self, outcome: SceneOutcome) -> None:
        """Record a scene's outcome and rewrite the manifest."""
        self.scenes[outcome.name] = outcome.to_json()
        self.save()

    def save(self) -> None:
        """Write the manifest atomically."""
        doc = {"version": VERSION, "model": self.model, "weights": self.weights, "scenes": self.scenes}
        write_atomic(self.path, json.dumps(doc, indent=1, allow_nan=False) + "\n")


def write_atomic(path: Path, text: str) -> None:
    """Write a text file under a temporary name beside it, then rename it (readers never see half a file).

    Raises:
        OutputPathError: The folder cannot be written.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputPathError(f"cannot write {path} ({exc}); check the batch folder") from exc


def remove_scratch(out: Path) -> list[Path]:
    """Remove what tasks that died left behind in the batch folder: the scratch folders (``.rsviz-*``) of
    predictions and temporary files (``.*.tmp``). Call only while holding :func:`folder_lock` with no task
    running.

    Returns:
        The paths removed.
    """
    gone = []
    for p in out.glob(".rsviz-*"):
        if p.name == LOCK:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        gone.append(p)
    for p in out.glob(".*.tmp"):
        p.unlink(missing_ok=True)
        gone.append(p)
    return gone


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold the batch folder's lock (an advisory ``flock``; released when the process ends, however it ends).

    Raises:
        OutputPathError: Another batch is writing into the folder.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one batch per folder is then the user's rule
        yield
        return
    f = open(out / LOCK, "a+")  # noqa: SIM115 - held for the context
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise OutputPathError(
                f"another batch is writing into {out}; wait for it, or give another --out folder"
            ) from exc
        yield
    finally:
        f.close()
