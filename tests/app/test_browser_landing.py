"""Landing page in headless Chromium with no internet: the map renders the scene as the app's own XYZ tiles.

Screenshot: ``tests/artifacts/landing.png`` (ignored by git).
"""

import os

import pytest

from tests.streamlit_server import ROOT, block_internet, streamlit_app

pytestmark = [pytest.mark.browser, pytest.mark.realdata]
ART = ROOT / "tests" / "artifacts"


#: Pages in the navigation (each with a Material icon), as pages/dashboard.py lists them.
PAGE_COUNT = (ROOT / "pages" / "dashboard.py").read_text().count("st.Page(")


def test_landing_map_renders_offline_with_tiles_from_the_app(browser, mirror):
    ART.mkdir(exist_ok=True)
    with streamlit_app({"RSVIZ_DATA_DIR": os.environ["RSVIZ_DATA_DIR"]}) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        blocked = block_internet(page, url)
        page.goto(url, wait_until="domcontentloaded")
        frame_el = page.wait_for_selector("iframe[title*='st_folium']", timeout=90_000)
        frame = frame_el.content_frame()
        frame.wait_for_selector(".leaflet-container", timeout=60_000)
        tile = frame.wait_for_selector("img.leaflet-tile-loaded", state="attached", timeout=60_000)
        page.wait_for_timeout(1500)
        box = tile.bounding_box()
        assert box and box["width"] >= 200 and box["height"] >= 200
        # the imagery is XYZ tiles of this app's own tile route, decoded by the browser
        srcs = frame.eval_on_selector_all("img.leaflet-tile-loaded", "els => els.map(e => e.src)")
        assert srcs and all("/rsviz/tiles/" in u for u in srcs), srcs[:3]
        assert frame.evaluate(
            "[...document.querySelectorAll('img.leaflet-tile-loaded')].every(e => e.naturalWidth === 256)"
        )
        assert frame.evaluate("typeof L !== 'undefined'")  # the landing map has no draw tool (Map page has)
        # navigation icons come from Streamlit's own Material Symbols font, not an emoji font the machine may lack
        icons = page.locator('[data-testid="stSidebarNav"] [data-testid="stIconMaterial"]')
        assert icons.count() == PAGE_COUNT
        assert page.evaluate("""document.fonts.check("24px 'Material Symbols Rounded'")""")
        page.screenshot(path=str(ART / "landing.png"), full_page=True)
        # nothing the map needs came from the internet
        assert not [u for u in blocked if "leaflet" in u or "jquery" in u], blocked
