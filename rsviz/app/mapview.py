"""Interactive map building (leafmap's folium backend) that works offline.

Folium loads Leaflet and its plugins from CDNs. rsviz serves them from this machine
instead: ``npm ci --prefix static`` installs them under ``static/node_modules`` and
the app's own asset route (:func:`rsviz.app.routes.asset_routes`) publishes them at
``/rsviz/assets/`` below the base path. :func:`localize_assets` rewrites each map element's JS/CSS links
to those local URLs and drops the ones the map does not need (Bootstrap, icon fonts).

Imagery, ground truth and predictions are XYZ tile layers rendered by this app's own tile route
(:mod:`rsviz.app.routes`, rio-tiler), so they show at native resolution and without any basemap.
"""

from __future__ import annotations

import logging
from typing import Sequence

import folium

from rsviz.resources import static_dir
from rsviz.types import BBox

log = logging.getLogger(__name__)

STATIC_DIR = static_dir()
#: Where :func:`rsviz.app.routes.asset_routes` serves ``static/node_modules`` (below the base path).
STATIC_URL = "rsviz/assets"

#: folium asset name -> path below ``static/node_modules``.
LOCAL_ASSETS = {
    "leaflet": "leaflet/dist/leaflet.js",
    "leaflet_css": "leaflet/dist/leaflet.css",
    "jquery": "jquery/dist/jquery.min.js",
    "leaflet_draw_js": "leaflet-draw/dist/leaflet.draw.js",
    "leaflet_draw_css": "leaflet-draw/dist/leaflet.draw.css",
}


def assets_installed() -> bool:
    """True when the local Leaflet assets are installed (``npm ci --prefix static``)."""
    return all((STATIC_DIR / "node_modules" / p).is_file() for p in LOCAL_ASSETS.values())


def _walk(element):
    yield element
    for child in getattr(element, "_children", {}).values():
        yield from _walk(child)


def localize_assets(m: folium.Map, base_url: str = "/") -> folium.Map:
    """Point every JS/CSS link of a folium map at the locally served copies.

    Links with a local copy are rewritten to ``{base_url}/rsviz/assets/...``;
    links without one (Bootstrap, Font Awesome, awesome-markers) are dropped, since
    rsviz maps do not use them. Changes are made on the element instances only.

    Args:
        m: The map (modified in place).
        base_url: Server base path (Streamlit ``server.baseUrlPath``), ``/`` by default.

    Returns:
        ``m``.
    """
    from rsviz.app.routes import base_prefix

    prefix = base_prefix(base_url) + "/" + STATIC_URL
    for el in _walk(m):
        for attr in ("default_js", "default_css"):
            links = getattr(el, attr, None)
            if not links:
                continue
            kept = []
            for name, url in links:
                if name in LOCAL_ASSETS:
                    kept.append((name, f"{prefix}/{LOCAL_ASSETS[name]}"))
                elif url.startswith(("http://", "https://")):
                    log.debug("dropping CDN asset %s (%s): not served locally", name, url)
                else:
                    kept.append((name, url))
            setattr(el, attr, kept)
    return m


def make_map(
    center: tuple[float, float] = (0.0, 0.0),
    zoom: int = 17,
    *,
    basemap: bool = True,
    draw: bool = True,
    height: int = 600,
    max_zoom: int = 24,
    base_url: str = "",
) -> folium.Map:
    """A leafmap (folium backend) map with local assets and an optional rectangle draw tool.

    Args:
        center: ``(lat, lon)`` EPSG:4326.
        zoom: Initial web-map zoom.
        basemap: Add OpenStreetMap tiles (fail quietly offline; overlays still show).
        draw: Add the Leaflet.draw rectangle tool (polygons, lines, markers disabled).
        height: Map height in pixels.
        max_zoom: Deepest zoom (from the layers' GSD).
        base_url: Streamlit ``server.baseUrlPath`` the local assets are served below.

    Returns:
        The map, with JS/CSS links pointing at the local static server.
    """
    import leafmap.foliumap as leafmap

    m = leafmap.Map(
        center=list(center),
        zoom=zoom,
        height=f"{height}px",
        draw_control=False,
        measure_control=False,
        fullscreen_control=False,
        attribution_control=True,
        search_control=False,
        scale_control=False,
        toolbar_control=False,
        layers_control=False,
        locate_control=False,
        minimap_control=False,
        max_zoom=max_zoom,
    )
    for key, child in list(m._children.items()):  # leafmap adds a default basemap; we decide ourselves
        if isinstance(child, folium.TileLayer):
            del m._children[key]
    if basemap:
        folium.TileLayer(
            "OpenStreetMap", name="OpenStreetMap basemap", max_zoom=max_zoom, max_native_zoom=19, control=True
        ).add_to(m)
    if draw:
        from folium.plugins import Draw

        Draw(
            export=False,
            draw_options={
                "polyline": False,
                "polygon": False,
                "circle": False,
                "marker": False,
                "circlemarker": False,
                "rectangle": True,
            },
            edit_options={"edit": False},
        ).add_to(m)
    return localize_assets(m, base_url or "/")


def tile_url(layer_id: str, base_url: str = "") -> str:
    """XYZ URL template of a registered layer on this server (:func:`rsviz.app.routes.tile_url_template`)."""
    from rsviz.app.routes import tile_url_template

    return tile_url_template(layer_id, base_url)


#: CSS that draws class layers without smoothing beyond native resolution (class ids stay crisp).
PIXELATED_CSS = (
    "<style>.rsviz-pixelated img.leaflet-tile{image-rendering:pixelated;image-rendering:crisp-edges}</style>"
)


