"""AppTest of the Sentinel-2 page: the assembled BigEarthNet scene, a drawn extent, three variants, scores."""

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

pytestmark = [pytest.mark.realdata]
ROOT = Path(__file__).resolve().parents[2]


def _map_result(bounds, click=None):
    w, s, e, n = bounds
    return {
        "last_active_drawing": {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [w, n], [e, n], [e, s], [w, s]]]},
        },
        "all_drawings": [],
        "last_clicked": click,
    }


def test_sentinel2_page_runs_the_variants_over_a_drawn_extent(mirror):
    from rsviz.datasets.bigearthnet import bigearthnet_scenes
    from rsviz.geo import WGS84, reproject_bounds
    from rsviz.inference.classify import classify_patch
    from rsviz.sentinel2.sample import bigearthnet_scene

    rp = bigearthnet_scene().patches[0]
    w, s, e, n = rp.bounds
    ext = reproject_bounds((w - 1000, s + 100, e - 100, n - 100), rp.crs, WGS84)  # this patch and its west neighbour
    cw, cs, ce, cn = reproject_bounds(rp.bounds, rp.crs, WGS84)
    click = {"lat": (cs + cn) / 2, "lng": (cw + ce) / 2}
    variants = ["s2-resize", "s2-intermediate", "s2-late"]
    with (
        mock.patch("streamlit_folium.st_folium", return_value=_map_result(ext, click)),
        mock.patch("streamlit.iframe") as iframe,
    ):
        at = AppTest.from_file(str(ROOT / "pages" / "sentinel2.py"), default_timeout=60).run()
        assert not at.exception, at.exception
        assert not at.error, [x.value for x in at.error]
        at.multiselect(key="s2-models").set_value(variants).run()
        at.button(key="s2-run-go").click().run()
        assert not at.exception, at.exception
        assert not at.error, [x.value for x in at.error]
        assert any("1 × 2 patches" in x.value and "1 predicted" in x.value for x in at.success), [
            x.value for x in at.success
        ]
        tables = [d.value for d in at.dataframe]  # AppTest keeps no dataframe keys
        rows = next(t for t in tables if "label" in t.columns and "s2-late" in t.columns)
        want = {r.id: r for r in bigearthnet_scenes()}[rp.id].load()
        for v in variants:
            got = dict(zip(rows["label"], rows[v]))
            probs = classify_patch(v, want)
            from rsviz.datasets.bigearthnet import LABELS_19

            np.testing.assert_allclose([got[lab] for lab in LABELS_19], probs, atol=1e-5)
        # the variants side by side: one linked map per top-label layer and one of their disagreement
        page = iframe.call_args.args[0]
        assert page.count("class='map'") == 4 and "L.Map.Sync.js" in page and "a.sync(b)" in page
        assert all(f"{v}: top label" in page for v in variants) and "disagreement" in page
        scores = next(t for t in tables if "micro F1" in t.columns)
        assert list(scores["model"]) == [*variants, "majority baseline"]
        assert (scores["patches"] == 1).all()
        # a user mistake: a path that is no scene is an error message, not a traceback
        at.radio(key="s2-source").set_value("Local path").run()
        at.text_input(key="s2-path").set_value(str(ROOT / "README.md")).run()
        assert not at.exception
        assert at.error and "README.md" in at.error[0].value


def test_a_reload_reopens_the_run_from_the_cache_without_predicting(mirror):
    from rsviz.geo import WGS84, reproject_bounds
    from rsviz.sentinel2.runs import QUERY_KEY
    from rsviz.sentinel2.sample import bigearthnet_scene

    rp = bigearthnet_scene().patches[0]
    w, s, e, n = rp.bounds
    ext = reproject_bounds((w - 1000, s + 100, e - 100, n - 100), rp.crs, WGS84)
    with mock.patch("streamlit_folium.st_folium", return_value=_map_result(ext)):
        at = AppTest.from_file(str(ROOT / "pages" / "sentinel2.py"), default_timeout=60).run()
        at.multiselect(key="s2-models").set_value(["s2-resize", "s2-late"]).run()
        at.radio(key="s2-layout").set_value("per-band folder (10 / 20 / 60 m files)").run()
        at.button(key="s2-run-go").click().run()
        assert not at.exception, at.exception
        first = [x.value for x in at.success if "patches of 1.2 km" in x.value]
        key = at.query_params[QUERY_KEY]
        key = key[0] if isinstance(key, list) else key
        assert first and len(key) == 16
    # a new session (the reload) with only the URL: the same run, and no network is run
    with (
        mock.patch("streamlit_folium.st_folium", return_value={}),
        mock.patch("rsviz.models.fusion.inference_net", side_effect=AssertionError("predicted again")),
    ):
        again = AppTest.from_file(str(ROOT / "pages" / "sentinel2.py"), default_timeout=60)
        again.query_params[QUERY_KEY] = key
        again.run()
        assert not again.exception, again.exception
        assert [x.value for x in again.success if "patches of 1.2 km" in x.value] == first
        assert again.multiselect(key="s2-models").value == ["s2-resize", "s2-late"]
        assert again.radio(key="s2-layout").value.startswith("per-band folder")
        unknown = AppTest.from_file(str(ROOT / "pages" / "sentinel2.py"), default_timeout=60)
        unknown.query_params[QUERY_KEY] = "0123456789abcdef"
        unknown.run()
        assert not unknown.exception and any("could not be reopened" in w.value for w in unknown.warning)
