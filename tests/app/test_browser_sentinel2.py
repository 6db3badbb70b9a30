"""The Sentinel-2 page in headless Chromium with no internet: a run over the BigEarthNet sample scene reopened from
its link, the imagery as the app's own XYZ tiles, and a patch's hover tooltip giving the same label probabilities
as the Scene classification page's model call (``classify_patch``) for that patch.

Screenshot: ``tests/artifacts/sentinel2.png`` (ignored by git).
"""

import os

import pytest

from tests.streamlit_server import ROOT, block_internet, streamlit_app

pytestmark = [pytest.mark.browser, pytest.mark.realdata]
ART = ROOT / "tests" / "artifacts"

#: The map object of a folium page (its variable name is random).
FIND_MAP = "Object.values(window).find(v => v instanceof L.Map)"


def test_sentinel2_run_shows_tiles_and_the_scene_classification_probabilities(browser, mirror, tmp_path, monkeypatch):
    from rsviz.datasets.bigearthnet import bigearthnet_scenes
    from rsviz.geo import WGS84, reproject_bounds
    from rsviz.inference.classify import classify_patch
    from rsviz.sentinel2.runs import QUERY_KEY, S2Run, save_run
    from rsviz.sentinel2.sample import bigearthnet_scene

    rp = bigearthnet_scene().patches[0]
    w, s, e, n = rp.bounds
    ext = reproject_bounds((w - 1000, s + 100, e - 100, n - 100), rp.crs, WGS84)  # this patch and its west one
    monkeypatch.setenv("RSVIZ_WORKSPACE", str(tmp_path / "ws"))
    key = save_run(S2Run("sample", "stack", "", "detect", ("s2-resize",), tuple(ext)))
    want = classify_patch("s2-resize", {r.id: r for r in bigearthnet_scenes()}[rp.id].load())
    from rsviz.datasets.bigearthnet import LABELS_19

    above = sorted(((float(v), lab) for lab, v in zip(LABELS_19, want) if v >= 0.5), reverse=True)
    expected = ", ".join(f"{lab} {v:.2f}" for v, lab in above)  # highest first, as the tooltip lists them
    assert expected, "the reference patch has no label above 0.5"
    cw, cs, ce, cn = reproject_bounds(rp.bounds, rp.crs, WGS84)
    ART.mkdir(exist_ok=True)
    env = {"RSVIZ_DATA_DIR": os.environ["RSVIZ_DATA_DIR"], "RSVIZ_WORKSPACE": str(tmp_path / "ws")}
    with streamlit_app(env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        blocked = block_internet(page, url)
        page.goto(f"{url}/sentinel2?{QUERY_KEY}={key}", wait_until="domcontentloaded")
        page.wait_for_selector("text=patches of 1.2 km", timeout=180_000)
        frame = page.wait_for_selector("iframe[title*='st_folium']", timeout=90_000).content_frame()
        frame.wait_for_selector(".leaflet-container", timeout=60_000)
        frame.wait_for_selector("img.leaflet-tile-loaded", state="attached", timeout=60_000)
        srcs = frame.eval_on_selector_all("img.leaflet-tile-loaded", "els => els.map(e => e.src)")
        assert srcs and all("/rsviz/tiles/" in u for u in srcs), srcs[:3]
        # hover the reference patch's centre: its tooltip lists the labels >= 0.5 with their probabilities
        pt = frame.evaluate(
            f"(() => {{ const m = {FIND_MAP}; const p = m.latLngToContainerPoint([{(cs + cn) / 2}, {(cw + ce) / 2}]);"
            " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; })()"
        )
        box = page.query_selector("iframe[title*='st_folium']").bounding_box()
        page.mouse.move(box["x"] + pt[0], box["y"] + pt[1])
        tip = frame.wait_for_selector(".leaflet-tooltip", timeout=30_000)
        text = tip.inner_text()
        assert "s2-resize: " + expected in text.replace("\n", " "), (text, expected)
        page.screenshot(path=str(ART / "sentinel2.png"), full_page=True)
        assert not [u for u in blocked if "leaflet" in u or "jquery" in u], blocked
