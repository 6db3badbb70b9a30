"""Sentinel-2 page runs kept in the workspace, so a reload or a shared link reopens them.

A run of the Sentinel-2 page is its parameters (:class:`S2Run`: which scene, how it was opened, the variants,
the extent); the patch probabilities themselves are in the derived cache of
:func:`rsviz.sentinel2.predict_variants` (``cache=True``), keyed by the scene file, window, scaling and weights,
so reopening a run reads them back without predicting. The parameters are written to
``<workspace>/sentinel2/<key>.json``; the URL carries only the opaque ``key`` (a URL never names a file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rsviz.errors import UnknownNameError
from rsviz.resources import workspace_dir

#: Query parameter of the Sentinel-2 page's run.
QUERY_KEY = "s2run"


@dataclass(frozen=True)
class S2Run:
    """What a Sentinel-2 page run was made from.

    Attributes:
        source: ``sample`` (the BigEarthNet patches placed on their grid) or ``local``.
        layout: With ``sample``: ``stack`` or ``folder``.
        path: With ``local``: the scene's path on this machine.
        baseline: The page's L2A baseline choice (its label).
        models: Variant names, in the order chosen.
        bounds: EPSG:4326 ``(west, south, east, north)`` of the extent, or None for the whole scene.
    """

    source: str
    layout: str
    path: str
    baseline: str
    models: tuple[str, ...]
    bounds: tuple[float, float, float, float] | None

    @property
    def key(self) -> str:
        """Opaque id of these parameters (16 hex digits)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _dir() -> Path:
    d = workspace_dir() / "sentinel2"
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_run(run: S2Run) -> str:
    """Keep ``run``'s parameters in the workspace; returns its key."""
    p = _dir() / f"{run.key}.json"
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(run)), encoding="utf-8")
    tmp.replace(p)
    return run.key


def load_run(key: str) -> S2Run:
    """The run saved under ``key``.

    Raises:
        UnknownNameError: No such run in this workspace (a link from another machine, or removed).
    """
    p = _dir() / f"{key}.json"
    if not (len(key) == 16 and all(c in "0123456789abcdef" for c in key)) or not p.is_file():
        raise UnknownNameError(f"no Sentinel-2 run {key!r} in this workspace ({_dir()}); run it again")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        b = d.get("bounds")
        return S2Run(
            str(d["source"]),
            str(d["layout"]),
            str(d["path"]),
            str(d["baseline"]),
            tuple(str(m) for m in d["models"]),
            (float(b[0]), float(b[1]), float(b[2]), float(b[3])) if b else None,
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise UnknownNameError(f"Sentinel-2 run {key!r} cannot be read ({exc}); run it again") from exc


__all__ = ["QUERY_KEY", "S2Run", "save_run", "load_run"]
