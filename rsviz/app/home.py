"""Widgets of the landing page."""

from __future__ import annotations

import streamlit as st

from rsviz.app import state
from rsviz.app.mapview import assets_installed
from rsviz.app.scenes import SceneOption, find_scene, option_index, scene_map, scene_options
from rsviz.data import catalog
from rsviz.errors import RsvizError
from rsviz.evaluation import fmt, metric_label, task_spec
from rsviz.workspace import Scene, open_sample
from rsviz.workspace.scene import open_mosaic


def device_label() -> str:
    """``"CUDA: <GPU name>"``, ``"Apple MPS"`` or ``"CPU (<n> threads)"`` (:func:`rsviz.models.api.device_label`)."""
    from rsviz.models.api import device_label as label

    return label("auto")


def render_intro() -> None:
    """What rsviz is, the device in use, bundled models and data status."""
    from rsviz.models.api import get_model_card

    st.caption("Browse imagery, draw an extent, run a bundled model and compare it with ground truth.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Device", device_label())
    from rsviz.app.views import usable_models

    names = usable_models()
    c2.metric("Bundled models", len(names))
    c3.metric("Sample datasets", len(catalog.list_datasets()))
    if not assets_installed():
        st.warning("Leaflet assets are not installed, so the map cannot render offline: run `npm ci --prefix static`.")
    if names:
        rows = []
        for n in names:
            c = get_model_card(n)
            split, main = next(iter(c.metrics.items()), ("", {}))
            keys = [k for k in task_spec(c.task).headline if isinstance(main.get(k), (int, float))][:2]
            rows.append(
                {
                    "model": n,
                    "task": c.task,
                    "title": c.title,
                    "bands": ", ".join(c.input.bands),
                    "key metric": (f"{split}: " if keys else "")
                    + ", ".join(f"{metric_label(k)[0]} {fmt(main[k])}" for k in keys),
                }
            )
        st.dataframe(rows, hide_index=True, width="stretch")


#: Datasets the default scenes need: fetched on the first start when the cache lacks them.
FIRST_RUN_DATASETS = ("banepa-buildings",)


@st.cache_resource(show_spinner=False)
def _first_run_lock():
    import threading

    return threading.Lock()


def render_first_run() -> None:
    """On a fresh machine: fetch the sample data the default scenes need (checksummed, from their origins), with a
    progress bar here and in the terminal; offline, say which command or variable to use instead."""
    missing = []
    for name in FIRST_RUN_DATASETS:
        try:
            catalog.require(name)
        except RsvizError:
            missing.append(name)
    if not missing:
        return
    from tqdm import tqdm

    with _first_run_lock():
        for name in missing:
            n = len(catalog.files(name))
            bar = st.progress(0.0, text=f"First start: fetching the sample dataset {name} ({n} files)…")
            with tqdm(total=n, desc=f"rsviz: fetching {name}", unit="file") as term:

                def progress(done: int, total: int, bar=bar, term=term, name=name) -> None:
                    term.update(done - term.n)
                    bar.progress(done / max(total, 1), text=f"Fetching {name}: {done}/{total} files")

                try:
                    catalog.fetch(name, progress)
                except RsvizError as exc:
                    bar.empty()
                    st.warning(
                        f"The sample data could not be fetched ({exc}). Offline, point {catalog.ENV_VAR} at a copy of "
                        f"the sample data (e.g. `{catalog.ENV_VAR}=../shared/rsviz-data streamlit run app.py`), or run "
                        f"`rsviz data fetch {name}` once online. Your own rasters open from Map -> Local path."
                    )
                    return
            bar.progress(1.0, text=f"{name}: fetched and checksummed")
    scene_option_list.clear()


@st.cache_data(show_spinner=False)
def scene_option_list(data_dir: str):
    """Scene options of the data cache at ``data_dir`` (the argument keys the Streamlit cache)."""
    return scene_options()


def open_option(o: SceneOption) -> Scene:
    """Open a picker option as a workspace scene: a mosaicked area (built into the derived cache on first use) or
    a catalog chip."""
    if o.mosaic:
        from rsviz.datasets.mosaics import build_mosaic

        bar = st.progress(0.0, text=f"Building the mosaic {o.mosaic} (once)…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"Building the mosaic {o.mosaic}: {done}/{total}")

        m = build_mosaic(o.mosaic, progress=progress)
        bar.empty()
        return open_mosaic(m)
    return open_sample(find_scene(o.dataset, o.id))


def _open_home_choice() -> None:
    label = st.session_state.get("home-scene")
    opts = {o.label: o for o in scene_option_list(str(catalog.data_dir()))[0]}
    if label in opts:
        try:
            state.set_scene(open_option(opts[label]))
        except (RsvizError, OSError, KeyError) as exc:
            st.session_state["home-error"] = str(exc)


def render_scene(st_folium) -> None:
    """Sample-scene picker (opens the scene for every page) and its map."""
    opts, problems = scene_option_list(str(catalog.data_dir()))
    for p in problems:
        st.info(p)
    if not opts:
        st.error(
            f"No sample data found in {catalog.data_dir()}. Run `rsviz data fetch` or set {catalog.ENV_VAR} to a "
            "folder with the sample data; your own rasters open from Map -> Local path."
        )
        return
    labels = [o.label for o in opts]
    cur = state.scene()
    if "home-scene" not in st.session_state or (cur is not None and cur.source in {o.source for o in opts}):
        st.session_state["home-scene"] = labels[option_index(opts, cur)]
    c1, c2 = st.columns([4, 1])
    c1.selectbox("Sample scene", labels, key="home-scene", on_change=_open_home_choice)
    basemap = c2.toggle("Basemap", value=False, key="home-basemap", help="OpenStreetMap tiles; needs internet")
    if cur is None:
        _open_home_choice()
        cur = state.scene()
    if st.session_state.get("home-error"):
        st.error(st.session_state.pop("home-error"))
    with st.expander(f"{len(opts)} sample scenes"):
        counts: dict[str, dict[str, int]] = {}
        for op in opts:
            counts.setdefault(op.dataset, {}).setdefault(op.split, 0)
            counts[op.dataset][op.split] += 1
        st.dataframe(
            [
                {
                    "dataset": d,
                    **c,
                    "about": catalog.dataset_info(d).title if d in catalog.DATASETS else "mosaicked sample areas",
                }
                for d, c in counts.items()
            ],
            hide_index=True,
            width="stretch",
        )
    if cur is None:
        return
    st.caption(
        f"**{cur.name}** · {cur.width:,} × {cur.height:,} px · {cur.count} bands · CRS "
        f"{cur.crs.to_string() if cur.crs else 'none (not georeferenced)'}"
        + (f" · GSD {cur.gsd:.2f} m" if cur.gsd else "")
    )
    if cur.georeferenced:
        from rsviz.app.layers import scene_layers

        m = scene_map(cur, scene_layers(cur), base_url=state.base_url(), basemap=basemap, draw=False, height=560)
        st_folium(m, height=560, use_container_width=True, returned_objects=[], key=f"home-map-{cur.key}")


def render_attribution() -> None:
    """Data attribution footer."""
    with st.expander("Data sources and attribution"):
        for n in catalog.list_datasets():
            i = catalog.dataset_info(n)
            st.markdown(f"- **{n}** — {i.title}. {i.attribution}. Licence: {i.licence}.")
