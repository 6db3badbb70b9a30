"""Full-resolution comparison maps: a swipe between two layers and a grid of linked maps.

Both are small self-contained Leaflet pages (shown with ``streamlit.components.v1.html``) whose
scripts are the npm copies under ``static/node_modules`` (Leaflet, ``leaflet.sync`` for linked pan and
zoom, ``leaflet-side-by-side`` for the swipe) and whose tiles come from this app's tile route, so they
work offline and at any zoom down to (and beyond) native resolution.

``leaflet-side-by-side`` ships as a CommonJS module (``require('leaflet')`` and two CSS requires): the
page defines a two-line ``require`` that hands it the global ``L`` and loads its CSS with ``<link>``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from rsviz.app.layers import MapLayer, max_zoom
from rsviz.app.mapview import PIXELATED_CSS, STATIC_URL, tile_url
from rsviz.app.routes import base_prefix
from rsviz.types import BBox

#: Scripts and styles of the comparison pages, below ``static/node_modules``.
ASSETS = {
    "leaflet_js": "leaflet/dist/leaflet.js",
    "leaflet_css": "leaflet/dist/leaflet.css",
    "sync_js": "leaflet.sync/L.Map.Sync.js",
    "sbs_js": "leaflet-side-by-side/index.js",
    "sbs_layout_css": "leaflet-side-by-side/layout.css",
    "sbs_range_css": "leaflet-side-by-side/range.css",
}


def _static(base_url: str, rel: str) -> str:
    return base_prefix(base_url) + "/" + STATIC_URL + "/" + rel


def _layer_js(layer: MapLayer, base_url: str, bounds: BBox) -> dict[str, object]:
    native, mz = max_zoom(layer)
    w, s, e, n = bounds
    return {
        "url": tile_url(layer.id, base_url),
        "name": layer.name,
        "opacity": layer.opacity,
        "maxZoom": mz,
        "maxNativeZoom": native,
        "className": "rsviz-pixelated" if layer.pixelated else "",
        "bounds": [[s, w], [n, e]],
    }


def _head(base_url: str, swipe: bool) -> str:
    a = {k: _static(base_url, v) for k, v in ASSETS.items()}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<link rel='stylesheet' href='{a['leaflet_css']}'>",
        f"<script src='{a['leaflet_js']}'></script>",
        f"<script src='{a['sync_js']}'></script>",
        PIXELATED_CSS,
        "<style>html,body{margin:0;background:#111;color:#eee;font:12px sans-serif}"
        ".grid{display:grid;gap:4px}.cell{position:relative}.title{position:absolute;z-index:1000;left:50px;"
        "top:6px;background:rgba(0,0,0,.6);padding:2px 6px;border-radius:3px}.map{width:100%;height:100%}</style>",
    ]
    if swipe:
        parts += [
            f"<link rel='stylesheet' href='{a['sbs_layout_css']}'>",
            f"<link rel='stylesheet' href='{a['sbs_range_css']}'>",
            "<script>var module={exports:{}};var exports=module.exports;"
            "function require(n){return n==='leaflet'?L:{};}</script>",
            f"<script src='{a['sbs_js']}'></script>",
        ]
    return "".join(parts) + "</head>"


def linked_maps_html(
    layers: Sequence[MapLayer],
    base: MapLayer | None,
    bounds: BBox,
    *,
    view: BBox | None = None,
    base_url: str = "",
    columns: int = 2,
    height: int = 320,
) -> str:
    """A grid of maps, one per layer, with pan and zoom linked (``leaflet.sync``).

    Args:
        layers: One map each (e.g. ground truth, prediction, errors, extra heads).
        base: Drawn under every layer (the imagery), or None.
        bounds: EPSG:4326 bounds of the scene (no tiles are asked for outside it).
        view: EPSG:4326 bounds the maps open on (default ``bounds``).
        base_url: Streamlit ``server.baseUrlPath``.
        columns: Maps per row.
        height: Height of one map, pixels.

    Returns:
        The HTML page.
    """
    cells = "".join(
        f"<div class='cell' style='height:{height}px'><div class='title'>{html.escape(lyr.name)}</div>"
        f"<div id='m{i}' class='map'></div></div>"
        for i, lyr in enumerate(layers)
    )
    spec = {
        "layers": [_layer_js(lyr, base_url, bounds) for lyr in layers],
        "base": _layer_js(base, base_url, bounds) if base is not None else None,
        "view": _view(view or bounds),
        "maxZoom": max([max_zoom(lyr)[1] for lyr in layers] + [18]),
    }
    script = (
        "<script>const S=" + _js(spec) + ";"
        "function tl(d){return L.tileLayer(d.url,{maxZoom:d.maxZoom,maxNativeZoom:d.maxNativeZoom,"
        "opacity:d.opacity,className:d.className,bounds:d.bounds});}"
        "const maps=S.layers.map((d,i)=>{const m=L.map('m'+i,{maxZoom:S.maxZoom,zoomSnap:0.5});"
        "if(S.base){tl(S.base).addTo(m);}tl(d).addTo(m);m.fitBounds(S.view);return m;});"
        "maps.forEach(a=>maps.forEach(b=>{if(a!==b){a.sync(b);}}));window.rsvizMaps=maps;</script>"
    )
    return (
        _head(base_url, swipe=False)
        + f"<body><div class='grid' style='grid-template-columns:repeat({columns},1fr)'>{cells}</div>{script}</body></html>"
    )


def _js(obj: object) -> str:
    """JSON for an inline script: ``</`` escaped so a layer name can never close the script."""
    return json.dumps(obj).replace("</", "<\\/")


def _view(b: BBox) -> list[list[float]]:
    w, s, e, n = b
    return [[s, w], [n, e]]


def swipe_html(
    left: MapLayer,
    right: MapLayer,
    base: MapLayer | None,
    bounds: BBox,
    *,
    view: BBox | None = None,
    base_url: str = "",
    height: int = 560,
) -> str:
    """One map with a swipe divider: ``left`` shows left of it, ``right`` right of it (``leaflet-side-by-side``).

    Args:
        left: Layer on the left of the divider.
        right: Layer on the right.
        base: Drawn under both (the imagery), or None.
        bounds: EPSG:4326 bounds of the scene.
        view: EPSG:4326 bounds the map opens on (default ``bounds``).
        base_url: Streamlit ``server.baseUrlPath``.
        height: Map height, pixels.

    Returns:
        The HTML page.
    """
    spec = {
        "left": _layer_js(left, base_url, bounds),
        "right": _layer_js(right, base_url, bounds),
        "base": _layer_js(base, base_url, bounds) if base is not None else None,
        "view": _view(view or bounds),
        "maxZoom": max(max_zoom(left)[1], max_zoom(right)[1]),
    }
    script = (
        "<script>const S=" + _js(spec) + ";"
        "function tl(d){return L.tileLayer(d.url,{maxZoom:d.maxZoom,maxNativeZoom:d.maxNativeZoom,"
        "opacity:d.opacity,className:d.className,bounds:d.bounds});}"
        # the view first: leaflet-side-by-side clips the layers' containers, which exist once the map has a view
        "const m=L.map('swipe',{maxZoom:S.maxZoom,zoomSnap:0.5});m.fitBounds(S.view);if(S.base){tl(S.base).addTo(m);}"
        "const a=tl(S.left).addTo(m),b=tl(S.right).addTo(m);window.rsvizSwipe=L.control.sideBySide(a,b).addTo(m);"
        "window.rsvizMap=m;</script>"
    )
    labels = (
        f"<div class='title'>left: {html.escape(left.name)}</div>"
        f"<div class='title' style='left:auto;right:10px'>right: {html.escape(right.name)}</div>"
    )
    return (
        _head(base_url, swipe=True)
        + f"<body><div class='cell' style='height:{height}px'>{labels}<div id='swipe' class='map'></div></div>"
        + script
        + "</body></html>"
    )


__all__ = ["ASSETS", "linked_maps_html", "swipe_html"]
