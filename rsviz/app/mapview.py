"""Interactive map building (leafmap's folium backend) that works offline.

Folium loads Leaflet and its plugins from CDNs. rsviz serves them from this machine
instead: ``npm ci --prefix static`` installs them under ``static/node_modules`` and
Streamlit's static file serving (``[server] enableStaticServing``) publishes that folder
at ``/app/static/``. :func:`localize_assets` rewrites each map element's JS/CSS links
to those local URLs and drops the ones the map does not need (Bootstrap, icon fonts).

Imagery is reprojected to EPSG:3857 (the map's CRS) and drawn as a PNG image overlay
with EPSG:4326 corner coordinates, so it shows without any basemap tiles.
"""

from __future__ import annotations

import base64
import io
import logging
from typing import Sequence

import folium
import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject

from rsviz.errors import CRSError
from rsviz.geo import WEB_MERCATOR, reproject_bounds
from rsviz.resources import static_dir
from rsviz.types import BBox

log = logging.getLogger(__name__)

STATIC_DIR = static_dir()
STATIC_URL = "app/static/node_modules"

#: folium asset name -> path below ``static/node_modules``.
LOCAL_ASSETS = {
    "leaflet": "leaflet/dist/leaflet.js",
    "leaflet_css": "leaflet/dist/leaflet.css",
    "jquery": "jquery/dist/jquery.min.js",
    "leaflet_draw_js": "leaflet-draw/dist/leaflet.draw.js",
    "leaflet_draw_css": "leaflet-draw/dist/leaflet.draw.css",
}
#: Max side of a display overlay, pixels (larger rasters are decimated for display only).
MAX_OVERLAY_SIDE = 2048


def assets_installed() -> bool:
    """True when the local Leaflet assets are installed (``npm ci --prefix static``)."""
    return all((STATIC_DIR / "node_modules" / p).is_file() for p in LOCAL_ASSETS.values())


def _walk(element):
    yield element
    for child in getattr(element, "_children", {}).values():
        yield from _walk(child)


def localize_assets(m: folium.Map, base_url: str = "/") -> folium.Map:
    """Point every JS/CSS link of a folium map at the locally served copies.

    Links with a local copy are rewritten to ``{base_url}app/static/node_modules/...``;
    links without one (Bootstrap, Font Awesome, awesome-markers) are dropped, since
    rsviz maps do not use them. Changes are made on the element instances only.

    Args:
        m: The map (modified in place).
        base_url: Server base path (Streamlit ``server.baseUrlPath``), ``/`` by default.

    Returns:
        ``m``.
    """
    prefix = base_url.rstrip("/") + "/" + STATIC_URL
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
) -> folium.Map:
    """A leafmap (folium backend) map with local assets and an optional rectangle draw tool.

    Args:
        center: ``(lat, lon)`` EPSG:4326.
        zoom: Initial web-map zoom.
        basemap: Add OpenStreetMap tiles (fail quietly offline; overlays still show).
        draw: Add the Leaflet.draw rectangle tool (polygons, lines, markers disabled).
        height: Map height in pixels.

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
        max_zoom=24,
    )
    for key, child in list(m._children.items()):  # leafmap adds a default basemap; we decide ourselves
        if isinstance(child, folium.TileLayer):
            del m._children[key]
    if basemap:
        folium.TileLayer(
            "OpenStreetMap", name="OpenStreetMap basemap", max_zoom=24, max_native_zoom=19, control=True
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
    return localize_assets(m)


def warp_to_web_mercator(
    array: np.ndarray,
    transform: Affine,
    crs: CRS | None,
    *,
    resampling: Resampling = Resampling.nearest,
    max_side: int = MAX_OVERLAY_SIDE,
) -> tuple[np.ndarray, BBox]:
    """Reproject a ``(bands, H, W)`` array to EPSG:3857 for display.

    Args:
        array: ``(bands, H, W)`` uint8 (e.g. RGBA); 0 fills outside the source.
        transform: Source affine transform.
        crs: Source CRS.
        resampling: Resampling (nearest for labels, bilinear for imagery).
        max_side: Output is decimated so its longer side is at most this.

    Returns:
        ``(warped, bounds_lonlat)`` with ``warped`` ``(bands, h, w)`` and EPSG:4326
        ``(west, south, east, north)`` of its extent.

    Raises:
        CRSError: If ``crs`` is None.
    """
    if crs is None:
        raise CRSError("this image has no CRS, so it cannot be placed on the map; georeference it first")
    bands, h, w = array.shape
    left, top = transform * (0, 0)
    right, bottom = transform * (w, h)
    dst_t, dw, dh = calculate_default_transform(
        crs,
        WEB_MERCATOR,
        w,
        h,
        left=min(left, right),
        bottom=min(top, bottom),
        right=max(left, right),
        top=max(top, bottom),
    )
    f = max(dw, dh) / max_side
    if f > 1:
        dst_t = dst_t * Affine.scale(f)
        dw, dh = int(np.ceil(dw / f)), int(np.ceil(dh / f))
    out = np.zeros((bands, dh, dw), array.dtype)
    reproject(
        array,
        out,
        src_transform=transform,
        src_crs=crs,
        dst_transform=dst_t,
        dst_crs=WEB_MERCATOR,
        resampling=resampling,
        src_nodata=None,
        dst_nodata=0,
    )
    b3857 = (dst_t.c, dst_t.f + dst_t.e * dh, dst_t.c + dst_t.a * dw, dst_t.f)
    return out, reproject_bounds(b3857, WEB_MERCATOR, "EPSG:4326")


def png_data_uri(rgba: np.ndarray) -> str:
    """``data:image/png;base64,...`` of an ``(H, W, 3|4)`` uint8 array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG", optimize=False, compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def add_overlay(
    m: folium.Map,
    rgba_hwc: np.ndarray,
    transform: Affine,
    crs: CRS | None,
    name: str,
    *,
    opacity: float = 1.0,
    resampling: Resampling = Resampling.nearest,
    show: bool = True,
) -> BBox:
    """Reproject an RGBA image to web mercator and add it as an image overlay.

    Args:
        m: Map.
        rgba_hwc: ``(H, W, 4)`` uint8 on the ``transform`` / ``crs`` grid.
        transform: Affine transform of the image.
        crs: CRS of the image.
        name: Layer name (layer control).
        opacity: 0-1.
        resampling: Nearest for labels, bilinear for imagery.
        show: Initially visible.

    Returns:
        The overlay's EPSG:4326 bounds.
    """
    warped, (w, s, e, n) = warp_to_web_mercator(np.moveaxis(rgba_hwc, -1, 0), transform, crs, resampling=resampling)
    folium.raster_layers.ImageOverlay(
        png_data_uri(np.moveaxis(warped, 0, -1)),
        bounds=[[s, w], [n, e]],
        name=name,
        opacity=opacity,
        show=show,
        interactive=False,
        zindex=2,
    ).add_to(m)
    return (w, s, e, n)


def rgb_to_rgba(rgb: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Append an alpha channel (255 valid, 0 invalid) to ``(H, W, 3)`` uint8."""
    a = np.full(rgb.shape[:2], 255, np.uint8) if valid is None else (valid.astype(np.uint8) * 255)
    return np.dstack([rgb, a])


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
    rows = "".join(
        f'<div><span style="display:inline-block;width:12px;height:12px;background:{c.hex};'
        f'border:1px solid #444;margin-right:6px"></span>{c.name}</div>'
        for c in classes
    )
    return f'<div style="font-size:0.85rem"><b>{title}</b>{rows}</div>'
