"""The Sentinel-2 page: open an L2A scene, run the BigEarthNet-19 models over an extent as a patch grid,
see a layer per label probability, the top label and the variants' disagreement, click a patch for its
labels, and score the grid against reference labels next to the majority baseline.

Everything heavy is in :mod:`rsviz.sentinel2`; imagery and result layers are tile layers of this app's
own tile route (:mod:`rsviz.app.routes`, rio-tiler), so they show offline. User mistakes (a path that is
no Sentinel-2 scene, a missing band, an extent outside the scene or too large) are ``st.error`` messages.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import streamlit as st

from rsviz.errors import RsvizError

#: Largest grid the page runs (patches; about a quarter of a 110 km L2A tile).
MAX_PATCHES = 2500
#: Largest grid whose patches get a hover tooltip on the map.
MAX_TOOLTIP_PATCHES = 1500
SAMPLE = "Sample: BigEarthNet patches placed on their own grid"
LOCAL = "Local path"
BASELINES = {"detect": "auto", "before 04.00 (no offset)": "02.00", "04.00 or later (offset -1000)": "04.00"}
LAYOUTS = {"stack": "stacked GeoTIFF (12 bands)", "folder": "per-band folder (10 / 20 / 60 m files)"}


def s2_models() -> list[str]:
    """Registered models with a BigEarthNet-style multi-label head (the S2 variants)."""
    from rsviz.app.views import usable_models
    from rsviz.models.api import get_model_card

    out = []
    for n in usable_models():
        c = get_model_card(n)
        h = c.heads.get("labels")
        if c.task == "scene" and h is not None and h.kind == "multilabel":
            out.append(n)
    return out


def _open_scene():
    """The scene the page's widgets name, or None (an error was shown)."""
    from rsviz.sentinel2 import open_s2

    src = st.radio("Scene", [SAMPLE, LOCAL], horizontal=True, key="s2-source")
    base = BASELINES[st.selectbox("L2A processing baseline", list(BASELINES), key="s2-baseline")]
    try:
        if src == SAMPLE:
            from rsviz.sentinel2.sample import bigearthnet_scene

            layout = st.radio("Layout", list(LAYOUTS.values()), key="s2-layout")
            with st.spinner("Assembling the sample scene (once)…"):
                sample = bigearthnet_scene()
            path = sample.stack if layout == LAYOUTS["stack"] else sample.folder
            st.session_state["s2-reference"] = sample.patches
        else:
            path = Path(
                st.text_input(
                    "Stacked GeoTIFF / COG, or folder of per-band JP2 / TIFF files (an L2A .SAFE, its IMG_DATA)",
                    key="s2-path",
                ).strip()
            )
            st.session_state.pop("s2-reference", None)
            if not str(path) or str(path) == ".":
                st.info("Give the path of a Sentinel-2 L2A scene on this machine.")
                return None
            from rsviz.workspace.scene import check_local_path

            check_local_path(str(path))
        return open_s2(path, baseline=base)
    except (RsvizError, OSError, ValueError) as exc:
        st.error(str(exc))
        return None


def _restore_run() -> None:
    """Once per session: reopen the run the URL names (a reload, a link) by setting the page's widgets to its
    parameters; the patches are read back from the disk cache when the page runs (:func:`_pending_run`)."""
    from rsviz.errors import UnknownNameError
    from rsviz.sentinel2.runs import QUERY_KEY, load_run

    if st.session_state.get("s2-restored"):
        return
    st.session_state["s2-restored"] = True
    key = st.query_params.get(QUERY_KEY)
    if not key or st.session_state.get("s2-run"):
        return
    try:
        run = load_run(key)
    except UnknownNameError as exc:
        st.warning(f"The link's Sentinel-2 run could not be reopened: {exc}")
        return
    models = [m for m in run.models if m in s2_models()]
    st.session_state.update(
        {
            "s2-source": SAMPLE if run.source == "sample" else LOCAL,
            "s2-layout": LAYOUTS.get(run.layout, LAYOUTS["stack"]),
            "s2-path": run.path,
            "s2-baseline": run.baseline if run.baseline in BASELINES else "detect",
            "s2-models": models,
            "s2-extent": run.bounds,
            "s2-pending": run,
        }
    )


