"""Session state of the app, mirrored in the URL: the open scene, the extent, the runs shown.

The state lives in ``st.session_state`` under ``rsviz.*`` keys (so page switches keep it) and in the
URL's query parameters (so a reload, a bookmark or a shared link brings the analyst back to the same
view): ``scene`` (the workspace scene id), ``bbox`` (EPSG:4326 ``west,south,east,north`` of the extent)
and ``runs`` (workspace run ids). :func:`restore` runs at the top of every page: when the session is new
(a reload, a link) it reopens what the URL names from the workspace; :func:`sync_url` then writes the
state back, since Streamlit clears query parameters on page switches. Ids are opaque, so a URL never
names a file; each session has its own state, the workspace's files are shared.
"""

from __future__ import annotations

import math

import streamlit as st

from rsviz.errors import UnknownNameError
from rsviz.types import BBox
from rsviz.workspace import Extent, RunResult, Scene, load_run, load_scene

K_SCENE, K_BOUNDS, K_RUNS, K_JOBS = "rsviz.scene", "rsviz.bounds", "rsviz.runs", "rsviz.jobs"
K_RESTORED = "rsviz.restored"
#: Runs kept in a session's list.
MAX_RUNS = 8


def scene() -> Scene | None:
    """The open scene, if any."""
    return st.session_state.get(K_SCENE)


def set_scene(s: Scene) -> None:
    """Open a scene; keeps the extent and runs only if it is the same scene."""
    old = scene()
    if old is None or old.key != s.key:
        st.session_state[K_BOUNDS] = None
        st.session_state[K_RUNS] = []
    st.session_state[K_SCENE] = s
    sync_url()


def bounds() -> BBox | None:
    """EPSG:4326 bounds of the drawn extent, or None for the whole scene."""
    return st.session_state.get(K_BOUNDS)


def set_bounds(b: BBox | None) -> None:
    """Set (or clear, with None) the extent."""
    st.session_state[K_BOUNDS] = tuple(float(v) for v in b) if b is not None else None
    sync_url()


def runs() -> list[RunResult]:
    """Runs of the current scene chosen in this session, most recent last."""
    return st.session_state.get(K_RUNS, [])


def add_run(r: RunResult) -> None:
    """Remember a run (replacing one with the same key)."""
    lst = [x for x in runs() if x.key != r.key]
    lst.append(r)
    st.session_state[K_RUNS] = lst[-MAX_RUNS:]
    sync_url()


def runs_for(extent: Extent) -> list[RunResult]:
    """Runs of the current scene over exactly this extent."""
    return [r for r in runs() if r.extent.key() == extent.key()]


def jobs() -> list[str]:
    """Keys of the background runs this session started (finished ones included until collected)."""
    return st.session_state.setdefault(K_JOBS, [])


def base_url() -> str:
    """Streamlit's ``server.baseUrlPath`` (``""`` for none): tile and asset URLs live below it."""
    return str(st.get_option("server.baseUrlPath") or "")


def need_scene() -> Scene | None:
    """The open scene, or an info box pointing to the Map page."""
    s = scene()
    if s is None:
        st.info("Open a scene on the **Map** page first.")
    return s


def _parse_bbox(text: str) -> BBox | None:
    try:
        v = tuple(float(x) for x in text.split(","))
    except ValueError:
        return None
    if len(v) != 4 or not all(math.isfinite(x) for x in v) or v[0] >= v[2] or v[1] >= v[3]:
        return None
    return v  # type: ignore[return-value]


def restore() -> list[str]:
    """Reopen the scene, extent and runs the URL names, once per session.

    Returns:
        Messages for what could not be restored (shown by the caller; nothing else changes).
    """
    if st.session_state.get(K_RESTORED):
        return []
    st.session_state[K_RESTORED] = True
    qp = st.query_params
    notes: list[str] = []
    key = qp.get("scene")
    if not key or scene() is not None:
        return notes
    try:
        s = load_scene(key)
    except UnknownNameError as exc:
        return [f"The link's scene could not be reopened: {exc}"]
    st.session_state[K_SCENE] = s
    b = _parse_bbox(qp.get("bbox", "")) if s.georeferenced else None
    st.session_state[K_BOUNDS] = b
    kept = []
    for rk in (qp.get("runs") or "").split(","):
        if not rk:
            continue
        try:
            r = load_run(rk)
        except UnknownNameError as exc:
            notes.append(f"A run of the link could not be reopened: {exc}")
            continue
        if r.scene_key == s.key:
            kept.append(r)
    st.session_state[K_RUNS] = kept[-MAX_RUNS:]
    return notes


def sync_url() -> None:
    """Write the state into the URL's query parameters (replacing what was there)."""
    s = scene()
    want: dict[str, str] = {}
    if s is not None:
        want["scene"] = s.key
        b = bounds()
        if b is not None:
            want["bbox"] = ",".join(f"{v:.8f}" for v in b)
        if runs():
            want["runs"] = ",".join(r.key for r in runs())
    from rsviz.sentinel2.runs import QUERY_KEY

    if QUERY_KEY in st.query_params:  # the Sentinel-2 page's own run (rsviz.sentinel2.runs)
        want[QUERY_KEY] = st.query_params[QUERY_KEY]
    if dict(st.query_params.to_dict()) != want:
        st.query_params.from_dict(want)
