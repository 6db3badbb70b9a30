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
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def test_full_session_map_run_compare_metrics_export(mirror):
    b = _chip_bounds()
    with mock.patch("streamlit_folium.st_folium", return_value=_rectangle(b)):
        at = _app().run()
        assert not at.exception
        at.switch_page("pages/map.py").run()
        assert not at.exception, at.exception
        at.selectbox(key="map-scene").set_value(SCENE).run()
        assert not at.exception
        assert any("256 × 256 px" in s.value for s in at.success), [s.value for s in at.success]
        at.switch_page("pages/run.py").run()
        assert not at.exception
        at.multiselect(key="run-models").set_value(["toy-pointwise"]).run()
        at.selectbox(key="run-tile").set_value(256)
        at.button(key="run-go").click().run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        assert len(at.dataframe) == 1
        at.switch_page("pages/compare.py").run()
        assert not at.exception, at.exception
        at.switch_page("pages/metrics.py").run()
        assert not at.exception, at.exception
        shown = {m.label: m.value for m in at.metric}
        assert "IoU" in shown and "OA" in shown and "object F1 @ IoU 0.5" in shown
        # the IoU shown equals the library's own computation for that extent
        from rsviz.app.workspace import crop, resolve_extent, scene_from_sample
        from rsviz.datasets import scenes
        from rsviz.inference import predict
        from rsviz.metrics import binary_metrics
        from rsviz.models.api import load_model
        from rsviz.raster import RasterData

        sc = scene_from_sample([r for r in scenes("banepa-buildings") if r.id == "OAM-386694-220245-19"][0].load())
        sub = crop(sc, resolve_extent(sc, b))
        p = predict(
            load_model("toy-pointwise", "cpu"),
            RasterData(sub.image, sub.transform, sub.crs, sub.valid),
            tile=256,
            overlap=0.25,
        )
        iou = binary_metrics(p.heads["classes"] == 1, sub.targets["buildings"], sub.valid)["iou"]
        assert shown["IoU"] == f"{iou:.3f}"
        at.switch_page("pages/export.py").run()
        assert not at.exception, at.exception
        labels = [d.label for d in at.get("download_button")]
        assert any("COG" in lab for lab in labels) and any("HTML" in lab for lab in labels) and "eval.json" in labels


def test_bad_inputs_give_clear_errors_not_tracebacks(mirror, scene_dir):
    with mock.patch("streamlit_folium.st_folium", return_value={}):
        at = _app().run()
        at.switch_page("pages/map.py").run()
        at.radio(key="map-source").set_value("Local path").run()
        at.text_input(key="map-path").set_value(str(scene_dir / "not_a_raster.tif"))
        at.button(key="map-open-path").click().run()
        assert not at.exception
        assert any("not a raster" in e.value for e in at.error)
        # a 1-band image for an RGB model
        at.text_input(key="map-path").set_value(str(scene_dir / "one_band.tif"))
        at.button(key="map-open-path").click().run()
        assert not at.exception
        at.switch_page("pages/run.py").run()
        at.multiselect(key="run-models").set_value(["toy-pointwise"]).run()
        at.button(key="run-go").click().run()
        assert not at.exception
        assert any("expects 3 bands" in e.value for e in at.error)


def test_extent_outside_raster_resets_with_message(mirror):
    with mock.patch("streamlit_folium.st_folium", return_value=_rectangle((10.0, 10.0, 10.001, 10.001))):
        at = _app().run()
        at.switch_page("pages/map.py").run()
        at.selectbox(key="map-scene").set_value(SCENE).run()
        assert not at.exception
        assert any("does not overlap" in e.value for e in at.error)
        assert any("(whole scene)" in s.value for s in at.success)


def test_scene_classification_page(mirror):
    at = _app().run()
    at.switch_page("pages/scene_classification.py").run()
    assert not at.exception, at.exception
    assert any("True labels" in m.value for m in at.markdown)


def test_pages_without_a_scene_point_to_the_map():
    at = _app().run()
    for p in ("pages/run.py", "pages/compare.py", "pages/metrics.py", "pages/export.py"):
        at.switch_page(p).run()
        assert not at.exception, (p, at.exception)
        assert any("Map" in i.value for i in at.info), p


def test_road_metrics_show_the_apls_graphs(mirror):
    """A bundled road model on an ETH tile: the Metrics page shows APLS and draws both road graphs."""
    with mock.patch("streamlit_folium.st_folium", return_value=None):
        at = _app().run()
        at.switch_page("pages/map.py").run()
        at.selectbox(key="map-scene").set_value("eth-roads / satImage_091 (test)").run()
        assert not at.exception, at.exception
        at.switch_page("pages/run.py").run()
        at.multiselect(key="run-models").set_value(["roads-pplinknet"]).run()
        at.button(key="run-go").click().run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        at.switch_page("pages/metrics.py").run()
        assert not at.exception, at.exception
        assert {"APLS (4 m buffer)", "relaxed F1 (ρ 3 px)"} <= {m.label for m in at.metric}  # ETH: measured GSD
        assert any("APLS road graphs" in h.value for h in at.subheader)
        assert len(at.image) == 3  # two confusion matrices and the graph figure (st.pyplot renders images)
