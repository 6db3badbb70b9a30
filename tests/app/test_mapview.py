import re

import numpy as np
import pytest
from affine import Affine

from rsviz.app import mapview
from rsviz.errors import CRSError


def _links(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_map_html_loads_only_local_assets():
    m = mapview.make_map((27.6, 85.5), 17, basemap=False, draw=True)
    links = _links(m.get_root().render())
    assert links, "map renders no asset links"
    assert all(link.startswith("/app/static/node_modules/") for link in links), links
    names = {link.rsplit("/", 1)[-1] for link in links}
    assert {"leaflet.js", "leaflet.css", "leaflet.draw.js", "leaflet.draw.css"} <= names


def test_every_localized_asset_exists_after_npm_ci():
    if not mapview.assets_installed():
        pytest.skip("run `npm ci --prefix static` first")
    for rel in mapview.LOCAL_ASSETS.values():
        assert (mapview.STATIC_DIR / "node_modules" / rel).stat().st_size > 1000


def test_overlay_is_reprojected_to_the_raster_footprint():
    # 100 x 200 px at 0.5 m in UTM 33N
    t = Affine(0.5, 0, 500000, 0, -0.5, 5000000)
    rgba = np.full((100, 200, 4), 255, np.uint8)
    warped, (w, s, e, n) = mapview.warp_to_web_mercator(np.moveaxis(rgba, -1, 0), t, "EPSG:32633")
    from rsviz.geo import reproject_bounds

    ew, es, ee, en = reproject_bounds((500000, 4999950, 500100, 5000000), "EPSG:32633", "EPSG:4326")
    assert (w, s, e, n) == pytest.approx((ew, es, ee, en), abs=2e-5)
    assert warped[3].mean() > 200  # mostly opaque


def test_overlay_needs_a_crs():
    with pytest.raises(CRSError, match="georeference"):
        mapview.warp_to_web_mercator(np.zeros((4, 4, 4), np.uint8), Affine.identity(), None)


def test_drawn_bounds_from_st_folium_result():
    res = {
        "last_active_drawing": {
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[85.51, 27.63], [85.51, 27.64], [85.52, 27.64], [85.52, 27.63], [85.51, 27.63]]],
            }
        }
    }
    assert mapview.drawn_bounds(res) == (85.51, 27.63, 85.52, 27.64)
    assert mapview.drawn_bounds({}) is None