def _keep_run(scene, models, preds) -> None:
    """The session's run: what the page shows until the scene, its scaling or the variants change."""
    st.session_state["s2-run"] = {
        "scene": str(scene.path),
        "scaling": scene.scaling,
        "models": tuple(models),
        "preds": list(preds.values()),
    }


def _save_run(scene, models, bounds) -> None:
    """Keep the run's parameters in the workspace and its key in the URL (see :mod:`rsviz.sentinel2.runs`)."""
    from rsviz.sentinel2.runs import QUERY_KEY, S2Run, save_run

    sample = st.session_state.get("s2-source") == SAMPLE
    layout = next((k for k, v in LAYOUTS.items() if v == st.session_state.get("s2-layout")), "stack")
    run = S2Run(
        "sample" if sample else "local",
        layout,
        "" if sample else str(scene.path),
        str(st.session_state.get("s2-baseline", "detect")),
        tuple(models),
        tuple(float(v) for v in bounds) if bounds is not None else None,
    )
    st.query_params[QUERY_KEY] = save_run(run)


def _run_key(scene, models, bounds) -> str:
    return hashlib.sha256(repr((str(scene.path), scene.scaling, tuple(models), bounds)).encode()).hexdigest()[:16]


def _layers(scene, preds, labels, composite, threshold=0.5):
    """Map layers: imagery, then per model the chosen labels' probabilities and the top label, then disagreement."""
    from rsviz.app.layers import CLASS_ALPHA, MapLayer
    from rsviz.models.api import get_model_card
    from rsviz.resources import cache_dir
    from rsviz.sentinel2.export import map_rasters
    from rsviz.tiles import REGISTRY, Layer, LayerKind

    img = Layer(
        LayerKind.IMAGERY,
        scene.path,
        bands=scene.rgb_indexes(composite),
        rescale=_display_range(str(scene.path), scene, composite),
        nodata=scene.nodata,
    )
    out = [MapLayer(f"imagery ({composite} colour)", REGISTRY.register(img), LayerKind.IMAGERY)]
    if not preds:
        return out
    h = hashlib.sha256(repr(threshold).encode())
    for p in preds:
        h.update(repr((p.model, p.window, str(p.transform))).encode())
        h.update(p.probs.tobytes())
    files = map_rasters(
        preds, cache_dir() / "sentinel2" / "layers" / h.hexdigest()[:16], threshold=threshold, reuse=True
    )
    for i, p in enumerate(preds):
        classes = tuple(get_model_card(p.model).classes)
        for lab in labels:
            b = p.labels.index(lab) + 1
            lyr = Layer(LayerKind.CONTINUOUS, files[f"probs:{p.model}"], bands=(b,), rescale=((0.0, 250.0),))
            out.append(
                MapLayer(f"{p.model}: P({lab})", REGISTRY.register(lyr), LayerKind.CONTINUOUS, 0.8, i == 0, True)
            )
        cm = tuple((c.id, (*c.color, CLASS_ALPHA)) for c in classes)
        lyr = Layer(LayerKind.CLASSES, files[f"top:{p.model}"], colormap=cm)
        out.append(
            MapLayer(f"{p.model}: top label", REGISTRY.register(lyr), LayerKind.CLASSES, 0.8, False, True, classes)
        )
    if "disagreement" in files:
        lyr = Layer(LayerKind.CONTINUOUS, files["disagreement"], rescale=((0.0, 6.0),), cmap="magma")
        out.append(MapLayer("disagreement (disputed labels)", REGISTRY.register(lyr), LayerKind.CONTINUOUS, 0.8, False))
    return out


