"""Models page: every registered model with its descriptor summary; register a model folder in the user store."""

from __future__ import annotations

import json

import streamlit as st

from rsviz.errors import ModelFolderError, RsvizError


def _rows() -> list[dict]:
    from rsviz.models.api import BUNDLED_DIR, get_model_card, list_models, model_dir, model_problem
    from rsviz.models.store import store_dir

    rows = []
    for n in list_models():
        d = model_dir(n)
        where = (
            "bundled"
            if d.parent.resolve() == BUNDLED_DIR.resolve()
            else ("your store" if d.parent.resolve() == store_dir().resolve() else str(d.parent))
        )
        problem = model_problem(n)
        if problem is not None:
            rows.append({"model": n, "from": where, "task": "BROKEN", "problem": problem})
            continue
        c = get_model_card(n)
        try:
            runtime = str(json.loads((d / "config.json").read_text()).get("runtime", "pytorch"))
        except (OSError, ValueError):
            runtime = "?"
        lo, hi = c.input.gsd_range_m
        rows.append(
            {
                "model": n,
                "from": where,
                "task": c.task,
                "bands": ", ".join(c.input.bands),
                "dtype / scale": f"{c.input.dtype} / {c.input.scale:g}",
                "GSD (m)": f"{lo:g}-{hi:g}",
                "tile": c.input.tile_size,
                "classes": ", ".join(x.name for x in c.classes),
                "runtime": runtime,
                "MLM": "yes" if (d / "mlm.json").is_file() else "",
                "problem": "",
            }
        )
    return rows


def render_models() -> None:
    """The models table, the register form and removal from the store."""
    from rsviz.app.views import prelude

    prelude()
    st.title("Models")
    st.dataframe(_rows(), hide_index=True, width="stretch")
    st.caption(
        "Bundled models come with rsviz; your own live in the workspace's model store and stay registered after "
        "a restart. A model folder holds card.json (bands, scaling, GSD range, classes), config.json and the "
        "weights: model.safetensors, or an ONNX, TorchScript or torch.export file named by config.json's "
        '"runtime" and "file" (`rsviz models export NAME` writes one). A STAC MLM item (mlm.json) beside an '
        "ONNX, TorchScript or .pt2 file is enough on its own; an ONNX file with Deepness metadata (class_names, "
        "resolution, tiles_size) registers directly. Pickled checkpoints are never loaded."
    )
    for text in st.session_state.pop("models-messages", []):  # from the run that registered it
        st.success(text)
    st.subheader("Register a model")
    with st.form("model-add"):
        path = st.text_input("Model folder, .zip of one, or Deepness .onnx file on this machine", key="models-path")
        upload = st.file_uploader(
            "…or upload a .zip of a model folder (card.json + config.json, or mlm.json, beside the weights) or a "
            "Deepness .onnx file",
            type=["zip", "onnx"],
            key="models-upload",
        )
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Name (default: the folder's or file's)", key="models-name")
        bands = c2.text_input("Bands of an .onnx file (default red,green,blue)", key="models-bands")
        replace = c3.checkbox("Replace a model of that name in the store", key="models-replace")
        ok = st.form_submit_button("Register")
    if ok:
        from rsviz.models.store import add_model, add_upload
        from rsviz.workspace.scene import check_local_path

        kw = {
            "replace": replace,
            "bands": [b.strip() for b in bands.split(",") if b.strip()] or None,
        }
        try:
            with st.spinner("Checking the model and running one test tile…"):
                if upload is not None:
                    m = add_upload(upload.name, upload, name.strip() or None, **kw)
                elif path.strip():
                    m = add_model(check_local_path(path.strip()), name.strip() or None, **kw)
                else:
                    raise ModelFolderError("give a model folder's path or upload a .zip / .onnx file")
        except RsvizError as exc:
            st.error(str(exc))
        else:
            outs = ", ".join(f"{k} {'×'.join(map(str, v))}" for k, v in m.outputs.items())
            st.session_state["models-messages"] = [
                f"**{m.name}** registered ({m.runtime}, {m.task}; bands {', '.join(m.bands)}); its test tile ran "
                f"in {m.smoke_seconds:.2f} s ({outs}). It is on the Run page now."
            ]
            st.rerun()
    from rsviz.models.store import remove_model, store_dir

    mine = sorted(p.name for p in store_dir().iterdir() if (p / "card.json").is_file())
    if mine:
        st.subheader("Remove from your store")
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox("Model", mine, key="models-remove")
        if c2.button("Remove", key="models-remove-go"):
            try:
                remove_model(pick)
            except RsvizError as exc:
                st.error(str(exc))
            else:
                st.rerun()
