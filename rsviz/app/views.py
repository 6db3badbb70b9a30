"""Page bodies of the dashboard. Each ``render_*`` is called by a thin script in ``pages/``.

User mistakes (unreadable upload, wrong band count, no CRS, extent outside the raster,
ground truth on another grid) surface as ``st.error`` with the library's message; the
scene, extent and runs already made stay in the session.
"""

from __future__ import annotations

import json
import math

import numpy as np
import streamlit as st

from rsviz.app import state
from rsviz.app.workspace import (
    RUN_CACHE,
    RunOptions,
    crop,
    evaluate_run,
    extent_area_m2,
    resolve_extent,
    run_model,
    scene_from_path,
    scene_from_sample,
    scene_from_upload,
    target_for,
)
from rsviz.display import PanelKind
from rsviz.errors import RsvizError
from rsviz.evaluation.export import fmt

# --------------------------------------------------------------------------- Map


def render_map(st_folium) -> None:
    """Scene picker (samples, upload, local path), map with overlays, extent drawing."""
    from rsviz.app.home import load_sample, scene_option_list
    from rsviz.app.mapview import drawn_bounds, legend_html

    st.title("Map")
    src = st.radio("Scene source", ["Sample data", "Upload", "Local path"], horizontal=True, key="map-source")
    if src == "Sample data":
        from rsviz.data import catalog

        opts, problems = scene_option_list(str(catalog.data_dir()))
        for p in problems:
            st.info(p)
        if opts:
            labels = [o.label for o in opts]
            cur = state.scene()
            default = next(
                (i for i, o in enumerate(opts) if cur is not None and cur.key == f"{o.dataset}/{o.id}"),
                next((i for i, o in enumerate(opts) if o.split == "test"), 0),
            )
            choice = st.selectbox("Sample scene", labels, index=default, key="map-scene")
            o = opts[labels.index(choice)]
            try:
                state.set_scene(scene_from_sample(load_sample(o.dataset, o.id)))
            except RsvizError as exc:
                st.error(str(exc))
    elif src == "Upload":
        with st.form("upload"):
            img = st.file_uploader("Image (GeoTIFF / COG / PNG / JPEG)", type=["tif", "tiff", "png", "jpg", "jpeg"])
            gt = st.file_uploader(
                "Ground truth (optional): raster on the same grid, or building GeoJSON",
                type=["tif", "tiff", "png", "geojson", "json"],
            )
            ok = st.form_submit_button("Open")
        if ok and img is not None:
            try:
                state.set_scene(
                    scene_from_upload(img.name, img.getvalue(), gt.name if gt else None, gt.getvalue() if gt else None)
                )
            except RsvizError as exc:
                st.error(str(exc))
    else:
        path = st.text_input("Raster path on this machine", key="map-path")
        if st.button("Open", key="map-open-path") and path:
            try:
                state.set_scene(scene_from_path(path))
            except (RsvizError, OSError) as exc:
                st.error(str(exc))
    scene = state.scene()
    if scene is None:
        return
    s = scene.sample
    c1, c2, c3, c4 = st.columns([1, 1, 2, 2])
    show_gt = c1.toggle("Ground truth", True, key="map-gt", disabled=not s.targets)
    basemap = c2.toggle("Basemap", False, key="map-basemap", help="OpenStreetMap tiles (needs internet)")
    img_op = c3.slider("Imagery opacity", 0.0, 1.0, 1.0, 0.05, key="map-img-op")
    gt_op = c4.slider("Ground-truth opacity", 0.0, 1.0, 0.5, 0.05, key="map-gt-op")
    left, right = st.columns([4, 1])
    with right:
        if s.classes:
            st.markdown(legend_html(s.classes, "Legend"), unsafe_allow_html=True)
        if st.button("Use the whole scene", key="map-whole"):
            state.set_bounds(None)
    with left:
        if scene.georeferenced:
            from rsviz.app.scenes import scene_map

            m = scene_map(
                s,
                show_gt=show_gt,
                basemap=basemap,
                gt_opacity=gt_op,
                image_opacity=img_op,
                extent=state.bounds(),
                height=560,
            )
            res = st_folium(
                m,
                height=560,
                use_container_width=True,
                returned_objects=["last_active_drawing", "all_drawings"],
                key=f"map-{scene.key}",
            )
            b = drawn_bounds(res)
            if b is not None and b != state.bounds():
                state.set_bounds(b)
        else:
            from rsviz.display import to_rgb8

            st.image(
                to_rgb8(s.image, valid=s.valid),
                caption="not georeferenced: the extent is the whole image",
                width="stretch",
            )
    try:
        ext = resolve_extent(scene, state.bounds())
    except RsvizError as exc:
        st.error(f"{exc}. The extent was reset to the whole scene.")
        state.set_bounds(None)
        ext = resolve_extent(scene, None)
    area = extent_area_m2(scene, ext)
    from rsviz.app.workspace import MAX_EXTENT_PX
    from rsviz.models.api import resolve_device

    dev = resolve_device("auto").type
    dev = dev if dev in MAX_EXTENT_PX else "cpu"
    if ext.pixels > MAX_EXTENT_PX[dev]:
        st.warning(
            f"This extent ({ext.pixels / 1e6:.1f} MPx) is larger than the {MAX_EXTENT_PX[dev] / 1e6:.0f} MPx the app "
            f"runs on {dev.upper()}: draw a smaller rectangle, or use `python -m rsviz predict --bounds` on the file."
        )
    st.success(
        f"Extent: {int(ext.window.width)} × {int(ext.window.height)} px = {ext.pixels / 1e6:.2f} MPx"
        + (f" · {area:,.0f} m²" if area else "")
        + ("" if state.bounds() else " (whole scene)")
        + " — go to **Run** to predict it."
    )
    w = ext.window
    st.caption(
        f"window (col, row, width, height) = ({int(w.col_off)}, {int(w.row_off)}, {int(w.width)}, {int(w.height)})"
        + (" · bounds EPSG:4326 = (" + ", ".join(f"{v:.8f}" for v in ext.bounds) + ")" if ext.bounds else "")
    )


