"""AppTest runs of every page through a full QA session (st_folium patched to draw a rectangle)."""

from pathlib import Path
from unittest import mock

import pytest
from streamlit.testing.v1 import AppTest

from tests import toy_models

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCENE = "banepa-buildings / OAM-386694-220245-19 (test)"


@pytest.fixture(scope="module", autouse=True)
def toys(tmp_path_factory):
    toy_models.register(tmp_path_factory.mktemp("models"))


def _rectangle(bounds):
    w, s, e, n = bounds
    return {
        "last_active_drawing": {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [w, n], [e, n], [e, s], [w, s]]]},
        },
        "all_drawings": [],
    }


def _chip_bounds():
    from rsviz.datasets import scenes

    s = [r for r in scenes("banepa-buildings") if r.id == "OAM-386694-220245-19"][0].load()
    t = s.transform
    w, n = t.c, t.f
    e, so = t.c + t.a * 512, t.f + t.e * 512
    # central quarter of the chip
    return (w + (e - w) * 0.25, so + (n - so) * 0.25, w + (e - w) * 0.75, so + (n - so) * 0.75)


def _app():
    return AppTest.from_file(str(ROOT / "pages" / "dashboard.py"), default_timeout=120)


def _run_and_wait(at):
    """Click Run, wait for the background runs, rerun the page (the browser's fragment does this by itself)."""
    from rsviz.workspace import JOBS

    at.button(key="run-go").click().run()
    for key in at.session_state["rsviz.jobs"]:
        JOBS.wait(key)
    return at.run()


def test_full_session_map_run_compare_metrics_export(mirror):
    b = _chip_bounds()
    with mock.patch("streamlit_folium.st_folium", return_value=_rectangle(b)):
        at = _app().run()
        assert not at.exception
        at.switch_page("map.py").run()
        assert not at.exception, at.exception
        at.selectbox(key="map-scene").set_value(SCENE).run()
        assert not at.exception
        assert any("256 × 256 px" in s.value for s in at.success), [s.value for s in at.success]
        at.switch_page("run.py").run()
        assert not at.exception
        at.multiselect(key="run-models").set_value(["toy-pointwise"]).run()
        at.selectbox(key="run-tile").set_value(256)
        _run_and_wait(at)
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        assert len(at.dataframe) == 1
        assert set(at.query_params) == {"scene", "bbox", "runs"}  # a reload or a link comes back here
        at.switch_page("compare.py").run()
        assert not at.exception, at.exception
        at.switch_page("metrics.py").run()
        assert not at.exception, at.exception
        shown = {m.label: m.value for m in at.metric}
        assert "IoU" in shown and "OA" in shown and "object F1 @ IoU 0.5" in shown
        # the IoU shown equals the library's own computation for that extent
        from rsviz.datasets import scenes
        from rsviz.inference import predict
        from rsviz.metrics import binary_metrics
        from rsviz.models.api import load_model
        from rsviz.raster import RasterData
        from rsviz.workspace import open_sample, resolve_extent

        sc = open_sample([r for r in scenes("banepa-buildings") if r.id == "OAM-386694-220245-19"][0])
        sub = sc.read(resolve_extent(sc, b).window)
        p = predict(
            load_model("toy-pointwise", "cpu"),
            RasterData(sub.image, sub.transform, sub.crs, sub.valid),
            tile=256,
            overlap=0.25,
        )
        iou = binary_metrics(p.heads["classes"] == 1, sub.targets["buildings"], sub.valid)["iou"]
        assert shown["IoU"] == f"{iou:.3f}"
        at.switch_page("export.py").run()
        assert not at.exception, at.exception
        labels = [d.label for d in at.get("download_button")]
        assert any("COG" in lab for lab in labels) and any("HTML" in lab for lab in labels) and "eval.json" in labels
        assert any("PDF" in lab for lab in labels)


def test_bad_inputs_give_clear_errors_not_tracebacks(mirror, scene_dir):
    with mock.patch("streamlit_folium.st_folium", return_value={}):
        at = _app().run()
        at.switch_page("map.py").run()
        at.radio(key="map-source").set_value("Local path").run()
        at.text_input(key="map-path").set_value(str(scene_dir / "not_a_raster.tif"))
        at.button(key="map-open-path").click().run()
        assert not at.exception
        assert any("not a raster" in e.value for e in at.error)
        # a 1-band image for an RGB model
        at.text_input(key="map-path").set_value(str(scene_dir / "one_band.tif"))
        at.button(key="map-open-path").click().run()
        assert not at.exception
        at.switch_page("run.py").run()
        at.multiselect(key="run-models").set_value(["toy-pointwise"]).run()
        _run_and_wait(at)
        assert not at.exception
        assert any("expects 3 bands" in e.value for e in at.error)
        assert at.session_state["rsviz.scene"].name == "one_band.tif"  # the scene stays open


