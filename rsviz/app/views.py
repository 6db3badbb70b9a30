"""Page bodies of the dashboard. Each ``render_*`` is called by a thin script in ``pages/``.

User mistakes (unreadable upload, wrong band count, no CRS, extent outside the raster,
ground truth on another grid) surface as ``st.error`` with the library's message; the
scene, extent and runs already made stay in the session, in the URL and in the workspace.
"""

from __future__ import annotations

import json
import math

import numpy as np
import streamlit as st

from rsviz.app import state
from rsviz.display import PanelKind
from rsviz.errors import RsvizError
from rsviz.evaluation.export import fmt
from rsviz.workspace import JOBS, JobState, RunOptions, Scene, extent_area_m2, resolve_extent

#: Extents up to this many pixels also get the static side-by-side panels (and the report's pictures).
PANEL_MAX_PX = 2048 * 2048
#: Largest extent whose predicted polygons the Export page builds (in memory).
VECTOR_MAX_PX = 16_000_000
#: Side of the preview of a scene without CRS (which cannot go on the map).
PREVIEW_SIDE = 1024


def usable_models() -> list[str]:
    """Registered models whose folders are sound; a warning names each broken one and why (the others stay usable)."""
    from rsviz.models.api import list_models, model_problem

    names = []
    for n in list_models():
        why = model_problem(n)
        if why is None:
            names.append(n)
        else:
            st.warning(f"Model {n} is left out: {why}")
    return names


def _target_task(scene: Scene, card) -> str:
    """The evaluation task a model is scored on against this scene's ground truth, ``none`` when nothing fits."""
    from rsviz.evaluation import target_spec

    spec = target_spec(card, scene.targets)
    return spec.task.value if spec is not None else "none"


# --------------------------------------------------------------------------- Map


def _open(opener, *args) -> None:
    """Open a scene (a widget callback): errors are kept for the page to show; the old scene stays open."""
    st.session_state.pop("map-error", None)
    try:
        with st.spinner("Opening the scene (large files without overviews get them once)…"):
            state.set_scene(opener(*args))
    except (RsvizError, OSError, KeyError, ValueError) as exc:
        st.session_state["map-error"] = str(exc)


def _open_option(label_key: str = "map-scene") -> None:
    from rsviz.app.home import open_option

    label = st.session_state.get(label_key)
    opts = st.session_state.get("map-options", {})
    if label in opts:
        _open(open_option, opts[label])


def _source_of(scene: Scene | None) -> str:
    kind = (scene.source.split(":", 1)[0] if scene is not None else "") or "sample"
    return {"path": "Local path", "upload": "Upload"}.get(kind, "Sample data")


def _sample_picker() -> None:
    from rsviz.app.home import open_option, scene_option_list
    from rsviz.app.scenes import option_index
    from rsviz.data import catalog

    opts, problems = scene_option_list(str(catalog.data_dir()))
    for p in problems:
        st.info(p)
    if not opts:
        return
    st.session_state["map-options"] = {o.label: o for o in opts}
    labels = [o.label for o in opts]
    cur = state.scene()
    default = option_index(opts, cur)
    if "map-scene" not in st.session_state or (cur is not None and cur.source in {o.source for o in opts}):
        st.session_state["map-scene"] = labels[default]
    st.selectbox("Sample scene", labels, key="map-scene", on_change=_open_option)
    if cur is None:  # first visit: open the default scene
        _open(open_option, opts[default])


def _upload_form() -> None:
    from rsviz.workspace import open_upload

    with st.form("upload"):
        img = st.file_uploader(
            "Image (GeoTIFF / COG / JPEG2000 / PNG / JPEG)",
            type=["tif", "tiff", "jp2", "png", "jpg", "jpeg", "vrt"],
            help="Files larger than the upload limit: use Local path, which reads the file where it is",
        )
        gt = st.file_uploader(
            "Ground truth (optional): raster on the same grid (class ids, 0/1 or 0/255 mask, heights; 255 = "
            "nodata), or GeoJSON of building footprints or of road centre lines",
            type=["tif", "tiff", "png", "geojson", "json"],
        )
        ok = st.form_submit_button("Open")
    if ok and img is not None:
        _open(open_upload, img.name, img, gt.name if gt else None, gt)