# --------------------------------------------------------------------------- Run


def render_run() -> None:
    """Model choice, options, progress with tiles and time left, cancel, cached results."""
    import time

    from rsviz.models.api import get_model_card, list_models

    st.title("Run")
    scene = state.need_scene()
    if scene is None:
        return
    names = list_models()
    if not names:
        st.error("No models are registered: the weights/ folder is empty.")
        return
    try:
        ext = resolve_extent(scene, state.bounds())
    except RsvizError as exc:
        st.error(str(exc))
        return
    st.caption(f"Scene **{scene.name}** · extent {int(ext.window.width)} × {int(ext.window.height)} px")
    bands = scene.sample.image.shape[0]
    fitting = [
        n for n in names if get_model_card(n).in_channels == bands and get_model_card(n).task != "scene"
    ] or names
    default = [n for n in fitting if get_model_card(n).task == scene.task][:1] or fitting[:1]
    chosen = st.multiselect("Models (one or two)", names, default=default, max_selections=2, key="run-models")
    c1, c2, c3, c4 = st.columns(4)
    tile = c1.selectbox("Tile (px)", [256, 384, 512, 768, 1024], index=2, key="run-tile")
    overlap = c2.slider("Overlap", 0.0, 0.75, 0.25, 0.05, key="run-overlap")
    recommended = any(get_model_card(n).input.tta for n in chosen)  # the card measured its metrics this way
    tta = c3.toggle(
        "Test-time augmentation",
        recommended,
        key="run-tta",
        help="average over flips and rotations (8x the compute); on by default where a chosen model's "
        "card recommends it",
    )
    from rsviz.models.api import available_devices

    devs = ["auto", *available_devices()[::-1]]
    device = c4.selectbox("Device", devs, key="run-device")
    opts = RunOptions(tile=int(tile), overlap=float(overlap), tta=bool(tta), device=device)
    go = st.button("Run", type="primary", key="run-go", disabled=not chosen)
    if st.session_state.get("run-cancel"):
        st.warning("Run cancelled; finished models are kept, nothing else changed.")
    st.caption(
        "Finished runs are cached by model, scene, extent and options: running the same choice again is instant."
    )
    if go:
        st.button("Cancel", key="run-cancel", help="stop the run in progress")
        for name in chosen:
            bar = st.progress(0.0, text=f"{name}: starting…")
            t0 = time.perf_counter()

            def progress(done: int, total: int, name=name, bar=bar, t0=t0) -> None:
                el = time.perf_counter() - t0
                left = el / done * (total - done) if done else float("nan")
                bar.progress(
                    done / total, text=f"{name}: {done}/{total} tiles · {el:.1f} s elapsed · ~{left:.1f} s left"
                )

            try:
                res, cached = run_model(name, scene, ext, opts, progress=progress)
            except RsvizError as exc:
                bar.empty()
                st.error(f"{name}: {exc}")
                continue
            bar.progress(1.0, text=f"{name}: {'cached result' if cached else f'done in {res.seconds:.1f} s'}")
            state.add_run(res)
    runs = state.runs_for(ext)
    if runs:
        st.subheader("Runs on this extent")
        st.dataframe(
            [
                {
                    "model": r.model,
                    "seconds": round(r.seconds, 2),
                    "tile": r.options.tile,
                    "overlap": r.options.overlap,
                    "TTA": r.options.tta,
                    "device": r.prediction.options["device"],
                    "MPx/s": round(r.prediction.stats["mpx_per_s"], 3),
                }
                for r in runs
            ],
            hide_index=True,
        )
        st.success("Open **Compare** or **Metrics** to inspect the results.")
    st.caption(f"{len(RUN_CACHE)} results cached in this app process.")


