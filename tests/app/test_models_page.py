"""Models page (AppTest): the registry table, a model folder registered by path, a bad folder refused in words."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from unittest import mock

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def test_models_page_registers_a_folder_and_refuses_a_bad_one(tmp_path):
    from rsviz.models.api import BUNDLED_DIR, list_models

    src = shutil.copytree(BUNDLED_DIR / "building-seg", tmp_path / "their-buildings")
    with mock.patch("streamlit_folium.st_folium", return_value={}):
        at = AppTest.from_file(str(ROOT / "pages" / "dashboard.py"), default_timeout=60).run()
        at.switch_page("models.py").run()
        assert not at.exception, at.exception
        table = at.dataframe[0].value
        assert {"building-mtl", "s2-late"} <= set(table["model"]) and set(table["from"]) >= {"bundled"}
        at.text_input(key="models-path").set_value(str(tmp_path / "nothing-here"))
        at.button(key="FormSubmitter:model-add-Register").click().run()
        assert not at.exception and any("is not a model folder" in e.value for e in at.error)
        at.text_input(key="models-path").set_value(str(src))
        at.button(key="FormSubmitter:model-add-Register").click().run()
        assert not at.exception, at.exception
        assert any("their-buildings" in s.value and "registered" in s.value for s in at.success)
        row = at.dataframe[0].value.set_index("model").loc["their-buildings"]
        assert row["from"] == "your store" and row["runtime"] == "pytorch" and row["task"] == "buildings"
        at.selectbox(key="models-remove").set_value("their-buildings")
        at.button(key="models-remove-go").click().run()
        assert not at.exception
    assert "their-buildings" not in list_models()


class _Upload(io.BytesIO):
    """What st.file_uploader returns: a binary stream with a name."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


def test_models_page_registers_an_uploaded_zip(tmp_path):
    import zipfile

    from rsviz.models.api import BUNDLED_DIR, list_models
    from rsviz.models.store import remove_model

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in ("card.json", "config.json", "model.safetensors", "mlm.json"):
            z.write(BUNDLED_DIR / "building-seg" / f, f"seg/{f}")
    up = _Upload(buf.getvalue(), "uploaded-seg.zip")
    with (
        mock.patch("streamlit_folium.st_folium", return_value={}),
        mock.patch("streamlit.file_uploader", return_value=up),
    ):
        at = AppTest.from_file(str(ROOT / "pages" / "dashboard.py"), default_timeout=60).run()
        at.switch_page("models.py").run()
        at.button(key="FormSubmitter:model-add-Register").click().run()
        assert not at.exception, at.exception
        assert any("uploaded-seg" in s.value and "registered" in s.value for s in at.success), [
            e.value for e in at.error
        ]
    try:
        assert "uploaded-seg" in list_models()
    finally:
        remove_model("uploaded-seg")
    with (
        mock.patch("streamlit_folium.st_folium", return_value={}),
        mock.patch("streamlit.file_uploader", return_value=_Upload(b"x", "weights.pth")),
    ):
        at = AppTest.from_file(str(ROOT / "pages" / "dashboard.py"), default_timeout=60).run()
        at.switch_page("models.py").run()
        at.button(key="FormSubmitter:model-add-Register").click().run()
        assert not at.exception and any("upload a .zip of a model folder" in e.value for e in at.error)
