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
    assert "(test)" in picker.value
    assert fake.called
    m = fake.call_args.args[0]
    html = m.get_root().render()
    assert "data:image/png;base64" in html and "cdn." not in html


def test_home_page_without_data_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("RSVIZ_DATA_DIR", str(tmp_path))
    with mock.patch("streamlit_folium.st_folium", side_effect=_fake_st_folium):
        at = AppTest.from_file(str(PAGES / "home.py"), default_timeout=60).run()
    assert not at.exception
    assert any("rsviz data fetch" in e.value for e in at.error)