# --------------------------------------------------------------------------- Compare


def _pick_runs(key: str):
    scene = state.need_scene()
    if scene is None:
        return None, None, []
    try:
        ext = resolve_extent(scene, state.bounds())
    except RsvizError as exc:
        st.error(str(exc))
        return scene, None, []
    runs = state.runs_for(ext)
    if not runs:
        st.info("No run on this extent yet: go to **Run**.")
    return scene, ext, runs


def _choose_run(key: str):
    """Pick one run of the current extent: ``(scene, extent, run, card)`` or None (with a hint shown)."""
    from rsviz.models.api import get_model_card

    scene, ext, runs = _pick_runs(key)
    if not runs:
        return None
    names = [r.model for r in runs]
    name = st.selectbox("Run", names, index=len(names) - 1, key=f"{key}-run")
    r = runs[names.index(name)]
    return scene, ext, r, get_model_card(r.model)


def render_compare() -> None:
    """Side-by-side panels per run, a swipe view of prediction vs ground truth."""
    from rsviz.app.panels import panels_for, swipe
    from rsviz.models.api import get_model_card

    st.title("Compare")
    scene, ext, runs = _pick_runs("compare")
    if not runs:
        return
    sub = crop(scene, ext)
    shown = runs[-2:]
    all_panels = []
    for r in shown:
        card = get_model_card(r.model)
        task, _ = target_for(scene, card)
        all_panels.append((r, panels_for(sub, r.prediction.heads, card, task)))
    from rsviz.app.mapview import legend_html

    for r, _ in all_panels:
        c = get_model_card(r.model)
        if c.classes:
            st.markdown(legend_html(c.classes, f"{r.model} classes"), unsafe_allow_html=True)
    if len(all_panels) == 1:
        r, panels = all_panels[0]
        st.subheader(r.model)
        for i in range(0, len(panels), 3):
            for col, p in zip(st.columns(3), panels[i : i + 3]):
                col.image(p.image, caption=p.caption, width="stretch")
    else:
        (ra, pa), (rb, pb) = all_panels
        da, db = {p.kind: p for p in pa}, {p.kind: p for p in pb}
        c1, c2 = st.columns(2)
        c1.subheader(ra.model)
        c2.subheader(rb.model)
        for kind in dict.fromkeys([p.kind for p in pa] + [p.kind for p in pb]):
            c1, c2 = st.columns(2)
            for col, d in ((c1, da), (c2, db)):
                if kind in d:
                    col.image(d[kind].image, caption=d[kind].caption, width="stretch")
    r, panels = all_panels[0]
    d = {p.kind: p.image for p in panels}
    if PanelKind.PREDICTION in d and PanelKind.GROUND_TRUTH in d:
        st.subheader("Swipe: prediction (left) vs ground truth (right)")
        f = st.slider("divider", 0.0, 1.0, 0.5, 0.01, key="compare-swipe")
        st.image(swipe(d[PanelKind.PREDICTION], d[PanelKind.GROUND_TRUTH], f), width="stretch")