def _path_form() -> None:
    from rsviz.workspace import open_path

    c1, c2 = st.columns(2)
    path = c1.text_input("Raster path on this machine (GeoTIFF, COG, VRT, JPEG2000…)", key="map-path")
    gt = c2.text_input(
        "Ground truth path (optional: raster on the same grid, or GeoJSON of footprints or road lines)",
        key="map-gt-path",
    )
    if st.button("Open", key="map-open-path") and path:
        from rsviz.workspace.scene import check_local_path

        try:
            for p in (path, gt):
                if p.strip():
                    check_local_path(p.strip())
        except RsvizError as exc:
            st.session_state["map-error"] = str(exc)
            return
        bar = st.progress(0.0, text="Opening…")

        def progress(done: int, total: int) -> None:
            bar.progress(
                done / max(total, 1), text=f"Preparing the scene in the workspace (once): {done}/{total} blocks"
            )

        _open(lambda p, g: open_path(p, g, progress=progress), path.strip(), gt.strip() or None)
        bar.empty()


def _layers(scene: Scene, runs) -> list:
    from rsviz.app.layers import run_layers, scene_layers

    out = scene_layers(scene)
    for r in runs:
        try:
            out += run_layers(scene, r, r.card)
        except (RsvizError, OSError) as exc:  # e.g. the run's files were removed from the workspace
            st.warning(f"{r.model}: its layers cannot be shown ({exc}); run it again")
    return out


