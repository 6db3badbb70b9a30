"""A 20,000 x 20,000 px COG in headless Chromium, behind a base path, with nothing but the app reachable:
open it by local path, zoom to native resolution and check that the tiles shown are the source pixels of
their window (not a resampled overview), swipe two layers on Compare, reload and find the same view.

Screenshots: ``tests/artifacts/big-*.png``.
"""

import io
import json
import os
import re
import urllib.request

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from tests import toy_models
from tests.streamlit_server import ROOT, block_internet, streamlit_app

pytestmark = [pytest.mark.browser, pytest.mark.realdata, pytest.mark.slow]
ART = ROOT / "tests" / "artifacts"
BASE = "qa"


@pytest.fixture(scope="module")
def big(tmp_path_factory, mirror):
    import runpy

    mod = runpy.run_path(str(ROOT / "tests" / "data" / "big_cog" / "data.py"))
    chip = mirror / "banepa-buildings" / "data" / "sample" / "train" / "oam" / "OAM-386690-220241-19.tif"
    d = tmp_path_factory.mktemp("big")
    return d, mod["build"](d, chip)


FIND_MAP = "Object.values(window).find(v => v && v instanceof L.Map)"


def _nav(page, name):
    page.locator('[data-testid="stSidebarNav"] a', has_text=name).first.click()
    page.wait_for_timeout(800)


def _map_frame(page):
    el = page.wait_for_selector("iframe[title*='st_folium']", timeout=90_000)
    frame = el.content_frame()
    frame.wait_for_selector("img.leaflet-tile-loaded", state="attached", timeout=90_000)
    return frame


def test_big_cog_native_tiles_swipe_and_reload(browser, big, tmp_path_factory):
    from PIL import Image

    from rsviz.workspace import RunOptions, open_path, resolve_extent, run_model

    folder, facts = big
    models = tmp_path_factory.mktemp("models")
    toy_models.register(models)
    ART.mkdir(exist_ok=True)
    env = {"RSVIZ_DATA_DIR": os.environ["RSVIZ_DATA_DIR"], "RSVIZ_MODELS_PATH": str(models)}
    with streamlit_app(env, base_path=BASE, timeout=120) as url:
        assert url.endswith("/" + BASE)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        blocked = block_internet(page, url)  # only URLs below the base path reach the app
        page.goto(url + "/map", wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=90_000)
        page.get_by_text("Local path", exact=True).click()
        page.get_by_label(re.compile("Raster path on this machine")).fill(str(folder / "big.tif"))
        page.get_by_label(re.compile("Ground truth path")).fill(str(folder / "big_gt.tif"))
        page.get_by_role("button", name="Open", exact=True).click()
        page.wait_for_function("() => document.body.innerText.includes('20,000 × 20,000 px')", timeout=120_000)
        frame = _map_frame(page)
        # zoom to native resolution (zoom 19: one source pixel per tile pixel) over the real imagery
        k = facts["core_off"] // 256 + 3
        x, y, z = facts["x0"] + k, facts["y0"] + k, facts["zoom"]
        lon = (x + 0.5) / 2**z * 360 - 180
        lat = np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * (y + 0.5) / 2**z))))
        frame.evaluate(f"() => {FIND_MAP}.setView([{lat}, {lon}], {z}, {{animate: false}})")
        page.wait_for_timeout(2500)
        page.screenshot(path=str(ART / "big-1-native.png"))
        srcs = frame.eval_on_selector_all("img.leaflet-tile-loaded", "els => els.map(e => e.src)")
        native = [u for u in srcs if re.search(rf"/{z}/\d+/\d+\.png$", u)]
        assert native, srcs[:5]
        assert all(f"/{BASE}/rsviz/tiles/" in u for u in native)
        checked = 0
        with rasterio.open(folder / "big.tif") as ds:
            for u in native:
                tx, ty = (int(v) for v in re.search(r"/(\d+)/(\d+)\.png$", u).groups())
                col, row = (tx - facts["x0"]) * 256, (ty - facts["y0"]) * 256
                c0, n = facts["core_off"], facts["core"]
                if not (c0 <= col < c0 + n - 256 and c0 <= row < c0 + n - 256):
                    continue
                with urllib.request.urlopen(u, timeout=30) as r:
                    img = np.asarray(Image.open(io.BytesIO(r.read())))
                if img.shape[:2] != (256, 256) or img[..., 3].min() < 255:
                    continue  # another layer's tile (ground truth is partly transparent)
                src = np.moveaxis(ds.read(window=Window(col, row, 256, 256)), 0, -1)
                if np.array_equal(img[..., :3], src):
                    checked += 1
        assert checked >= 4, f"only {checked} native tiles equal their source window"
        # an extent and a run, as the analyst would have made them, then Compare with the swipe
        s = open_path(folder / "big.tif", folder / "big_gt.tif")
        w, so, e, n = (float(v) for v in (lon - 0.0005, lat - 0.0005, lon + 0.0005, lat + 0.0005))
        ext = resolve_extent(s, (w, so, e, n))
        run, _ = run_model("toy-pointwise", s, ext, RunOptions(tile=256, overlap=0.25, device="cpu"))
        view = f"?scene={s.key}&bbox={w:.8f},{so:.8f},{e:.8f},{n:.8f}&runs={run.key}"
        page.goto(url + "/compare" + view, wait_until="domcontentloaded")
        sw = page.wait_for_selector("iframe[srcdoc*='leaflet-side-by-side'], iframe[title='st.iframe']", timeout=90_000)
        sframe = sw.content_frame()
        sframe.wait_for_selector("input.leaflet-sbs-range", state="attached", timeout=60_000)
        sframe.wait_for_selector("img.leaflet-tile-loaded", state="attached", timeout=60_000)
        clip0 = sframe.evaluate("() => rsvizSwipe._leftLayer.getContainer().style.clip")
        sframe.evaluate(
            "() => { const r = document.querySelector('input.leaflet-sbs-range'); r.value = 0.25;"
            " r.dispatchEvent(new Event('input')); }"
        )
        page.wait_for_timeout(300)
        clip1 = sframe.evaluate("() => rsvizSwipe._leftLayer.getContainer().style.clip")
        assert clip0 and clip1 and clip0 != clip1
        page.screenshot(path=str(ART / "big-2-swipe.png"))
        # reload: the same scene, extent and run, from the URL alone
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector("iframe[title='st.iframe']", timeout=90_000)
        _nav(page, "Run")
        page.wait_for_function("() => document.body.innerText.includes('Runs on this extent')", timeout=60_000)
        body = page.inner_text("body")
        size = f"extent {int(ext.window.width)} × {int(ext.window.height)} px"
        assert "Scene big.tif" in body and size in body, body[-600:]  # (the runs table is a canvas)
        assert f"scene={s.key}" in page.url and run.key in page.url
        page.screenshot(path=str(ART / "big-3-reloaded.png"))
        assert not blocked, blocked[:5]
        (ART / "big-scene.json").write_text(json.dumps({"native_tiles_equal_source": checked, "url": page.url}))