# --------------------------------------------------------------------------- Metrics


def render_metrics(st_folium) -> None:
    """Metrics inside the extent: per-class table, OA, kappa, confusion matrix, BF, objects, APLS, heights."""
    from rsviz.app.panels import confusion_figure
    from rsviz.evaluation import metric_label, per_class_rows, task_spec

    st.title("Metrics")
    chosen = _choose_run("metrics")
    if chosen is None:
        return
    scene, ext, r, card = chosen
    res = _cached_eval(scene, r, card)
    if res is None:
        st.warning("This scene has no ground truth that fits this model's task, so no metrics can be computed.")
        return
    st.caption(
        f"Computed over the {int(ext.window.width)} × {int(ext.window.height)} px extent only "
        f"({_evaluated_pixels(res):,} evaluated pixels; nodata excluded)."
    )
    main = [k for k in task_spec(res.task).headline if k in res.values] + [
        k for k in ("precision", "recall", "overall_accuracy", "kappa", "bias") if k in res.values
    ]
    cols = st.columns(min(len(main), 6) or 1)
    for i, k in enumerate(main):
        label, help_ = metric_label(k)
        cols[i % len(cols)].metric(label, fmt(res[k]), help=help_ or None)
    st.session_state["rsviz.last_metrics"] = {"model": r.model, "values": dict(res.values)}
    if res.per_class:
        st.subheader("Per class")
        rows = per_class_rows(res)
        num = st.column_config.NumberColumn(format="%.3f")
        st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            column_config={k: num for k in ("IoU", "precision", "recall", "F1", "boundary F1")},
        )
        cm, nm = _class_confusion(res)
        c1, c2 = st.columns(2)
        c1.pyplot(confusion_figure(cm, nm, False))
        c2.pyplot(confusion_figure(cm, nm, True))
    with st.expander("All figures"):
        st.json(res.to_json()["values"])
    match = res.artifacts.match
    if match is not None and scene.georeferenced:
        st.subheader(f"Objects: {len(match.tp)} TP (green) · {len(match.fp)} FP (red) · {len(match.fn)} FN (blue)")
        st_folium(
            _objects_map(scene, ext, match),
            height=480,
            use_container_width=True,
            returned_objects=[],
            key=f"objects-{r.key}",
        )
    graphs = res.artifacts.graphs
    if graphs is not None:
        from rsviz.app.panels import road_graph_figure
        from rsviz.display import to_rgb8

        st.subheader("APLS road graphs: ground truth (green) · prediction (red) · bridged gaps (yellow)")
        st.caption(
            "Paths between control nodes are compared on these skeleton graphs; a break in the red graph "
            "cuts every path through it. The prediction's graph follows the model card's road_graph."
        )
        sub = crop(scene, ext)
        st.pyplot(road_graph_figure(to_rgb8(sub.image, valid=sub.valid), *graphs))


def _evaluated_pixels(res) -> int:
    if res.confusion is not None:
        return int(np.asarray(res.confusion).sum())
    return int(res.get("pixels") or 0)


def _class_confusion(res) -> tuple[np.ndarray, list[str]]:
    """The confusion matrix of the evaluated classes (ignore class left out) and their names."""
    ids = [c.id for c in res.per_class]
    return np.asarray(res.confusion)[np.ix_(ids, ids)], [c.name for c in res.per_class]


@st.cache_data(show_spinner="Computing metrics…", max_entries=32)
def _eval_cached(run_key: str, _scene, _run, _card):
    return evaluate_run(_scene, _run, _card)


def _cached_eval(scene, r, card):
    return _eval_cached(r.key, scene, r, card)