def render_map(st_folium) -> None:
    """Scene picker (samples, local path, upload), map of tile layers, extent drawing."""
    prelude()
    from rsviz.app.mapview import drawn_bounds, legend_html

    st.title("Map")
    if "map-source" not in st.session_state:
        st.session_state["map-source"] = _source_of(state.scene())
    src = st.radio("Scene source", ["Sample data", "Local path", "Upload"], horizontal=True, key="map-source")
    if src == "Sample data":
        _sample_picker()
    elif src == "Upload":
        _upload_form()
    else:
        _path_form()
    if st.session_state.get("map-error"):
        st.error(st.session_state["map-error"])
    scene = state.scene()
    if scene is None:
        return
    st.caption(
        f"**{scene.name}** · {scene.width:,} × {scene.height:,} px · {scene.count} band(s) {scene.dtype} · "
        f"CRS {scene.crs.to_string() if scene.crs else 'none (not georeferenced)'}"
        + (f" · GSD {scene.gsd:.2f} m" if scene.gsd else "")
        + (f" · ground truth: {', '.join(sorted(scene.targets))}" if scene.targets else " · no ground truth")
    )
    c1, c2, c3 = st.columns([1, 2, 2])
    basemap = c1.toggle("Basemap", False, key="map-basemap", help="OpenStreetMap tiles (needs internet)")
    img_op = c2.slider("Imagery opacity", 0.0, 1.0, 1.0, 0.05, key="map-img-op")
    ov_op = c3.slider("Overlay opacity", 0.0, 1.0, 0.8, 0.05, key="map-gt-op")
    left, right = st.columns([4, 1])
    with right:
        if scene.classes:
            st.markdown(legend_html(scene.classes, "Legend"), unsafe_allow_html=True)
        if scene.splits is not None:
            st.caption("Dashed outlines: train (orange), val (purple), test (green) areas of the dataset.")
        if st.button("Use the whole scene", key="map-whole"):
            state.set_bounds(None)
    with left:
        if scene.georeferenced:
            from rsviz.app.scenes import scene_map

            try:
                layers = _layers(scene, state.runs())
            except RsvizError as exc:
                st.error(str(exc))
                return
            m = scene_map(
                scene,
                layers,
                base_url=state.base_url(),
                basemap=basemap,
                extent=state.bounds(),
                height=560,
                opacity={lyr.name: (img_op if lyr.name == "imagery" else ov_op) for lyr in layers},
            )
            res = st_folium(
                m,
                height=560,
                use_container_width=True,
                returned_objects=["last_active_drawing", "all_drawings"],
                key=f"map-{scene.key}",
            )
            b = drawn_bounds(res)
            # st_folium keeps returning the last drawing: act on a new one only ("whole scene" stays cleared)
            if b is not None and (scene.key, b) != st.session_state.get("map-last-drawing"):
                st.session_state["map-last-drawing"] = (scene.key, b)
                state.set_bounds(b)
        else:
            from rsviz.display import to_rgb8
            from rsviz.workspace.scene import preview

            img, valid = preview(scene, PREVIEW_SIDE)
            st.image(
                to_rgb8(img, valid=valid), caption="not georeferenced: the extent is the whole image", width="stretch"
            )
    try:
        ext = resolve_extent(scene, state.bounds())
    except RsvizError as exc:
        st.error(f"{exc}. The extent was reset to the whole scene.")
        state.set_bounds(None)
        ext = resolve_extent(scene, None)
    area = extent_area_m2(scene, ext)
    from rsviz.models.api import resolve_device
    from rsviz.workspace.scene import MAX_EXTENT_PX

    dev = resolve_device("auto").type
    dev = dev if dev in MAX_EXTENT_PX else "cpu"
    if ext.pixels > MAX_EXTENT_PX[dev]:
        st.warning(
            f"This extent ({ext.pixels / 1e6:.1f} MPx) is larger than the {MAX_EXTENT_PX[dev] / 1e6:.0f} MPx the "
            f"app runs on {dev.upper()}: draw a smaller rectangle, or use `rsviz predict --bounds` on the file."
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


# --------------------------------------------------------------------------- background runs


def collect_jobs() -> bool:
    """Add this session's finished runs to its state; True when any finished since the last call."""
    changed = False
    for key in list(state.jobs()):
        job = JOBS.get(key)
        if job is None:
            state.jobs().remove(key)
            continue
        if (
            job.state is JobState.DONE
            and job.result is not None
            and key not in st.session_state.get("rsviz.collected", set())
        ):
            st.session_state.setdefault("rsviz.collected", set()).add(key)
            sc = state.scene()
            if sc is not None and job.result.scene_key == sc.key:
                state.add_run(job.result)
            changed = True
        elif job.finished and key not in st.session_state.get("rsviz.collected", set()):
            st.session_state.setdefault("rsviz.collected", set()).add(key)
            changed = True
    return changed


def _job_line(job) -> str:
    if job.state is JobState.RUNNING:
        eta = job.eta_s()
        return f"{job.model}: {job.done}/{job.total or '?'} tiles" + (
            f" · ~{eta:.0f} s left" if eta is not None else ""
        )
    if job.state is JobState.QUEUED:
        return f"{job.model}: queued"
    if job.state is JobState.DONE:
        r = job.result
        return f"{job.model}: " + (
            "cached result" if job.from_workspace else f"done in {r.seconds:.1f} s" if r else "done"
        )
    if job.state is JobState.CANCELLED:
        return f"{job.model}: cancelled"
    return f"{job.model}: failed"


@st.fragment(run_every=1.0)
def _jobs_fragment() -> None:
    mine = [j for j in (JOBS.get(k) for k in state.jobs()) if j is not None and not j.finished]
    for j in mine:
        st.progress(j.fraction, text=_job_line(j))
    if collect_jobs() or not mine:
        st.rerun(scope="app")


def render_jobs_sidebar() -> None:
    """In the sidebar of every page: progress of this session's runs in the background (they go on when the user
    changes page); the page reruns when one finishes."""
    collect_jobs()
    if any(j is not None and not j.finished for j in (JOBS.get(k) for k in state.jobs())):
        with st.sidebar:
            st.caption("Runs in progress")
            _jobs_fragment()


def prelude() -> None:
    """Top of every page: reopen what the URL names (a reload, a link), write the state back to the URL (page
    switches clear it), and show this session's background runs."""
    for note in state.restore():
        st.warning(note)
    state.sync_url()
    render_jobs_sidebar()


# --------------------------------------------------------------------------- Run


def _run_jobs() -> None:
    """This session's runs on the Run page: progress with Cancel, or how each ended."""
    for key in state.jobs():
        job = JOBS.get(key)
        if job is None:
            continue
        line = _job_line(job)
        if job.state is JobState.FAILED:
            st.error(f"{job.model}: {job.error}")
        elif job.state is JobState.CANCELLED:
            st.warning(f"{line}; finished models are kept, nothing else changed.")
        elif job.finished:
            st.success(line)
        else:
            c1, c2 = st.columns([5, 1])
            c1.progress(job.fraction, text=line)
            if c2.button("Cancel", key=f"run-cancel-{key}", help="stop this run at the next batch"):
                job.cancel()


@st.fragment(run_every=1.0)
def _run_jobs_live() -> None:
    _run_jobs()


def render_run() -> None:
    """Model choice, options, background runs with progress and cancel, runs on this extent."""
    prelude()
    from rsviz.models.api import available_devices, get_model_card, resolve_device
    from rsviz.workspace import check_extent_size

    st.title("Run")
    scene = state.need_scene()
    if scene is None:
        return
    names = usable_models()
    if not names:
        st.error("No usable models are registered: the weights/ folder is empty or its models are broken.")
        return
    try:
        ext = resolve_extent(scene, state.bounds())
    except RsvizError as exc:
        st.error(str(exc))
        return
    st.caption(f"Scene **{scene.name}** · extent {int(ext.window.width)} × {int(ext.window.height)} px")
    cards = {n: get_model_card(n) for n in names}
    fitting = [n for n in names if cards[n].in_channels == scene.count and cards[n].task != "scene"] or names
    default = [n for n in fitting if cards[n].task == scene.task][:1] or fitting[:1]
    chosen = st.multiselect("Models (one or two)", names, default=default, max_selections=2, key="run-models")
    c1, c2, c3, c4, c5 = st.columns(5)
    tile = c1.selectbox("Tile (px)", [256, 384, 512, 768, 1024], index=2, key="run-tile")
    overlap = c2.slider("Overlap", 0.0, 0.75, 0.25, 0.05, key="run-overlap")
    recommended = any(cards[n].input.tta for n in chosen)  # the card measured its metrics this way
    tta = c3.toggle(
        "Test-time augmentation",
        recommended,
        key="run-tta",
        help="average over flips and rotations (8x the compute); on by default where a chosen model's "
        "card recommends it",
    )
    devs = ["auto", *available_devices()[::-1]]
    device = c4.selectbox("Device", devs, key="run-device")
    match = c5.toggle(
        "Model's GSD",
        True,
        key="run-match-gsd",
        help="a scene whose ground sampling distance lies outside a model's training range is predicted "
        "resampled to that model's GSD (bilinear), and the outputs brought back onto the scene's grid",
    )
    _gsd_notes(scene, [cards[n] for n in chosen], match)
    opts = RunOptions(tile=int(tile), overlap=float(overlap), tta=bool(tta), device=device, match_gsd=bool(match))
    if st.button("Run", type="primary", key="run-go", disabled=not chosen):
        try:
            check_extent_size(ext, resolve_device(device).type)
        except RsvizError as exc:
            st.error(str(exc))
            chosen = []
        for name in chosen:
            try:
                job = JOBS.submit(name, scene, ext, opts)
            except RsvizError as exc:
                st.error(f"{name}: {exc}")
                continue
            if job.key not in state.jobs():
                state.jobs().append(job.key)
            st.session_state.get("rsviz.collected", set()).discard(job.key)
        st.rerun()
    st.caption(
        "Runs go on in the background when you change page (progress in the sidebar) and are kept in the "
        "workspace by model, scene, extent and options: running the same choice again is instant, also after a "
        "restart."
    )
    if any(j is not None and not j.finished for j in (JOBS.get(k) for k in state.jobs())):
        _run_jobs_live()  # refreshed each second while a run goes on, like the sidebar
    else:
        _run_jobs()
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
                    "TTA": r.run_options.get("tta"),
                    "device": r.run_options.get("device"),
                    "precision": r.run_options.get("precision"),
                    "MPx/s": round(float(r.stats.get("mpx_per_s", float("nan"))), 3),
                    "GSD": r.run_options.get("gsd", "as is"),
                }
                for r in runs
            ],
            hide_index=True,
        )
        st.success("Open **Compare** or **Metrics** to inspect the results.")
    _external_form(scene, ext)


