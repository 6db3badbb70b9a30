"""AppTest of the Batch page: a batch over a folder of real chips, its per-scene table, a scene opened on the Map."""

import shutil
from pathlib import Path
from unittest import mock

import pytest
from streamlit.testing.v1 import AppTest

from tests import toy_models

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CHIPS = "banepa-buildings/data/sample/train/oam"
OSM = "banepa-buildings/data/sample/train/osm/osm_features_ac7e343eb1faacd2.geojson"


@pytest.fixture(scope="module", autouse=True)
def toys(tmp_path_factory):
    toy_models.register(tmp_path_factory.mktemp("models"))


def _click(feature_props):
    return {"last_active_drawing": {"type": "Feature", "properties": feature_props, "geometry": None}}


def test_batch_page_runs_a_folder_and_opens_a_scene_on_the_map(mirror, tmp_path):
    from rsviz.batch.background import get_batch

    folder = tmp_path / "chips"
    folder.mkdir()
    for c in sorted((mirror / CHIPS).glob("OAM-386695-*.tif"))[:3]:
        for f in (c, c.with_name(c.name + ".aux.xml")):  # the chips' georeferencing is in the .aux.xml
            shutil.copy(f, folder / f.name)
    with mock.patch("streamlit_folium.st_folium", return_value={}):
        at = AppTest.from_file(str(ROOT / "pages" / "dashboard.py"), default_timeout=60).run()
        at.switch_page("batch.py").run()
        assert not at.exception, at.exception
        at.selectbox(key="batch-model").set_value("toy-pointwise")
        at.text_input(key="batch-scenes").set_value(str(folder))
        at.text_input(key="batch-gt").set_value(str(mirror / OSM))
        at.text_input(key="batch-out").set_value(str(tmp_path / "out"))
        at.number_input(key="batch-workers").set_value(0)
        at.button(key="batch-go").click().run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        run = get_batch(at.session_state["rsviz.batch"])
        assert run is not None and run.wait(120).state.value == "done", run.error
        at.run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        table = at.dataframe[0].value
        assert list(table["status"]) == ["done"] * 3
        assert all(u.startswith("/map?scene=") and "&runs=" in u for u in table["open"])
        assert any(m.label.startswith("pooled IoU") for m in at.metric)
        assert (tmp_path / "out" / "eval.json").is_file()
        # the footprint map's click opens the scene with its run on the Map page
        o = run.summary.outcomes[1]
    with mock.patch(
        "streamlit_folium.st_folium", return_value=_click({"scene_key": o.scene_key, "run_key": o.run_key})
    ):
        at.run()
        assert not at.exception, at.exception
        assert at.session_state["rsviz.scene"].key == o.scene_key
        assert [r.key for r in at.session_state["rsviz.runs"]] == [o.run_key]
        assert at.query_params["scene"] == [o.scene_key] or at.query_params["scene"] == o.scene_key