@st.cache_data(show_spinner=False, max_entries=16)
def _display_range(path: str, _scene, composite: str) -> tuple[tuple[float, float], ...]:
    """The composite's stretch (DN), once per scene file (``path``) and composite."""
    return _scene.display_range(composite)


def _tooltip_grid(m, preds, threshold) -> None:
    import folium

    from rsviz.sentinel2.export import grid_geojson

    gj = grid_geojson(preds[0], threshold)
    for f in gj["features"]:
        pr = f["properties"]
        lines = [f"patch ({pr['row']}, {pr['col']})"]
        for p in preds:
            labs = p.labels_at(pr["row"], pr["col"], threshold)
            lines.append(f"{p.model}: " + (", ".join(f"{lab} {v:.2f}" for lab, v in labs) or "no label ≥ threshold"))
        pr["summary"] = "<br>".join(lines)
        del pr["probabilities"]
    folium.GeoJson(
        gj,
        name="patch grid (hover)",
        style_function=lambda f: {"color": "#ffffff", "weight": 0.6, "fill": True, "fillOpacity": 0.0},
        tooltip=folium.GeoJsonTooltip(fields=["summary"], labels=False),
    ).add_to(m)


def _map(st_folium, scene, layers, preds, threshold, extent):
    import folium

    from rsviz.app import state
    from rsviz.app.layers import max_zoom
    from rsviz.app.mapview import add_rectangle, add_tile_layer, drawn_bounds, fit_bounds, make_map, view_of

    zooms = [max_zoom(lyr) for lyr in layers]
    top = max(z[1] for z in zooms)
    center, zoom = view_of(extent or scene.bounds_4326)
    m = make_map(center, min(zoom, top), basemap=False, draw=True, height=520, max_zoom=top, base_url=state.base_url())
    for lyr, (native, _mz) in zip(layers, zooms, strict=True):
        add_tile_layer(m, lyr, state.base_url(), bounds=scene.bounds_4326, max_zoom=top, max_native_zoom=native)
    if preds and preds[0].predicted.sum() <= MAX_TOOLTIP_PATCHES:
        _tooltip_grid(m, preds, threshold)
    for rp in st.session_state.get("s2-reference") or ():
        from rsviz.geo import WGS84, reproject_bounds

        add_rectangle(m, reproject_bounds(rp.bounds, rp.crs, WGS84), f"reference {rp.id}", "#00e5ff")
    if extent is not None:
        add_rectangle(m, extent)
    folium.LayerControl(collapsed=False).add_to(m)
    fit_bounds(m, extent or scene.bounds_4326)
    res = st_folium(
        m,
        height=520,
        use_container_width=True,
        returned_objects=["last_active_drawing", "all_drawings", "last_clicked"],
        key=f"s2-map-{hashlib.sha256(str(scene.path).encode()).hexdigest()[:8]}",
    )
    b = drawn_bounds(res)
    if b is not None and b != st.session_state.get("s2-last-drawing"):
        st.session_state["s2-last-drawing"] = b
        st.session_state["s2-extent"] = b
        st.rerun()
    return (res or {}).get("last_clicked") if isinstance(res, dict) else None