def _gsd_notes(scene: Scene, cards: list, match: bool) -> None:
    """Say, before a run, which chosen models will see the scene resampled (or should, with the switch off)."""
    from rsviz.inference.gsd import target_gsd

    g = scene.gsd if scene.crs is not None else None  # without a CRS nothing is resampled
    for c in cards:
        t = target_gsd(g, c.input.gsd_range_m)
        if t is None or g is None:
            continue
        lo, hi = c.input.gsd_range_m
        if match:
            st.info(
                f"{c.name}: the scene's GSD is {g:.3f} m, outside its training range {lo:g}-{hi:g} m; it is "
                f"predicted resampled to {t:.3f} m and the outputs are brought back onto the scene's grid."
            )
        else:
            st.warning(
                f"{c.name}: the scene's GSD is {g:.3f} m, outside its training range {lo:g}-{hi:g} m, and "
                "it is predicted as it is; expect degraded predictions."
            )


#: Class-table choices of the external-prediction form, in the order the library prefers them.
EXTERNAL_TABLES = ("the raster's colour table, else the scene's legend", "a model's classes", "a JSON class table")


def _external_form(scene: Scene, ext) -> None:
    """Run page: a class-id or probability raster made elsewhere becomes a run of this extent."""
    from rsviz.models.api import get_model_card
    from rsviz.workspace.external import (
        TASKS,
        class_table_from_json,
        class_table_from_model,
        import_prediction,
        import_upload,
    )

    for kind, text in st.session_state.pop("ext-messages", []):  # from the run that added it (before its rerun)
        (st.warning if kind == "warning" else st.success)(text)
    seg = [n for n in usable_models() if get_model_card(n).task in TASKS]
    with st.expander("Add a prediction made elsewhere (a class-id or probability raster) as a run"):
        with st.form("external"):
            up = st.file_uploader("Prediction raster", type=["tif", "tiff", "vrt", "jp2", "png"], key="ext-file")
            path = st.text_input("…or its path on this machine", key="ext-path")
            name = st.text_input("Name of the run", placeholder="the file name", key="ext-name")
            how = st.radio("Classes from", EXTERNAL_TABLES, key="ext-how", horizontal=True)
            c1, c2 = st.columns(2)
            model = c1.selectbox("Model (for “a model's classes”)", seg, key="ext-model")
            table_up = c2.file_uploader(
                'Class table JSON: {"task": …, "classes": [{"id", "name", "color"}]}', type=["json"], key="ext-table"
            )
            ok = st.form_submit_button("Add as a run")
        st.caption(
            "One integer band of class ids (255 or the raster's nodata = nodata), or float probabilities in [0, 1] "
            "(one band: the positive class, threshold 0.5; or one band per class). A raster on another grid is "
            "reprojected onto the scene's (nearest neighbour for class ids)."
        )
        if not ok:
            return
        if up is None and not path.strip():
            st.error("Choose a prediction raster (upload) or type its path.")
            return
        try:
            table = None
            if how == EXTERNAL_TABLES[1]:
                table = class_table_from_model(model)
            elif how == EXTERNAL_TABLES[2]:
                if table_up is None:
                    st.error("Upload the class table (JSON), or choose another source of classes.")
                    return
                table = class_table_from_json(table_up.getvalue(), source=table_up.name)
            with st.spinner("Placing the prediction on the scene's grid…"):
                if up is not None:
                    res = import_upload(scene, up.name, up, table, name=name or None, extent=ext)
                else:
                    from rsviz.workspace.scene import check_local_path

                    res = import_prediction(scene, check_local_path(path.strip()), table, name=name or None, extent=ext)
        except (RsvizError, OSError) as exc:
            st.error(str(exc))
            return
        state.add_run(res.run)
        done = "Reopened" if res.from_workspace else "Added"
        st.session_state["ext-messages"] = [
            *(("warning", w) for w in res.warnings),
            ("success", f"{done} the run **{res.run.model}**: Compare, Metrics and Export show it like a model's run."),
        ]
        st.rerun()


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

    scene, ext, runs = _pick_runs(key)
    if not runs:
        return None
    i = st.selectbox(
        "Run",
        range(len(runs)),
        index=len(runs) - 1,
        format_func=lambda k: (
            f"{runs[k].model} · tile {runs[k].options.tile} · overlap {runs[k].options.overlap}"
            + (" · TTA" if runs[k].run_options.get("tta") else "")
        ),
        key=f"{key}-run",
    )
    r = runs[i]
    return scene, ext, r, r.card