def add_tile_layer(
    m: folium.Map,
    layer,
    base_url: str = "",
    *,
    bounds: BBox | None = None,
    max_zoom: int = 24,
    max_native_zoom: int | None = None,
    opacity: float | None = None,
) -> folium.TileLayer:
    """Add a registered layer (:class:`rsviz.app.layers.MapLayer`) as an XYZ tile layer served by this app.

    Args:
        m: The map.
        layer: The :class:`~rsviz.app.layers.MapLayer`.
        base_url: Streamlit ``server.baseUrlPath``.
        bounds: EPSG:4326 ``(west, south, east, north)``: no tile is requested outside it.
        max_zoom: Deepest zoom the layer shows.
        max_native_zoom: Deepest zoom the server renders (beyond it Leaflet scales tiles up).
        opacity: 0-1 (default: the layer's).

    Returns:
        The folium layer.
    """
    kw = {}
    if bounds is not None:
        w, s, e, n = bounds
        kw["bounds"] = [[s, w], [n, e]]
    if layer.pixelated:
        kw["className"] = "rsviz-pixelated"
        m.get_root().header.add_child(folium.Element(PIXELATED_CSS), name="rsviz-pixelated-css")
    t = folium.TileLayer(
        tiles=tile_url(layer.id, base_url),
        attr="rsviz",
        name=layer.name,
        overlay=True,
        control=True,
        show=layer.show,
        opacity=layer.opacity if opacity is None else opacity,
        max_zoom=max_zoom,
        max_native_zoom=max_native_zoom or max_zoom,
        **kw,
    )
    t.add_to(m)
    return t


def add_geojson_outline(m: folium.Map, path, name: str) -> None:
    """Outline the polygons of a GeoJSON file (e.g. the train / val / test areas), coloured by ``split``."""
    import json

    colours = {"train": "#f58231", "val": "#911eb4", "test": "#3cb44b", "predict": "#a9a9a9"}
    gj = json.loads(open(path, encoding="utf-8").read())
    folium.GeoJson(
        gj,
        name=name,
        show=True,
        style_function=lambda f: {
            "color": colours.get(f["properties"].get("split"), "#ffffff"),
            "weight": 1.5,
            "fill": False,
            "dashArray": "4 4",
        },
        tooltip=folium.GeoJsonTooltip(
            fields=[k for k in ("split", "id") if k in (gj["features"][0]["properties"] if gj.get("features") else {})]
        )
        if gj.get("features")
        else None,
    ).add_to(m)


def view_of(bounds: BBox, width_px: int = 800, height_px: int = 520) -> tuple[tuple[float, float], int]:
    """``((lat, lon), zoom)`` of the web-map view that holds EPSG:4326 ``(west, south, east, north)`` in a
    ``width_px x height_px`` map: the initial view, so the map opens there even before (or without) Leaflet's
    ``fitBounds``."""
    import math

    w, s, e, n = bounds

    def merc_y(lat: float) -> float:
        lat = max(min(lat, 85.0), -85.0)
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    dx = max(e - w, 1e-9) / 360.0
    dy = max(merc_y(n) - merc_y(s), 1e-9) / (2 * math.pi)
    zoom = int(max(0, min(22, math.floor(min(math.log2(width_px / 256 / dx), math.log2(height_px / 256 / dy))))))
    return ((s + n) / 2, (w + e) / 2), zoom


def fit_bounds(m: folium.Map, bounds: BBox) -> None:
    """Zoom the map to EPSG:4326 ``(west, south, east, north)``."""
    w, s, e, n = bounds
    m.fit_bounds([[s, w], [n, e]])


def add_rectangle(m: folium.Map, bounds: BBox, name: str = "extent", color: str = "#ffcc00") -> None:
    """Outline EPSG:4326 bounds on the map."""
    w, s, e, n = bounds
    folium.Rectangle([[s, w], [n, e]], color=color, weight=2, fill=False, name=name).add_to(m)


def drawn_bounds(st_folium_result: dict | None) -> BBox | None:
    """EPSG:4326 bounds of the last rectangle drawn with Leaflet.draw, from an ``st_folium`` result.

    Returns:
        ``(west, south, east, north)`` or None if nothing was drawn.
    """
    if not st_folium_result:
        return None
    d = st_folium_result.get("last_active_drawing") or {}
    geom = d.get("geometry") if isinstance(d, dict) else None
    if not geom:
        drawings = st_folium_result.get("all_drawings") or []
        geom = drawings[-1].get("geometry") if drawings else None
    if not geom or geom.get("type") != "Polygon":
        return None
    xs = [p[0] for p in geom["coordinates"][0]]
    ys = [p[1] for p in geom["coordinates"][0]]
    return (min(xs), min(ys), max(xs), max(ys))


def legend_html(classes: Sequence, title: str = "Legend") -> str:
    """Small HTML legend (colour swatches and names) for Streamlit markdown."""
    from html import escape

    rows = "".join(
        f'<div><span style="display:inline-block;width:12px;height:12px;background:{c.hex};'
        f'border:1px solid #444;margin-right:6px"></span>{escape(c.name)}</div>'
        for c in classes
    )
    return f'<div style="font-size:0.85rem"><b>{escape(title)}</b>{rows}</div>'


def favicon():
    """A 32 x 32 px page icon drawn in memory (a PIL image, inlined by Streamlit: no request leaves the app)."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[:32, :32]
    img = np.zeros((32, 32, 4), np.uint8)
    img[..., :3], img[..., 3] = (38, 38, 48), 255
    ring = np.abs(np.hypot(yy - 15.5, xx - 15.5) - 11) < 2.2
    img[ring, :3] = (230, 25, 75)
    img[(np.abs(yy - 15.5) < 3) & (np.abs(xx - 15.5) < 3), :3] = (255, 255, 255)
    return Image.fromarray(img)