def _clicked(preds, click, threshold) -> None:
    if not preds or not click or "lat" not in click:
        return
    cell = preds[0].cell_of(float(click["lng"]), float(click["lat"]))
    if cell is None:
        return
    r, c = cell
    st.markdown(f"**Patch ({r}, {c})** · valid pixels {preds[0].valid_fraction[r, c]:.0%}")
    if not preds[0].predicted[r, c]:
        st.info("This patch was not predicted (nodata).")
        return
    rows = []
    for i, lab in enumerate(preds[0].labels):
        row: dict[str, object] = {"label": lab}
        for p in preds:
            row[p.model] = float(p.probs[r, c, i])
        rows.append(row)
    rows.sort(key=lambda x: -max(float(v) for k, v in x.items() if k != "label"))  # type: ignore[arg-type]
    cfg = {p.model: st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f") for p in preds}
    st.dataframe(rows, hide_index=True, width="stretch", column_config=cfg, key="s2-click-table")
    st.caption(
        f"Labels with probability ≥ {threshold:g}: "
        + " · ".join(f"{p.model}: {', '.join(lab for lab, _ in p.labels_at(r, c, threshold)) or 'none'}" for p in preds)
    )


def _side_by_side(scene, layers, extent) -> None:
    """The variants' top-label layers and their disagreement on linked maps (pan and zoom shared through
    ``leaflet.sync``, :func:`rsviz.app.compare_maps.linked_maps_html`), each over the composite."""
    from rsviz.app import state
    from rsviz.app.compare_maps import linked_maps_html

    maps = [lyr for lyr in layers if lyr.name.endswith(": top label") or lyr.name.startswith("disagreement")]
    if not maps:
        return
    st.caption("Variants side by side: top label of each, and where they disagree (pan and zoom are linked).")
    st.iframe(
        linked_maps_html(
            maps, layers[0], scene.bounds_4326, view=extent or scene.bounds_4326, base_url=state.base_url()
        ),
        height=330 * math.ceil(len(maps) / 2) + 10,
    )


def _scores(preds, threshold) -> None:
    from rsviz.evaluation.export import fmt
    from rsviz.sentinel2.scoring import reference_from_geojson, reference_from_patches, score, score_rows

    st.subheader("Scores against reference labels")
    ref_path = st.text_input(
        "Reference labels (optional): GeoJSON of patch polygons with a 'labels' list (e.g. an edited export)",
        key="s2-ref-path",
    ).strip()
    try:
        if ref_path:
            ref = reference_from_geojson(preds[0], ref_path)
            what = Path(ref_path).name
        elif st.session_state.get("s2-reference"):
            ref = reference_from_patches(preds[0], st.session_state["s2-reference"])
            what = "the BigEarthNet patches placed by their georeferencing"
        else:
            st.info("No reference labels for this scene: give a GeoJSON grid with label lists.")
            return
        results = [score(p, ref, threshold) for p in preds]
    except (RsvizError, OSError) as exc:
        st.error(str(exc))
        return
    table = [
        {
            "model": s.model,
            "patches": s.patches,
            "micro F1": fmt(s.micro_f1),
            "macro F1": fmt(s.macro_f1),
            "mAP": fmt(s.map),
        }
        for s in [*(m for m, _ in results), results[0][1]]
    ]
    st.dataframe(table, hide_index=True, width="stretch", key="s2-scores")
    st.caption(
        f"Reference: {what}. Majority baseline: the 3 commonest training labels for every patch. "
        "Demo scale: the sample patches are from the models' training split."
    )
    with st.expander("Per-label scores"):
        for m, _ in results:
            st.markdown(f"**{m.model}**")
            st.dataframe(score_rows(m), hide_index=True, width="stretch")


def _downloads(preds, threshold) -> None:
    import json
    import tempfile

    from rsviz.sentinel2.export import grid_geojson, write_geotiff

    def tif(p) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            return write_geotiff(p, Path(d) / "probs.tif").read_bytes()

    cols = st.columns(len(preds))
    for col, p in zip(cols, preds):
        col.download_button(
            f"{p.model}: GeoTIFF (band per label)",
            lambda p=p: tif(p),
            f"{p.model}-labels.tif",
            "image/tiff",
            key=f"s2-dl-tif-{p.model}",
        )
        col.download_button(
            f"{p.model}: GeoJSON grid",
            lambda p=p: json.dumps(grid_geojson(p, threshold)),
            f"{p.model}-grid.geojson",
            "application/geo+json",
            key=f"s2-dl-json-{p.model}",
        )


def render_sentinel2(st_folium) -> None:
    """The page body (see module docstring); ``st_folium`` is passed in by the page script."""
    from rsviz.app.views import prelude
    from rsviz.datasets.bigearthnet import LABELS_19
    from rsviz.sentinel2 import predict_variants

    prelude()
    _restore_run()
    st.title("Sentinel-2: BigEarthNet-19 label maps")
    scene = _open_scene()
    if scene is None:
        return
    st.caption(
        f"**{scene.source.name}** · {scene.layout} · {scene.width:,} × {scene.height:,} px at {scene.gsd:g} m · "
        f"{scene.crs.to_string()} · bands {', '.join(scene.bands)}"
        + (" (assumed from the count: L2A order)" if scene.bands_assumed else "")
        + f" · {scene.scaling.describe()}"
    )
    models = s2_models()
    if not models:
        st.info("No Sentinel-2 multi-label model is registered.")
        return
    c1, c2, c3 = st.columns([3, 1, 1])
    default = ["s2-resize"] if "s2-resize" in models else models[:1]
    if "s2-models" not in st.session_state:  # a reopened run set it (a default as well would be refused)
        st.session_state["s2-models"] = default
    chosen = c1.multiselect("Variants", models, key="s2-models")
    threshold = c2.slider("Threshold", 0.05, 0.95, 0.5, 0.05, key="s2-threshold")
    composite = c3.radio(
        "Composite",
        ["true", "false"],
        horizontal=True,
        key="s2-composite",
        help="true colour B04/B03/B02, false colour B08/B04/B03; 2–98 % stretch",
    )
    pending = st.session_state.pop("s2-pending", None)
    if pending is not None and tuple(chosen) == tuple(pending.models):
        try:  # the reopened run's patches come back from the disk cache
            with st.spinner("Reopening the run…"):
                res = predict_variants(scene, chosen, bounds=pending.bounds, max_patches=MAX_PATCHES, cache=True)
        except (RsvizError, OSError) as exc:
            st.error(f"The run of the link could not be reopened: {exc}")
        else:
            _keep_run(scene, chosen, res)
    run = st.session_state.get("s2-run")
    same = run and (run["scene"], run["scaling"], run["models"]) == (str(scene.path), scene.scaling, tuple(chosen))
    preds = run["preds"] if same else []
    shown = (
        st.multiselect("Probability layers", list(LABELS_19), default=_default_labels(preds), key="s2-labels")
        if preds
        else []
    )
    extent = st.session_state.get("s2-extent")
    if st.button("Use the whole scene", key="s2-whole"):
        st.session_state["s2-extent"] = extent = None
    try:
        layers = _layers(scene, preds, shown, composite, threshold)
        click = _map(st_folium, scene, layers, preds, threshold, extent)
    except (RsvizError, OSError) as exc:
        st.error(str(exc))
        return
    if st.button("Run over the extent", key="s2-run-go", type="primary", disabled=not chosen):
        bar = st.progress(0.0, text="Predicting patches…")
        try:
            res = predict_variants(
                scene,
                chosen,
                bounds=extent,
                max_patches=MAX_PATCHES,
                cache=True,
                progress=lambda d, t: bar.progress(d / max(t, 1), text=f"patch rows {d}/{t}"),
            )
        except (RsvizError, OSError) as exc:
            bar.empty()
            st.error(str(exc))
            return
        bar.empty()
        _keep_run(scene, chosen, res)
        _save_run(scene, chosen, extent)
        st.rerun()
    if not preds:
        st.info("Draw a rectangle on the map (or use the whole scene), pick the variants and run.")
        return
    p0 = preds[0]
    st.success(
        f"{p0.shape[0]} × {p0.shape[1]} patches of 1.2 km · {int(p0.predicted.sum())} predicted "
        f"(the rest nodata) · {', '.join(p.model for p in preds)}"
    )
    _clicked(preds, click, threshold)
    _side_by_side(scene, layers, extent)
    _scores(preds, threshold)
    _downloads(preds, threshold)


def _default_labels(preds) -> list[str]:
    if not preds:
        return []
    p = preds[0]
    ok = p.predicted
    if not ok.any():
        return []
    mean = np.nanmean(p.probs[ok], axis=0)
    return [p.labels[i] for i in np.argsort(-mean)[:2] if not math.isnan(mean[i])]