def _compare_maps(scene: Scene, ext, runs) -> None:
    from rsviz.app.compare_maps import linked_maps_html, swipe_html

    layers = _layers(scene, runs)
    by_name = {lyr.name: lyr for lyr in layers}
    base = by_name.get("imagery")
    overlays = [lyr for lyr in layers if lyr.name != "imagery"]
    if not overlays:
        return
    names = [lyr.name for lyr in overlays]
    preds = [n for n in names if n.endswith(": prediction")]
    gts = [n for n in names if n.startswith("ground truth")]
    mode = st.radio("View", ["Swipe", "Linked maps"], horizontal=True, key="compare-mode")
    bounds = scene.bounds_4326
    assert bounds is not None
    if mode == "Swipe":
        dl = gts[0] if gts else names[0]
        dr = preds[-1] if preds else names[-1]
        if len(preds) >= 2:
            dl, dr = preds[-2], preds[-1]
        c1, c2 = st.columns(2)
        left = c1.selectbox("Left of the divider", names, index=names.index(dl), key="compare-left")
        right = c2.selectbox("Right of the divider", names, index=names.index(dr), key="compare-right")
        st.iframe(
            swipe_html(by_name[left], by_name[right], base, bounds, view=ext.bounds, base_url=state.base_url()),
            height=570,
        )
    else:
        default = gts[:1] + [n for n in names if n.endswith((": prediction", ": errors (TP green, FP red, FN blue)"))]
        default += [n for n in names if "uncertainty" in n or "edge" in n or "height" in n][:2]
        shown = st.multiselect("Maps (pan and zoom are linked)", names, default=default[:6], key="compare-grid")
        if shown:
            st.iframe(
                linked_maps_html([by_name[n] for n in shown], base, bounds, view=ext.bounds, base_url=state.base_url()),
                height=330 * math.ceil(len(shown) / 2) + 10,
            )


