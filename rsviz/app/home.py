"""Widgets of the landing page."""

from __future__ import annotations

import streamlit as st

from rsviz.app.mapview import assets_installed
from rsviz.app.scenes import find_scene, scene_map, scene_options
from rsviz.data import catalog
from rsviz.datasets import Sample
from rsviz.errors import RsvizError
from rsviz.evaluation import fmt, metric_label, task_spec


def device_label() -> str:
    """``"CUDA: <GPU name>"``, ``"Apple MPS"`` or ``"CPU (<n> threads)"`` (:func:`rsviz.models.api.device_label`)."""
    from rsviz.models.api import device_label as label

    return label("auto")


def render_intro() -> None:
    """What rsviz is, the device in use, bundled models and data status."""
    from rsviz.models.api import get_model_card, list_models

    st.caption("Browse imagery, draw an extent, run a bundled model and compare it with ground truth.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Device", device_label())
    c2.metric("Bundled models", len(list_models()))
    c3.metric("Sample datasets", len(catalog.list_datasets()))
    if not assets_installed():
        st.warning("Leaflet assets are not installed, so the map cannot render offline: run `npm ci --prefix static`.")
    names = list_models()
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


@st.cache_data(show_spinner=False)
def scene_option_list(data_dir: str):
    """Scene options of the data cache at ``data_dir`` (the argument keys the Streamlit cache)."""
    return scene_options()


@st.cache_data(show_spinner="Loading scene…", max_entries=16)
def _load_sample(data_dir: str, dataset: str, scene_id: str) -> Sample:
    return find_scene(dataset, scene_id).load()


def load_sample(dataset: str, scene_id: str) -> Sample:
    """Load (and cache) one sample scene from the current data cache."""
    return _load_sample(str(catalog.data_dir()), dataset, scene_id)


def scene_picker() -> tuple[Sample, dict] | None:
    """Scene selector and map options; returns the loaded sample and map options."""
    opts, problems = scene_option_list(str(catalog.data_dir()))
    for p in problems:
        st.info(p)
    if not opts:
        st.error(
            f"No sample data found in {catalog.data_dir()}. Run `python -m rsviz data fetch` "
            f"or set {catalog.ENV_VAR} to a folder with the sample data."
        )
        return None
    labels = [o.label for o in opts]
    default = next((i for i, o in enumerate(opts) if o.split == "test"), 0)
    c1, c2, c3, c4 = st.columns([4, 1, 1, 2])
    choice = c1.selectbox("Sample scene", labels, index=default, key="home-scene")
    show_gt = c2.toggle("Ground truth", value=True, key="home-gt")
    basemap = c3.toggle("Basemap", value=False, key="home-basemap", help="OpenStreetMap tiles; needs internet")
    opacity = c4.slider("Ground-truth opacity", 0.0, 1.0, 0.5, 0.05, key="home-opacity")
    with st.expander(f"{len(opts)} sample scenes"):
        counts: dict[str, dict[str, int]] = {}
        for op in opts:
            counts.setdefault(op.dataset, {}).setdefault(op.split, 0)
            counts[op.dataset][op.split] += 1
        st.dataframe(
            [{"dataset": d, **c, "about": catalog.dataset_info(d).title} for d, c in counts.items()],
            hide_index=True,
            width="stretch",
        )
    o = opts[labels.index(choice)]
    try:
        sample = load_sample(o.dataset, o.id)
    except RsvizError as exc:
        st.error(str(exc))
        return None
    gsd = sample.gsd
    crs = sample.crs or "none (not georeferenced)"
    st.caption(
        f"{sample.shape[1]} × {sample.shape[0]} px · {sample.image.shape[0]} bands · CRS {crs}"
        + (f" · GSD {gsd:.2f} m" if gsd else "")
    )
    return sample, {"show_gt": show_gt, "basemap": basemap, "gt_opacity": opacity}


def landing_map(sample: Sample, show_gt: bool, basemap: bool, gt_opacity: float):
    """Folium map of the sample (imagery overlay, ground truth toggle, draw tool)."""
    return scene_map(sample, show_gt=show_gt, basemap=basemap, gt_opacity=gt_opacity)


def render_attribution() -> None:
    """Data attribution footer."""
    with st.expander("Data sources and attribution"):
        for n in catalog.list_datasets():
            i = catalog.dataset_info(n)
            st.markdown(f"- **{n}** — {i.title}. {i.attribution}. Licence: {i.licence}.")
