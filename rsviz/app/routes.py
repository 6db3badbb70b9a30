"""Starlette routes serving XYZ map tiles of the layers in a :class:`~rsviz.tiles.TileRegistry`.

``GET /rsviz/tiles/{layer_id}/{z}/{x}/{y}.{fmt}`` and ``GET /rsviz/tiles/{layer_id}/info.json``,
plus the same below any base path (``/{base}/rsviz/tiles/...``): Streamlit mounts custom routes
without its ``server.baseUrlPath`` prefix, so both must match. The URL only ever names a
registered layer id; a path is never taken from it, and anything malformed is a 404 before any
file is touched. Handlers are plain functions, which Starlette runs in its thread pool, so
rendering never blocks the event loop; they hand the rendering itself to a small pool of
:data:`RENDER_THREADS` threads and keep the encoded tiles in a bounded LRU (:data:`TILE_CACHE_BYTES`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from rsviz.errors import RasterReadError
from rsviz.tiles import REGISTRY, Layer, TileRegistry, layer_info, render_tile
from rsviz.tiles.render import MAX_ZOOM

#: Where the tiles live below the server root (or below a base path).
TILE_PREFIX = "rsviz/tiles"
#: ``Cache-Control`` of every tile and info response: ids change when a file does.
CACHE_CONTROL = "public, max-age=86400, immutable"
#: URL suffix -> media type.
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}

#: Threads that render tiles (``RSVIZ_TILE_THREADS``, default the CPU count, at most 8).
RENDER_THREADS = max(1, min(int(os.environ.get("RSVIZ_TILE_THREADS", "0")) or (os.cpu_count() or 1), 8))

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _render_pool() -> ThreadPoolExecutor:
    """The process-wide pool of :data:`RENDER_THREADS` render threads (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="rsviz-tiles")
        return _pool


#: Bytes of encoded tiles kept in memory (``RSVIZ_TILE_CACHE_MB``, default 64; 0 disables).
TILE_CACHE_BYTES = int(float(os.environ.get("RSVIZ_TILE_CACHE_MB", "64")) * 2**20)

TileKey = tuple[str, int, int, int, str]


class TileCache:
    """Thread-safe LRU of encoded tiles, bounded in bytes.

    Tiles never change under an id (ids hash the files' size and mtime), so a hit is always current.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[TileKey, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: TileKey) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
            return body

    def put(self, key: TileKey, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += len(body) - (len(old) if old is not None else 0)
            self._items[key] = body
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted)


_ID = re.compile(r"[0-9a-f]{16}")
_INT = re.compile(r"[0-9]{1,10}")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _not_found() -> Response:
    return Response("not found", status_code=404, media_type="text/plain")


def _layer(registry: TileRegistry, layer_id: str) -> Layer | None:
    """The registered layer of a well-formed, current id, else None (nothing read)."""
    if not _ID.fullmatch(layer_id) or layer_id not in registry:
        return None
    layer = registry.get(layer_id)
    try:  # a file rewritten since registration has a new id: the old one must not serve new pixels
        if layer.id() != layer_id:
            return None
    except FileNotFoundError:
        return None
    return layer


def _tile_xyz(z: str, x: str, y: str) -> tuple[int, int, int] | None:
    if not (_INT.fullmatch(z) and _INT.fullmatch(x) and _INT.fullmatch(y)):
        return None
    zi, xi, yi = int(z), int(x), int(y)
    if zi > MAX_ZOOM or xi >= 2**zi or yi >= 2**zi:
        return None
    return zi, xi, yi


def tile_routes(registry: TileRegistry = REGISTRY, *, cache_bytes: int | None = None) -> list[BaseRoute]:
    """Starlette routes serving ``registry``'s layers as XYZ tiles (for ``st.App(..., routes=...)``).

    Args:
        registry: Where layer ids are looked up; the process-wide :data:`rsviz.tiles.REGISTRY` by default.
        cache_bytes: Size of these routes' in-memory LRU of encoded tiles; :data:`TILE_CACHE_BYTES` by
            default, 0 to render every request.

    Returns:
        Four GET routes: ``/rsviz/tiles/{layer_id}/{z}/{x}/{y}.{fmt}`` (``fmt`` png, jpg/jpeg or
        webp; a 256 px tile, a transparent PNG outside the raster) and
        ``/rsviz/tiles/{layer_id}/info.json`` (:class:`~rsviz.tiles.LayerInfo` as JSON), each also
        below any base path. ``layer_id`` must be 16 lowercase hex digits, registered and current;
        ``0 <= z <= 30`` and ``0 <= x, y < 2**z``. Anything else is a 404 without any file access.
        200 responses carry ``Cache-Control: public, max-age=86400, immutable``.
    """

    cache = TileCache(TILE_CACHE_BYTES if cache_bytes is None else cache_bytes)

    def tile(request: Request) -> Response:
        p = request.path_params
        fmt = str(p["fmt"]).lower()
        xyz = _tile_xyz(p["z"], p["x"], p["y"])
        if fmt not in MEDIA_TYPES or xyz is None:
            return _not_found()
        layer = _layer(registry, p["layer_id"])
        if layer is None:
            return _not_found()
        z, x, y = xyz
        key = (p["layer_id"], z, x, y, fmt)
        body = cache.get(key)
        if body is None:
            try:
                # Rendering runs on a few dedicated threads, not on Starlette's (up to 40) pool threads:
                # each render thread keeps its own open readers, so few datasets and malloc arenas are
                # live, and at most RENDER_THREADS tiles are in flight (bounded memory, less GIL churn).
                body = _render_pool().submit(render_tile, layer, z, x, y, fmt=fmt).result()
            except RasterReadError:  # the file vanished between the id check and the read
                return _not_found()
            cache.put(key, body)
        media = "image/png" if body.startswith(_PNG_SIGNATURE) else MEDIA_TYPES[fmt]
        return Response(body, media_type=media, headers={"Cache-Control": CACHE_CONTROL})

    def info(request: Request) -> Response:
        layer = _layer(registry, request.path_params["layer_id"])
        if layer is None:
            return _not_found()
        try:
            doc = dataclasses.asdict(_render_pool().submit(layer_info, layer).result())
        except RasterReadError:
            return _not_found()
        return JSONResponse(doc, headers={"Cache-Control": CACHE_CONTROL})

    tile_path = "/" + TILE_PREFIX + "/{layer_id}/{z}/{x}/{y}.{fmt}"
    info_path = "/" + TILE_PREFIX + "/{layer_id}/info.json"
    return [
        Route(info_path, info, methods=["GET"], name="rsviz-tile-info"),
        Route("/{base:path}" + info_path, info, methods=["GET"], name="rsviz-tile-info-based"),
        Route(tile_path, tile, methods=["GET"], name="rsviz-tile"),
        Route("/{base:path}" + tile_path, tile, methods=["GET"], name="rsviz-tile-based"),
    ]


def base_prefix(base_url_path: str) -> str:
    """``"/<base>"`` for Streamlit's ``server.baseUrlPath`` (slashes around it ignored), ``""`` for none."""
    base = base_url_path.strip("/")
    return f"/{base}" if base else ""