def render_compare() -> None:
    """Full-resolution comparison maps (swipe, linked grid); side-by-side panels for small extents."""
    prelude()
    from rsviz.figures import panels_for, swipe

    st.title("Compare")
    scene, ext, runs = _pick_runs("compare")
    if not runs:
        return
    shown = runs[-2:]
    if scene.georeferenced:
        _compare_maps(scene, ext, shown)
    if ext.pixels > PANEL_MAX_PX:
        st.caption(f"Side-by-side panels are drawn for extents up to {PANEL_MAX_PX / 1e6:.0f} MPx; use the maps above.")
        return
    sub = scene.read(ext.window)
    all_panels = []
    for r in shown:
        card = r.card
        all_panels.append((r, panels_for(sub, r.prediction.heads, card, _target_task(scene, card))))
    from rsviz.app.mapview import legend_html

    st.subheader("Panels")
    for r, _ in all_panels:
        c = r.card
        if c.classes:
            st.markdown(legend_html(c.classes, f"{r.model} classes"), unsafe_allow_html=True)
    if len(all_panels) == 1:
        r, panels = all_panels[0]
        st.caption(r.model)
        for i in range(0, len(panels), 3):
            for col, p in zip(st.columns(3), panels[i : i + 3], strict=False):
                col.image(p.image, caption=p.caption, width="stretch")
    else:
        (ra, pa), (rb, pb) = all_panels
        da, db = {p.kind: p for p in pa}, {p.kind: p for p in pb}
        c1, c2 = st.columns(2)
        c1.caption(ra.model)
        c2.caption(rb.model)
        for kind in dict.fromkeys([p.kind for p in pa] + [p.kind for p in pb]):
            c1, c2 = st.columns(2)
            for col, d in ((c1, da), (c2, db)):
                if kind in d:
                    col.image(d[kind].image, caption=d[kind].caption, width="stretch")
    r, panels = all_panels[0]
    d = {p.kind: p.image for p in panels}
    if PanelKind.PREDICTION in d and PanelKind.GROUND_TRUTH in d and not scene.georeferenced:
        st.subheader("Swipe: prediction (left) vs ground truth (right)")
        f = st.slider("divider", 0.0, 1.0, 0.5, 0.01, key="compare-swipe")
        st.image(swipe(d[PanelKind.PREDICTION], d[PanelKind.GROUND_TRUTH], f), width="stretch")


# --------------------------------------------------------------------------- Metrics


def render_metrics(st_folium) -> None:
    """Metrics inside the extent: per-class table, OA, kappa, confusion matrix, BF, objects, APLS, heights."""
    prelude()
    from rsviz.evaluation import metric_label, per_class_rows, task_spec
    from rsviz.figures import confusion_figure

    st.title("Metrics")
    chosen = _choose_run("metrics")
    if chosen is None:
        return
    scene, ext, r, card = chosen
    try:
        res = _cached_eval(scene, r, card)
    except (RsvizError, OSError, ValueError) as exc:
        st.error(f"The metrics could not be computed: {exc}")
        return
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
    if "rmse" in res.values:
        _height_baseline(scene, ext, res)
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
    if graphs is not None and ext.pixels <= PANEL_MAX_PX:
        from rsviz.display import to_rgb8
        from rsviz.figures import road_graph_figure

        st.subheader("APLS road graphs: ground truth (green) · prediction (red) · bridged gaps (yellow)")
        st.caption(
            "Paths between control nodes are compared on these skeleton graphs; a break in the red graph "
            "cuts every path through it. The prediction's graph follows the model card's road_graph."
        )
        sub = scene.read(ext.window, with_targets=False)
        st.pyplot(road_graph_figure(to_rgb8(sub.image, valid=sub.valid), *graphs))


