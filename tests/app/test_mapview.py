import re

import pytest

from rsviz.app import mapview


def _links(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_map_html_loads_only_local_assets():
    m = mapview.make_map((27.6, 85.5), 17, basemap=False, draw=True)
    links = _links(m.get_root().render())
    assert links, "map renders no asset links"
    assert all(link.startswith("/rsviz/assets/") for link in links), links
    names = {link.rsplit("/", 1)[-1] for link in links}
    assert {"leaflet.js", "leaflet.css", "leaflet.draw.js", "leaflet.draw.css"} <= names


def test_every_localized_asset_exists_after_npm_ci():
    if not mapview.assets_installed():
        pytest.skip("run `npm ci --prefix static` first")
    for rel in mapview.LOCAL_ASSETS.values():
        assert (mapview.STATIC_DIR / "node_modules" / rel).stat().st_size > 1000


def test_tile_layers_and_assets_live_below_the_base_path():
    from rsviz.app.layers import MapLayer
    from rsviz.tiles import LayerKind

    m = mapview.make_map((27.6, 85.5), 17, basemap=False, draw=False, base_url="/qa/")
    lyr = MapLayer("prediction", "0123456789abcdef", LayerKind.CLASSES, pixelated=True)
    mapview.add_tile_layer(m, lyr, "/qa/", bounds=(85.5, 27.6, 85.6, 27.7), max_zoom=22)
    html = m.get_root().render()
    assert "/qa/rsviz/tiles/0123456789abcdef/{z}/{x}/{y}.png" in html
    assert all(link.startswith("/qa/rsviz/assets/") for link in _links(html)), _links(html)
    assert "rsviz-pixelated" in html and "image-rendering:pixelated" in html


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