def test_extent_outside_raster_resets_with_message(mirror):
    with mock.patch("streamlit_folium.st_folium", return_value=_rectangle((10.0, 10.0, 10.001, 10.001))):
        at = _app().run()
        at.switch_page("map.py").run()
        at.selectbox(key="map-scene").set_value(SCENE).run()
        assert not at.exception
        assert any("does not overlap" in e.value for e in at.error)
        assert any("(whole scene)" in s.value for s in at.success)


def test_scene_classification_page(mirror):
    at = _app().run()
    at.switch_page("scene_classification.py").run()
    assert not at.exception, at.exception
    assert any("True labels" in m.value for m in at.markdown)


def test_pages_without_a_scene_point_to_the_map():
    for p in ("run.py", "compare.py", "metrics.py", "export.py"):
        at = _app().switch_page(p).run()  # a session that starts on this page (a link), before Home opened a scene
        assert not at.exception, (p, at.exception)
        assert any("Map" in i.value for i in at.info), p


def test_road_metrics_show_the_apls_graphs(mirror):
    """A bundled road model on an ETH tile: the Metrics page shows APLS and draws both road graphs."""
    with mock.patch("streamlit_folium.st_folium", return_value=None):
        at = _app().run()
        at.switch_page("map.py").run()
        at.selectbox(key="map-scene").set_value("eth-roads / satImage_091 (test)").run()
        assert not at.exception, at.exception
        at.switch_page("run.py").run()
        at.multiselect(key="run-models").set_value(["roads-pplinknet"]).run()
        _run_and_wait(at)
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        at.switch_page("metrics.py").run()
        assert not at.exception, at.exception
        assert {"APLS (4 m buffer)", "relaxed F1 (ρ 3 px)"} <= {m.label for m in at.metric}  # ETH: measured GSD
        assert any("APLS road graphs" in h.value for h in at.subheader)
        assert len(at.image) == 3  # two confusion matrices and the graph figure (st.pyplot renders images)


def test_a_reload_reopens_scene_extent_and_runs_and_navigation_keeps_them(mirror, scene_dir):
    """A new session given the URL's query parameters (a reload, a bookmark) finds the same view; going Map ->
    Run -> Metrics -> Map never replaces a scene opened from a local path."""
    b = (15.0, 45.0, 15.1, 45.1)
    with mock.patch("streamlit_folium.st_folium", return_value={}):
        at = _app().run()
        at.switch_page("map.py").run()
        at.radio(key="map-source").set_value("Local path").run()
        at.text_input(key="map-path").set_value(str(scene_dir / "image.tif"))
        at.text_input(key="map-gt-path").set_value(str(scene_dir / "gt.tif"))
        at.button(key="map-open-path").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        from rsviz.workspace import resolve_extent

        s = at.session_state["rsviz.scene"]
        w, so, e, n = resolve_extent(s, None).bounds
        b = (w, so, (w + e) / 2, (so + n) / 2)
    with mock.patch("streamlit_folium.st_folium", return_value=_rectangle(b)):
        at.run()
        at.switch_page("run.py").run()
        at.multiselect(key="run-models").set_value(["toy-pointwise"]).run()
        at.selectbox(key="run-tile").set_value(256)
        _run_and_wait(at)
        for p in ("metrics.py", "map.py"):
            at.switch_page(p).run()
            assert not at.exception, at.exception
        assert at.session_state["rsviz.scene"].key == s.key and at.session_state["rsviz.bounds"] is not None
        url = dict(at.query_params)
        shown = {m.label: m.value for m in at.switch_page("metrics.py").run().metric}
    assert url["scene"] == s.key and len(url["runs"]) == 16
    with mock.patch("streamlit_folium.st_folium", return_value={}):
        again = _app()
        for k, v in url.items():
            again.query_params[k] = v
        again.switch_page("metrics.py").run()
    assert not again.exception, again.exception
    assert again.session_state["rsviz.scene"].key == s.key
    assert {m.label: m.value for m in again.metric} == shown and "IoU" in shown