def _height_baseline(scene: Scene, ext, res) -> None:
    """Beside a height head's errors: those of the best constant height (the extent's mean ground truth)."""
    from rsviz.workspace.metrics import height_baseline

    key = f"height-baseline:{scene.key}:{ext.key()}"
    if key not in st.session_state:
        st.session_state[key] = height_baseline(scene, ext.window)
    b = st.session_state[key]
    if b is None:
        return
    rmse, mae = float(res.values["rmse"]), float(res.values.get("mae", float("nan")))
    verdict = (
        "the model beats it on both"
        if rmse < b.rmse and mae < b.mae
        else "the model does **not** beat it on "
        + " and ".join(k for k, ok in (("RMSE", rmse < b.rmse), ("MAE", mae < b.mae)) if not ok)
    )
    c1, c2 = st.columns(2)
    c1.metric(
        "baseline RMSE (constant height)", fmt(b.rmse), delta=f"{rmse - b.rmse:+.3f} model", delta_color="inverse"
    )
    c2.metric("baseline MAE (constant height)", fmt(b.mae), delta=f"{mae - b.mae:+.3f} model", delta_color="inverse")
    st.caption(
        f"Baseline: predicting the extent's mean ground-truth height ({b.mean:.3f}) everywhere, the best any "
        f"constant does on RMSE; {verdict}."
    )


def _evaluated_pixels(res) -> int:
    if res.confusion is not None:
        return int(np.asarray(res.confusion).sum())
    return int(res.get("pixels") or 0)


def _class_confusion(res) -> tuple[np.ndarray, list[str]]:
    """The confusion matrix of the evaluated classes (ignore class left out) and their names."""
    ids = [c.id for c in res.per_class]
    return np.asarray(res.confusion)[np.ix_(ids, ids)], [c.name for c in res.per_class]


def _cached_eval(scene, r, card):
    """Metrics of a run (computed once per run and process, block by block with a progress bar)."""
    from rsviz.workspace.metrics import evaluate_run_cached

    bar = st.empty()

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Computing metrics: block {done}/{total}")

    res, _ = evaluate_run_cached(scene, r, card, progress=progress)
    bar.empty()
    return res


def _objects_map(scene, ext, match):
    import folium
    import shapely

    from rsviz.app.layers import imagery_layer, max_zoom
    from rsviz.app.mapview import add_tile_layer, fit_bounds, make_map
    from rsviz.metrics.objects import ObjectMatch, match_to_geojson

    img = imagery_layer(scene)
    _, mz = max_zoom(img)
    m = make_map(basemap=False, draw=False, height=480, max_zoom=mz, base_url=state.base_url())
    add_tile_layer(m, img, state.base_url(), bounds=scene.bounds_4326, max_zoom=mz)
    from affine import Affine

    t = scene.transform * Affine.translation(ext.window.col_off, ext.window.row_off)

    def to_crs(p):
        return shapely.affinity.affine_transform(p, [t.a, t.b, t.d, t.e, t.c, t.f])

    mm = ObjectMatch(
        [(to_crs(a), to_crs(g), v) for a, g, v in match.tp],
        [to_crs(p) for p in match.fp],
        [to_crs(g) for g in match.fn],
    )
    gj = match_to_geojson(mm, scene.crs)
    colours = {"tp": "#2ecc40", "fp": "#ff4136", "fn": "#0074d9"}
    folium.GeoJson(
        gj,
        name="objects",
        style_function=lambda f: {"color": colours[f["properties"]["kind"]], "weight": 2, "fillOpacity": 0.15},
        tooltip=folium.GeoJsonTooltip(fields=["kind"]),
    ).add_to(m)
    fit_bounds(m, ext.bounds)
    return m


# --------------------------------------------------------------------------- Export


