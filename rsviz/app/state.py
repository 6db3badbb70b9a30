"""Session state of the app: the open scene, the extent, the chosen runs.

Stored in ``st.session_state`` under ``rsviz.*`` keys so that page switches keep what
the user made (the scene, the drawn extent, the runs) -- nothing is lost on navigation.
"""

from __future__ import annotations

import streamlit as st

from rsviz.app.workspace import Extent, RunResult, Scene

K_SCENE, K_BOUNDS, K_RUNS = "rsviz.scene", "rsviz.bounds", "rsviz.runs"


def scene() -> Scene | None:
    """The open scene, if any."""
    return st.session_state.get(K_SCENE)


def set_scene(s: Scene) -> None:
    """Open a scene; keeps the extent only if it is the same scene."""
    old = scene()
    if old is None or old.key != s.key:
        st.session_state[K_BOUNDS] = None
        st.session_state[K_RUNS] = []
    st.session_state[K_SCENE] = s


def bounds():
    """EPSG:4326 bounds of the drawn extent, or None for the whole scene."""
    return st.session_state.get(K_BOUNDS)


def set_bounds(b) -> None:
    """Set (or clear, with None) the extent."""
    st.session_state[K_BOUNDS] = tuple(b) if b is not None else None


def runs() -> list[RunResult]:
    """Runs of the current scene, most recent last."""
    return st.session_state.get(K_RUNS, [])


def add_run(r: RunResult) -> None:
    """Remember a run (replacing one with the same key)."""
    lst = [x for x in runs() if x.key != r.key]
    lst.append(r)
    st.session_state[K_RUNS] = lst[-8:]


def runs_for(extent: Extent) -> list[RunResult]:
    """Runs of the current scene over exactly this extent."""
    return [r for r in runs() if r.extent.key() == extent.key()]


def need_scene() -> Scene | None:
    """The open scene, or an info box pointing to the Map page."""
    s = scene()
    if s is None:
        st.info("Open a scene on the **Map** page first.")
    return s