def test_two_sessions_do_not_see_each_others_scene_or_runs(mirror, scene_dir):
    with mock.patch("streamlit_folium.st_folium", return_value={}):
        a, b = _app().run(), _app().run()
        for at, name in ((a, "image.tif"), (b, "one_band.tif")):
            at.switch_page("map.py").run()
            at.radio(key="map-source").set_value("Local path").run()
            at.text_input(key="map-path").set_value(str(scene_dir / name))
            at.button(key="map-open-path").click().run()
        a.switch_page("run.py").run()
        a.multiselect(key="run-models").set_value(["toy-pointwise"]).run()
        _run_and_wait(a)
        b.switch_page("run.py").run()
    assert a.session_state["rsviz.scene"].name == "image.tif" and b.session_state["rsviz.scene"].name == "one_band.tif"
    assert len(a.session_state["rsviz.runs"]) == 1 and b.session_state["rsviz.runs"] == []
    assert "runs" in a.query_params and "runs" not in b.query_params


def test_whole_scene_stays_chosen_although_the_map_still_returns_the_last_rectangle(mirror):
    with mock.patch("streamlit_folium.st_folium", return_value=_rectangle(_chip_bounds())):
        at = _app().run()
        at.switch_page("map.py").run()
        at.selectbox(key="map-scene").set_value(SCENE).run()
        at.run()
        assert at.session_state["rsviz.bounds"] is not None
        at.button(key="map-whole").click().run()
        at.run()
    assert at.session_state["rsviz.bounds"] is None
    assert any("(whole scene)" in s.value for s in at.success)


def test_a_broken_model_folder_is_named_and_the_others_stay_usable(mirror, tmp_path, monkeypatch):
    import os
    import shutil

    from rsviz.models.api import model_dir

    broken = tmp_path / "extra" / "broken-model"
    shutil.copytree(model_dir("toy-pointwise"), broken)
    (broken / "card.json").write_text('{"name": "broken-model", "task": ')  # cut off
    monkeypatch.setenv(
        "RSVIZ_MODELS_PATH", os.pathsep.join([os.environ.get("RSVIZ_MODELS_PATH", ""), str(broken.parent)])
    )
    with mock.patch("streamlit_folium.st_folium", return_value={}):
        at = _app().run()
        at.switch_page("run.py").run()
    assert not at.exception, at.exception
    assert any("broken-model" in w.value for w in at.warning)
    assert "toy-pointwise" in at.multiselect(key="run-models").options


def test_a_prediction_made_elsewhere_becomes_a_run_on_every_page(mirror, tmp_path):
    """Run page: a class-id raster given by path becomes a run; Metrics scores it (the ground truth itself: IoU 1),
    Compare and Export take it; a raster with ids outside the legend is refused in words."""
    import numpy as np
    import rasterio

    from rsviz.datasets import scenes
    from rsviz.workspace import open_sample

    sc = open_sample([r for r in scenes("banepa-buildings") if r.id == "OAM-386694-220245-19"][0])
    with rasterio.open(sc.targets["buildings"]) as ds:
        gt, prof = ds.read(1), ds.profile
    good, bad = tmp_path / "theirs.tif", tmp_path / "bad.tif"
    for path, data in ((good, gt), (bad, np.where(gt == 1, 9, gt).astype(np.uint8))):
        with rasterio.open(path, "w", **(prof | {"nodata": 255})) as out:
            out.write(data, 1)
    with mock.patch("streamlit_folium.st_folium", return_value={}):
        at = _app().run()
        at.switch_page("map.py").run()
        at.selectbox(key="map-scene").set_value(SCENE).run()
        at.switch_page("run.py").run()
        at.text_input(key="ext-path").set_value(str(bad))
        at.button(key="FormSubmitter:external-Add as a run").click().run()
        assert not at.exception, at.exception
        assert any("class ids [9] are not in the class table" in e.value for e in at.error), [e.value for e in at.error]
        at.text_input(key="ext-path").set_value(str(good))
        at.text_input(key="ext-name").set_value("ground truth as a prediction")
        at.button(key="FormSubmitter:external-Add as a run").click().run()
        assert not at.exception, at.exception
        assert any("external:ground truth as a prediction" in s.value for s in at.success), [
            s.value for s in at.success
        ]
        assert "external:ground truth as a prediction" in at.dataframe[0].value["model"].tolist()
        at.switch_page("metrics.py").run()
        assert not at.exception, at.exception
        shown = {m.label: m.value for m in at.metric}
        assert shown["IoU"] == "1.000"
        for page in ("compare.py", "export.py"):
            at.switch_page(page).run()
            assert not at.exception, at.exception
            assert not at.error, [e.value for e in at.error]
