"""Headless AppTest runs of every page (st_folium is patched: components do not render here)."""

from pathlib import Path
from unittest import mock

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.realdata
PAGES = Path(__file__).resolve().parents[2] / "pages"


def _fake_st_folium(*args, **kwargs):
    return {"last_active_drawing": None, "all_drawings": []}


def test_home_page_lists_scenes_and_builds_the_map(mirror):
    with mock.patch("streamlit_folium.st_folium", side_effect=_fake_st_folium) as fake:
        at = AppTest.from_file(str(PAGES / "home.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value.startswith("rsviz")
    picker = at.selectbox(key="home-scene")
    assert any("banepa-buildings" in o for o in picker.options)
    assert picker.value.startswith("area: banepa-block")  # the mosaicked area opens by default
    assert at.session_state["rsviz.scene"].width > 5000
    assert fake.called
    m = fake.call_args.args[0]
    html = m.get_root().render()
    # imagery and ground truth are tile layers of this app's own server, with the split outline
    assert html.count("/rsviz/tiles/") >= 2 and "data:image/png;base64" not in html and "cdn." not in html
    assert "train / val / test areas" in html


def test_home_page_without_data_says_how_to_fetch(tmp_path, monkeypatch):
    from rsviz.errors import RsvizError

    monkeypatch.setenv("RSVIZ_DATA_DIR", str(tmp_path))

    def offline(name, progress=None):
        raise RsvizError("cannot download https://example.org/x: [Errno 101] Network is unreachable")

    with (
        mock.patch("streamlit_folium.st_folium", side_effect=_fake_st_folium),
        mock.patch("rsviz.data.catalog.fetch", side_effect=offline) as fetch,
    ):
        at = AppTest.from_file(str(PAGES / "home.py"), default_timeout=60).run()
    assert not at.exception
    assert fetch.called  # the first start tries to fetch the default scenes' data ...
    # ... and, offline, says which variable or command to use
    assert any("RSVIZ_DATA_DIR" in w.value and "rsviz data fetch" in w.value for w in at.warning)
    assert any("rsviz data fetch" in e.value for e in at.error)
