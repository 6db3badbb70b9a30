"""The Batch page: a model over a folder of scenes in the background, per-scene progress, then a map of the
scenes' footprints coloured by their score and the per-scene table; a scene opens on the Map page with its run.

The batch is :func:`rsviz.batch.background.start_batch` (``rsviz batch`` in a thread of the server): with
workers > 0 on a Dask ``LocalCluster``, with 0 in the server's own process. Its outputs go to a folder of the
workspace (or one the user names); each scene's prediction is also recorded as a workspace run, so the link
``map?scene=<scene key>&runs=<run key>`` (opened in a new tab, or by clicking the footprint / the button)
shows it on the Map page.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from rsviz.app import state
from rsviz.errors import RsvizError

K_BATCH = "rsviz.batch"
#: Colours of the footprints from the worst to the best score.
SCORE_COLOURS = ("#d73027", "#fee08b", "#1a9850")


def map_link(scene_key: str | None, run_key: str | None) -> str | None:
    """URL of the Map page showing a scene with its run (below Streamlit's base path), or None."""
    from rsviz.app.routes import base_prefix

    if not scene_key:
        return None
    q = f"scene={scene_key}" + (f"&runs={run_key}" if run_key else "")
    return f"{base_prefix(state.base_url())}/map?{q}"


def open_on_map(scene_key: str, run_key: str | None) -> None:
    """Open a batch scene with its run in this session and go to the Map page.

    Raises:
        UnknownNameError: The scene or run is no longer in the workspace.
    """
    from rsviz.workspace import load_run, load_scene

    state.set_scene(load_scene(scene_key))
    if run_key:
        state.add_run(load_run(run_key))
    st.switch_page("map.py")


def _default_out(scenes_arg: str, model: str) -> str:
    from pathlib import Path

    from rsviz.resources import workspace_dir

    stem = Path(scenes_arg.rstrip("/")).name.replace("*", "").replace(":", "-") or "scenes"
    return str(workspace_dir() / "batches" / f"{stem}-{model}")


def _start_form() -> None:
    from rsviz.app.views import usable_models
    from rsviz.batch import resolve_scenes
    from rsviz.batch.background import start_batch
    from rsviz.batch.cluster import local_cluster_size
    from rsviz.models.api import get_model_card
    from rsviz.workspace.scene import check_local_path

    models = [m for m in usable_models() if get_model_card(m).task != "scene"]
    if not models:
        st.info("No per-pixel model is registered.")
        return
    c1, c2 = st.columns(2)
    model = c1.selectbox("Model", models, key="batch-model")
    scenes_arg = c2.text_input(
        "Scenes: a folder, a glob (tiles/*.tif) or a catalog dataset (banepa-buildings:test)", key="batch-scenes"
    )
    gt = c1.text_input(
        "Ground truth (optional): a folder of files named like the scenes, a CSV scene,gt, or a building GeoJSON",
        key="batch-gt",
    )
    out = c2.text_input("Output folder (default: a folder in the workspace)", key="batch-out")
    workers = st.number_input(
        "Dask workers (0: in this server's process, without Dask)",
        min_value=0,
        max_value=64,
        value=local_cluster_size().workers,
        key="batch-workers",
    )
    if not st.button("Start batch", key="batch-go", type="primary") or not scenes_arg.strip():
        return
    try:
        for p in (scenes_arg, gt):
            if p.strip() and ":" not in p and "*" not in p:
                check_local_path(p.strip())
        specs = resolve_scenes([scenes_arg.strip()], gt.strip() or None)
        folder = out.strip() or _default_out(scenes_arg.strip(), model)
        if out.strip():
            check_local_path(folder)
        run = start_batch(model, specs, folder, workers=int(workers))
    except RsvizError as exc:
        st.error(str(exc))
        return
    st.session_state[K_BATCH] = run.id


def _status_rows(run: Any) -> list[dict[str, Any]]:
    from rsviz.batch import scene_rows

    if run.summary is not None:
        rows = scene_rows(run.summary.outcomes, run.summary.per_scene)
    else:
        rows = []
        for n in run.names:
            o = run.outcomes.get(n)
            r = o.counts.result() if o is not None and o.counts is not None else None
            rows += scene_rows([o], {n: r} if r is not None else {}) if o is not None else [{"scene": n}]
    for r in rows:
        r["status"] = run.scenes.get(r["scene"], r.get("status", "pending"))
        r["open"] = map_link(r.get("scene_key"), r.get("run_key"))
    return rows


def _table(rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    hidden = [c for c in ("scene_key", "run_key", "prediction") if c in df]
    st.dataframe(
        df.drop(columns=hidden),
        hide_index=True,
        column_config={"open": st.column_config.LinkColumn("Map", display_text="open on the Map")},
        key="batch-table",
    )


@st.fragment(run_every=1.0)
def _progress_fragment(batch_id: str) -> None:
    from rsviz.batch.background import get_batch

    run = get_batch(batch_id)
    if run is None:
        return
    st.progress(run.fraction, text=f"{run.done_count} / {len(run.names)} scenes · {run.state.value}")
    if run.dashboard:
        st.caption(f"Dask dashboard: [{run.dashboard}]({run.dashboard}) · {run.workers} worker(s)")
    _table(_status_rows(run))
    if run.finished:
        st.rerun(scope="app")


def _score_colour(score: float | None, lo: float, hi: float, lower_is_better: bool) -> str:
    if score is None:
        return "#808080"
    t = 0.5 if hi <= lo else (score - lo) / (hi - lo)
    t = 1 - t if lower_is_better else t
    return SCORE_COLOURS[0] if t < 1 / 3 else SCORE_COLOURS[1] if t < 2 / 3 else SCORE_COLOURS[2]


def footprint_map(fc: dict[str, Any], key: str | None, lower_is_better: bool = False) -> Any:
    """A folium map of the footprints (a GeoJSON FeatureCollection of :func:`rsviz.batch.footprints`), each filled
    by its score (red: worst third of the batch's range, yellow, green: best), with a tooltip.

    Returns:
        The :class:`folium.Map`, or None when no scene is georeferenced.
    """
    import folium

    from rsviz.app.mapview import fit_bounds, make_map

    feats = fc["features"]
    if not feats:
        return None
    scores = [f["properties"]["score"] for f in feats if f["properties"]["score"] is not None]
    lo, hi = (min(scores), max(scores)) if scores else (0.0, 1.0)
    m = make_map(basemap=False, draw=False, height=480, base_url=state.base_url())
    for f in feats:
        f["properties"]["colour"] = _score_colour(f["properties"]["score"], lo, hi, lower_is_better)
        f["properties"]["label"] = (
            f"{f['properties']['scene']}: {key} {f['properties']['score']:.3f}"
            if f["properties"]["score"] is not None and key
            else f"{f['properties']['scene']}: {f['properties']['status']}"
        )
    folium.GeoJson(
        fc,
        name="scenes",
        style_function=lambda f: {
            "fillColor": f["properties"]["colour"],
            "color": "#333333",
            "weight": 1,
            "fillOpacity": 0.6,
        },
        tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
    ).add_to(m)
    xs = [c[0] for f in feats for c in f["geometry"]["coordinates"][0]]
    ys = [c[1] for f in feats for c in f["geometry"]["coordinates"][0]]
    fit_bounds(m, (min(xs), min(ys), max(xs), max(ys)))
    return m


def _results(run: Any, st_folium: Any) -> None:
    from rsviz.batch import footprints, score_key
    from rsviz.batch.runner import LOWER_IS_BETTER
    from rsviz.evaluation import fmt, metric_label, task_spec

    s = run.summary
    st.success(
        f"{len(s.done)} of {len(s.outcomes)} scenes done ({len(s.skipped)} already complete), {len(s.per_scene)} "
        f"scored, in {s.seconds:.1f} s · outputs in `{s.out}`"
    )
    for o in s.failed:
        st.error(f"{o.name}: {o.error}")
    key = score_key(s.overall)
    if s.overall is not None:
        keys = [k for k in task_spec(s.overall.task).headline if k in s.overall.values]
        cols = st.columns(len(keys) or 1)
        for c, k in zip(cols, keys):
            c.metric(f"pooled {metric_label(k)[0]}", fmt(s.overall.values[k], 4))
    fc = footprints(s.outcomes, s.per_scene, key)
    m = footprint_map(fc, key, lower_is_better=key in LOWER_IS_BETTER)
    if m is not None:
        st.caption(
            f"Scene footprints coloured by {metric_label(key)[0] if key else 'status'} (red: worst third of the "
            "batch, green: best; grey: not scored). Click a scene to open it on the Map page with its run."
        )
        res = st_folium(
            m, height=480, use_container_width=True, returned_objects=["last_active_drawing"], key="batch-map"
        )
        clicked = ((res or {}).get("last_active_drawing") or {}).get("properties") or {}
        if clicked.get("scene_key") and clicked != st.session_state.get("batch-last-click"):
            st.session_state["batch-last-click"] = clicked
            try:
                open_on_map(clicked["scene_key"], clicked.get("run_key"))
            except RsvizError as exc:
                st.error(str(exc))
    rows = _status_rows(run)
    _table(rows)
    openable = [r for r in rows if r.get("scene_key")]
    if openable:
        c1, c2 = st.columns([3, 1])
        name = c1.selectbox("Scene", [r["scene"] for r in openable], key="batch-open-scene")
        if c2.button("Open on the Map", key="batch-open"):
            r = next(r for r in openable if r["scene"] == name)
            try:
                open_on_map(r["scene_key"], r.get("run_key") or None)
            except RsvizError as exc:
                st.error(str(exc))


def render_batch(st_folium: Any) -> None:
    """Start a batch over a folder; its per-scene progress; when done, the footprint map and per-scene table."""
    from rsviz.app.views import prelude
    from rsviz.batch.background import get_batch

    prelude()
    st.title("Batch")
    st.caption(
        "Predict and score many scenes with one model (`rsviz batch`): one task per scene on a Dask cluster of "
        "this machine, scores pooled from each scene's counts. Scenes already complete in the output folder are "
        "not run again."
    )
    _start_form()
    run = get_batch(st.session_state.get(K_BATCH, ""))
    if run is None:
        return
    st.subheader(f"{run.model} · {len(run.names)} scenes → `{run.out}`")
    if not run.finished:
        if st.button("Cancel", key="batch-cancel"):
            run.cancel()
        _progress_fragment(run.id)
        return
    if run.error:
        st.error(run.error)
    elif run.summary is None:
        st.warning(f"The batch was {run.state.value}; the scenes finished are kept, start it again to resume.")
    else:
        _results(run, st_folium)