def render_export() -> None:
    """Downloads: prediction COG, polygons GeoJSON, eval.json / CSV, the QA report as offline HTML and PDF."""
    prelude()
    from rsviz.evaluation import eval_csv, to_eval_json

    st.title("Export")
    chosen = _choose_run("export")
    if chosen is None:
        return
    scene, ext, r, card = chosen
    stem = f"{scene.name.split(' / ')[-1].rsplit('.', 1)[0]}-{r.model}".replace(" ", "_")
    st.caption(
        f"Everything below covers the {int(ext.window.width)} × {int(ext.window.height)} px extent of "
        f"**{scene.name}** predicted by **{r.model}**."
    )
    icon = ":material/download:"
    if scene.georeferenced:
        st.download_button(
            "Prediction (COG, class ids in band 1)",
            r.path.read_bytes,  # read when clicked, not at every rerun
            f"{stem}.tif",
            "image/tiff",
            key="dl-cog",
            icon=icon,
            help="Cloud-optimised uint8 GeoTIFF on the scene's grid and CRS: class ids in band 1 (255 = "
            "nodata), then probabilities, entropy, edges and reconstruction x 255 as the "
            "model has them (band descriptions name each)",
        )
        if r.height_path is not None:
            st.download_button(
                "Heights (float32 COG)",
                r.height_path.read_bytes,
                f"{stem}_height.tif",
                "image/tiff",
                key="dl-height",
                icon=icon,
            )
        from rsviz.evaluation.tasks import specs_for_card
        from rsviz.inference.export import prediction_polygons_geojson

        if ext.pixels > VECTOR_MAX_PX:
            st.info(
                f"Polygons are exported for extents up to {VECTOR_MAX_PX / 1e6:.0f} MPx (they are built in memory); "
                "draw a smaller extent, or polygonise the COG above (e.g. `gdal_polygonize.py`)."
            )
        else:
            buildings = any(sp.vectors == "instances" for sp in specs_for_card(card)[:1])
            st.download_button(
                "Building footprints (GeoJSON, one polygon per building, EPSG:4326)"
                if buildings
                else "Predicted polygons (GeoJSON, EPSG:4326)",
                lambda: json.dumps(prediction_polygons_geojson(r.prediction, card)),  # built when clicked
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
    try:
        res = _cached_eval(scene, r, card)
    except (RsvizError, OSError, ValueError) as exc:
        st.error(f"The metrics could not be computed: {exc}")
        res = None
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
    from rsviz.report import build_report, report_html, report_pdf
    from rsviz.workspace import runs_of

    others = {f"{o.model} · {o.key}": o for o in runs_of(scene.key) if o.key != r.key}
    other = st.selectbox(
        "Compare with (report)",
        ["none", *others],
        key="report-compare",
        help="A second run of this scene: the report shows both columns, their difference with its "
        "95 % interval, and both runs' panels side by side",
    )
    runs = [r] if other == "none" else [r, others[other]]
    results = [res] + [None] * (len(runs) - 1)
    help_ = (
        "Where the extent is (overview map, bounds, provenance), the model cards, every figure with its "
        "definition and 95 % bootstrap interval beside a trivial baseline, and the errors as pictures"
    )
    st.download_button(
        "QA report (one offline HTML file)",
        lambda: report_html(build_report(scene, runs, results=results)),  # built when clicked
        f"{stem}-report.html",
        "text/html",
        key="dl-html",
        icon=icon,
        help=help_,
    )
    st.download_button(
        "QA report (PDF)",
        lambda: report_pdf(build_report(scene, runs, results=results)),
        f"{stem}-report.pdf",
        "application/pdf",
        key="dl-pdf",
        icon=icon,
        help=help_ + "; the same report laid out for print",
    )


# --------------------------------------------------------------------------- Scene classification


def render_scene_classification() -> None:
    """Sentinel-2 patch viewer: RGB composite, any band, label probabilities vs truth, metrics over the set."""
    prelude()
    from rsviz.data import catalog
    from rsviz.datasets import scenes
    from rsviz.datasets.bigearthnet import BANDS, LABELS_19
    from rsviz.display import colormap_rgba, to_rgb8
    from rsviz.errors import DataMissingError
    from rsviz.evaluation.export import multilabel_rows
    from rsviz.models.api import get_model_card

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
    models = [n for n in usable_models() if get_model_card(n).task == "scene"]
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