def tile_url_template(layer_id: str, base_url_path: str = "") -> str:
    """The Leaflet / folium URL template of a layer's tiles.

    Args:
        layer_id: A registered layer id.
        base_url_path: Streamlit's ``server.baseUrlPath`` (slashes around it are ignored); ``""`` for none.

    Returns:
        An absolute path, e.g. ``"/rsviz/tiles/<id>/{z}/{x}/{y}.png"`` or ``"/base/rsviz/tiles/<id>/{z}/{x}/{y}.png"``.
    """
    return f"{base_prefix(base_url_path)}/{TILE_PREFIX}/{layer_id}/{{z}}/{{x}}/{{y}}.png"


#: Where the Leaflet assets live below the server root (or below a base path).
ASSET_PREFIX = "rsviz/assets"
#: Folders below ``static/node_modules`` whose files the asset route serves (nothing else is reachable).
ASSET_DIRS = (
    "leaflet/dist",
    "leaflet-draw/dist",
    "jquery/dist",
    "leaflet.sync",
    "leaflet-side-by-side",
)
ASSET_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".map": "application/json",
}


def asset_routes(root: os.PathLike[str] | str | None = None) -> list[BaseRoute]:
    """Routes serving the npm copies of Leaflet and its plugins (``npm ci --prefix static``) at
    ``/rsviz/assets/<package path>`` and below any base path, so maps work offline and behind a proxy.

    Only files of :data:`ASSET_DIRS` with a suffix of :data:`ASSET_TYPES` are served; any other path, ``..``
    included, is a 404.

    Args:
        root: The ``node_modules`` folder (default: :func:`rsviz.resources.static_dir` / ``node_modules``).
    """
    from pathlib import Path

    from starlette.responses import FileResponse

    from rsviz.resources import static_dir

    base = Path(root) if root is not None else static_dir() / "node_modules"
    allowed = [(base / d).resolve() for d in ASSET_DIRS]

    def asset(request: Request) -> Response:
        rel = str(request.path_params.get("path", ""))
        if ".." in rel.split("/") or rel.startswith("/") or "\x00" in rel or "\\" in rel:
            return _not_found()
        p = (base / rel).resolve()
        if p.suffix not in ASSET_TYPES or not any(p.is_relative_to(a) for a in allowed) or not p.is_file():
            return _not_found()
        return FileResponse(p, media_type=ASSET_TYPES[p.suffix], headers={"Cache-Control": "public, max-age=3600"})

    path = "/" + ASSET_PREFIX + "/{path:path}"
    return [
        Route(path, asset, methods=["GET"], name="rsviz-asset"),
        Route("/{base:path}" + path, asset, methods=["GET"], name="rsviz-asset-based"),
    ]