def _objects_map(scene, ext, match):
    import folium
    import shapely

    from rsviz.app.mapview import add_overlay, fit_bounds, make_map, rgb_to_rgba
    from rsviz.display import to_rgb8
    from rsviz.metrics.objects import match_to_geojson

    sub = crop(scene, ext)
    m = make_map(basemap=False, draw=False, height=480)
    b = add_overlay(m, rgb_to_rgba(to_rgb8(sub.image, valid=sub.valid), sub.valid), sub.transform, sub.crs, "imagery")
    t = sub.transform

    def to_crs(p):
        return shapely.affinity.affine_transform(p, [t.a, t.b, t.d, t.e, t.c, t.f])

    from rsviz.metrics.objects import ObjectMatch

    mm = ObjectMatch(
        [(to_crs(a), to_crs(g), v) for a, g, v in match.tp],
        [to_crs(p) for p in match.fp],
        [to_crs(g) for g in match.fn],
    )
    gj = match_to_geojson(mm, sub.crs)
    colours = {"tp": "#2ecc40", "fp": "#ff4136", "fn": "#0074d9"}
    folium.GeoJson(
        gj,
        name="objects",
        style_function=lambda f: {"color": colours[f["properties"]["kind"]], "weight": 2, "fillOpacity": 0.15},
        tooltip=folium.GeoJsonTooltip(fields=["kind"]),
    ).add_to(m)
    fit_bounds(m, b)
    return m


# --------------------------------------------------------------------------- Export


def render_export() -> None:
    """Downloads: prediction COG, polygons GeoJSON, eval.json / CSV, one-file HTML report."""
    import tempfile
    from pathlib import Path

    from rsviz.app.panels import confusion_figure, panels_for
    from rsviz.evaluation import eval_csv, to_eval_json
    from rsviz.report import extent_feature, html_report

    st.title("Export")
    chosen = _choose_run("export")
    if chosen is None:
        return
    scene, ext, r, card = chosen
    pred = r.prediction
    stem = f"{scene.sample.id}-{r.model}"
    st.caption(
        f"Everything below covers the {int(ext.window.width)} × {int(ext.window.height)} px extent of "
        f"**{scene.name}** predicted by **{r.model}**."
    )
    icon = ":material/download:"
    if scene.georeferenced:
        with tempfile.TemporaryDirectory() as d:
            from rsviz.inference.export import write_prediction_cog

            p = write_prediction_cog(pred, card, Path(d) / f"{stem}.tif")
            st.download_button(
                "Prediction (COG, class ids in band 1)",
                p.read_bytes(),
                f"{stem}.tif",
                "image/tiff",
                key="dl-cog",
                icon=icon,
                help="Cloud-optimised uint8 GeoTIFF on the scene's grid and CRS: class ids in band 1 (255 = "
                "nodata), then probabilities, entropy, edges and reconstruction x 255 as the "
                "model has them (band descriptions name each)",
            )
        from rsviz.evaluation.tasks import specs_for_card
        from rsviz.inference.export import prediction_polygons_geojson

        buildings = any(sp.vectors == "instances" for sp in specs_for_card(card)[:1])
        st.download_button(
            "Building footprints (GeoJSON, one polygon per building, EPSG:4326)"
            if buildings
            else "Predicted polygons (GeoJSON, EPSG:4326)",
            json.dumps(prediction_polygons_geojson(pred, card)),
            f"{stem}.geojson",
            "application/geo+json",
            key="dl-geojson",
            icon=icon,
            help="Touching buildings are split by the model card's instance post-processing; every "
            "feature has its ground area in m²"
            if buildings
            else "One polygon per connected region of each class, with its ground area in m²",
        )
    else:
        st.info("The scene is not georeferenced: the COG and GeoJSON exports need a CRS.")
    res = _cached_eval(scene, r, card)
    figs = []
    if res is not None:
        st.download_button(
            "eval.json",
            json.dumps(to_eval_json(res, meta={"model": r.model, "scene": scene.name, "extent": ext.key()}), indent=2),
            "eval.json",
            "application/json",
            key="dl-evaljson",
            icon=icon,
            help="Every figure of the Metrics page with the confusion matrix, machine-readable",
        )
        st.download_button(
            "Metrics CSV (per class)", eval_csv(res), f"{stem}-metrics.csv", "text/csv", key="dl-csv", icon=icon
        )
        if res.per_class:
            figs = [confusion_figure(*_class_confusion(res), True)]
    task, _ = target_for(scene, card)
    sub = crop(scene, ext)
    from rsviz.data import catalog

    attribution = (
        catalog.dataset_info(scene.sample.dataset).attribution if scene.sample.dataset in catalog.DATASETS else ""
    )
    html = html_report(
        title=f"rsviz QA report — {r.model}",
        scene_name=scene.name,
        extent_geojson=extent_feature(ext.bounds),
        panels=panels_for(sub, pred.heads, card, task),
        metrics=res,
        figures=figs,
        card=card.to_dict(),
        options=pred.options,
        attribution=attribution,
    )
    st.download_button(
        "HTML report (one file)",
        html,
        f"{stem}-report.html",
        "text/html",
        key="dl-html",
        icon=icon,
        help="Panels, metrics, confusion matrix, model card and run options in one self-contained page "
        "for stakeholders",
    )


# --------------------------------------------------------------------------- Scene classification


def render_scene_classification() -> None:
    """Sentinel-2 patch viewer: RGB composite, any band, label probabilities vs truth, metrics over the set."""
    from rsviz.data import catalog
    from rsviz.datasets import scenes
    from rsviz.datasets.bigearthnet import BANDS, LABELS_19
    from rsviz.display import colormap_rgba, to_rgb8
    from rsviz.errors import DataMissingError
    from rsviz.evaluation.export import multilabel_rows
    from rsviz.models.api import get_model_card, list_models

    st.title("Scene classification (Sentinel-2)")
    try:
        catalog.require("bigearthnet")
    except DataMissingError as exc:
        st.error(str(exc))
        return
    refs = scenes("bigearthnet")
    ids = [f"{r.id} ({r.split})" for r in refs]
    choice = st.selectbox("Patch", ids, key="s2-patch")
    s = refs[ids.index(choice)].load()
    c1, c2 = st.columns(2)
    c1.image(
        to_rgb8(s.image, bands=[2, 1, 0], valid=s.valid),
        caption="RGB composite (B04, B03, B02), 2-98 % stretch",
        width="stretch",
    )
    band = c2.selectbox("Band", list(BANDS), key="s2-band")
    c2.image(
        colormap_rgba(s.image[BANDS.index(band)].astype(np.float32), "gray")[..., :3],
        caption=f"{band}",
        width="stretch",
    )
    truth = [LABELS_19[i] for i in np.nonzero(s.extra["labels19"])[0]]
    st.markdown("**True labels (BigEarthNet-19):** " + ", ".join(truth))
    models = [n for n in list_models() if get_model_card(n).task == "scene"]
    if not models:
        st.info("No Sentinel-2 scene-classification model is bundled yet.")
        return
    from rsviz.inference.classify import classify_patch

    name = st.selectbox("Model", models, key="s2-model")
    probs = classify_patch(name, s)
    rows = sorted(
        ({"label": lab, "probability": float(p), "true": lab in truth} for lab, p in zip(LABELS_19, probs)),
        key=lambda x: -x["probability"],
    )
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={"probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)},
    )
    st.subheader("Per-label metrics over the held-out sample patches")
    res = _s2_set_metrics(name)
    c1, c2, c3 = st.columns(3)
    c1.metric("micro F1", fmt(res["micro_f1"]))
    c2.metric("macro F1", fmt(res["macro_f1"]))
    c3.metric("mAP", fmt(res["map"]))
    st.dataframe(
        [r for r in multilabel_rows(res) if r["support"] or not math.isnan(r["f1"])], hide_index=True, width="stretch"
    )
    st.caption(f"{res['patches']} test patches (demo scale: BigEarthNet samples shipped in PyPI packages).")


@st.cache_data(show_spinner="Scoring the sample patches…", max_entries=8)
def _s2_set_metrics(name: str):
    from rsviz.datasets.bigearthnet import patches_by_split
    from rsviz.evaluation import evaluate_patches
    from rsviz.models.api import load_model_cached

    return evaluate_patches(load_model_cached(name, "cpu"), patches_by_split()["test"])
