"""The tile routes: tiles equal render_tile, base paths, strict validation, nothing opened for a refusal."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from rsviz.app.routes import CACHE_CONTROL, TILE_PREFIX, tile_routes, tile_url_template
from rsviz.tiles import Layer, LayerKind, TileRegistry, readers, render_tile
from tests.tiles.rasters import decode, lonlat_to_tile_pixel, utm_pixel_lonlat, write_cog
from tests.tiles.test_render import GRID


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    rng = np.random.default_rng(3)
    path = write_cog(tmp_path_factory.mktemp("routes") / "rgb.tif", rng.integers(0, 256, (3, 512, 512), dtype=np.uint8))
    reg = TileRegistry()
    layer = Layer(LayerKind.IMAGERY, path, bands=(1, 2, 3))
    lid = reg.register(layer)
    tx, ty, _, _ = lonlat_to_tile_pixel(*utm_pixel_lonlat(256, 256, GRID), 17)
    client = TestClient(Starlette(routes=tile_routes(reg)))
    client.registry = reg
    return client, layer, lid, (17, tx, ty)


def test_tile_equals_render_tile(served):
    client, layer, lid, (z, x, y) = served
    r = client.get(f"/{TILE_PREFIX}/{lid}/{z}/{x}/{y}.png")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == CACHE_CONTROL
    assert decode(r.content).shape == (256, 256, 4)
    assert r.content == render_tile(layer, z, x, y)
    r = client.get(f"/{TILE_PREFIX}/{lid}/{z}/{x}/{y}.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == CACHE_CONTROL
    # outside the raster: a transparent PNG, whatever the suffix
    r = client.get(f"/{TILE_PREFIX}/{lid}/3/0/0.webp")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert (decode(r.content)[..., 3] == 0).all()


@pytest.mark.parametrize("base", ["/foo", "/foo/bar", "/rsviz"])
def test_tile_below_a_base_path(served, base):
    client, layer, lid, (z, x, y) = served
    template = tile_url_template(lid, base + "/")
    assert template == f"{base}/{TILE_PREFIX}/{lid}/{{z}}/{{x}}/{{y}}.png"
    r = client.get(template.format(z=z, x=x, y=y))
    assert r.status_code == 200 and r.content == render_tile(layer, z, x, y)
    r = client.get(f"{base}/{TILE_PREFIX}/{lid}/info.json")
    assert r.status_code == 200 and r.json()["native_zoom"] == 18


def test_url_template_without_base():
    assert tile_url_template("0123456789abcdef") == "/rsviz/tiles/0123456789abcdef/{z}/{x}/{y}.png"
    assert tile_url_template("0123456789abcdef", "//") == "/rsviz/tiles/0123456789abcdef/{z}/{x}/{y}.png"


def test_info_json(served):
    client, layer, lid, _ = served
    r = client.get(f"/{TILE_PREFIX}/{lid}/info.json")
    assert r.status_code == 200 and r.headers["cache-control"] == CACHE_CONTROL
    doc = r.json()
    assert set(doc) == {"bounds", "minzoom", "maxzoom", "native_zoom"}
    assert doc["maxzoom"] == doc["native_zoom"] + 2 and len(doc["bounds"]) == 4


def _refused(lid: str, z: int, x: int, y: int) -> list[str]:
    t = f"/{TILE_PREFIX}"
    return [
        f"{t}/{'0' * 16}/{z}/{x}/{y}.png",  # well-formed, not registered
        f"{t}/{'0' * 16}/info.json",
        f"{t}/{lid.upper()}/{z}/{x}/{y}.png",  # not lowercase hex
        f"{t}/{lid[:-1]}/{z}/{x}/{y}.png",  # 15 digits
        f"{t}/{lid}0/{z}/{x}/{y}.png",  # 17 digits
        f"{t}/{lid[:-1]}g/{z}/{x}/{y}.png",
        f"{t}/{lid[:-1]}g/info.json",
        f"{t}/../{lid}/{z}/{x}/{y}.png",
        f"{t}/%2e%2e/{z}/{x}/{y}.png",
        f"{t}/%2e%2e%2f%2e%2e%2fetc%2fpasswd/{z}/{x}/{y}.png",
        f"{t}/../../etc/passwd",
        f"{t}/..%2f..%2fetc%2fpasswd/{z}/{x}/{y}.png",
        f"{t}//etc/passwd/{z}/{x}/{y}.png",
        f"{t}/%2Fetc%2Fpasswd/{z}/{x}/{y}.png",
        f"{t}/{lid}/{z}/{x}/{y}.tif",  # format
        f"{t}/{lid}/{z}/{x}/{y}.png.aux.xml",
        f"{t}/{lid}/{z}/{x}/{y}",
        f"{t}/{lid}/31/0/0.png",  # z > 30
        f"{t}/{lid}/-1/0/0.png",
        f"{t}/{lid}/{z}/{2**z}/{y}.png",  # x out of range
        f"{t}/{lid}/{z}/{x}/{2**z}.png",  # y out of range
        f"{t}/{lid}/3/0/8.png",
        f"{t}/{lid}/{z}/{x}/-{y}.png",
        f"{t}/{lid}/{z}/{x}/{y}.5.png",
        f"{t}/{lid}/{z}/0x1/{y}.png",
        f"{t}/{lid}/99999999999/0/0.png",
        f"{t}/{lid}/{z}/{x}/{y}.png/../../../etc/passwd",
        f"/foo/{t}/{'0' * 16}/{z}/{x}/{y}.png",
        f"/foo/{t}/{lid}/{z}/{2**z}/{y}.png",
    ]


def test_refused_requests_are_404_and_open_no_file(served, monkeypatch):
    client, layer, lid, (z, x, y) = served
    opened: list[str] = []

    def spy(path):
        opened.append(path)
        raise AssertionError(f"opened {path}")

    monkeypatch.setattr(readers, "open_reader", spy)
    for url in _refused(lid, z, x, y):
        r = client.get(url)
        assert r.status_code == 404, url
    assert opened == []
    # the spy does catch a file being opened: a valid request for a file no thread has open
    fresh = layer.path.with_name("fresh.tif")
    fresh.write_bytes(layer.path.read_bytes())
    fid = client.registry.register(Layer(LayerKind.IMAGERY, fresh, bands=(1, 2, 3)))
    with pytest.raises(AssertionError, match="opened"):
        client.get(f"/{TILE_PREFIX}/{fid}/{z}/{x}/{y}.png")
    assert opened == [str(fresh)]


def test_repeated_tiles_come_from_the_cache(served, monkeypatch):
    client, layer, lid, (z, x, y) = served
    import rsviz.app.routes as routes

    calls = []

    def counting(*args, **kwargs):
        calls.append(args)
        return render_tile(*args, **kwargs)

    monkeypatch.setattr(routes, "render_tile", counting)
    reg = TileRegistry()
    reg.register(layer)
    cached = TestClient(Starlette(routes=tile_routes(reg)))
    uncached = TestClient(Starlette(routes=tile_routes(reg, cache_bytes=0)))
    url = f"/{TILE_PREFIX}/{lid}/{z}/{x + 1}/{y}.png"
    bodies = [cached.get(url).content for _ in range(3)]
    assert len(calls) == 1 and bodies[0] == bodies[2] == render_tile(layer, z, x + 1, y)
    for _ in range(2):
        assert uncached.get(url).content == bodies[0]
    assert len(calls) == 3
    small = routes.TileCache(100)
    small.put(("a", 0, 0, 0, "png"), b"x" * 60)
    small.put(("b", 0, 0, 0, "png"), b"y" * 60)  # evicts a
    assert small.get(("a", 0, 0, 0, "png")) is None and small.get(("b", 0, 0, 0, "png")) == b"y" * 60


def test_stale_id_is_404_after_the_file_changes(tmp_path):
    rng = np.random.default_rng(4)
    path = write_cog(tmp_path / "c.tif", rng.integers(0, 3, (256, 256), dtype=np.uint8), overview_resampling="NEAREST")
    reg = TileRegistry()
    lid = reg.register(Layer(LayerKind.CLASSES, path, colormap=((1, (255, 0, 0, 255)),)))
    client = TestClient(Starlette(routes=tile_routes(reg)))
    assert client.get(f"/{TILE_PREFIX}/{lid}/info.json").status_code == 200
    tile = f"/{TILE_PREFIX}/{lid}/3/0/0.png"
    assert client.get(tile).status_code == 200  # now in the tile cache
    path.write_bytes(path.read_bytes())
    import os

    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert client.get(f"/{TILE_PREFIX}/{lid}/info.json").status_code == 404
    assert client.get(tile).status_code == 404  # the cached tile is not served under the stale id
    path.unlink()
    assert client.get(f"/{TILE_PREFIX}/{lid}/17/0/0.png").status_code == 404


def test_asset_route_serves_only_the_npm_assets(tmp_path):
    from rsviz.app import mapview
    from rsviz.app.compare_maps import ASSETS
    from rsviz.app.routes import asset_routes

    if not mapview.assets_installed():
        pytest.skip("run `npm ci --prefix static` first")
    client = TestClient(Starlette(routes=asset_routes()))
    for rel in [*mapview.LOCAL_ASSETS.values(), *ASSETS.values()]:
        for base in ("", "/qa"):
            r = client.get(f"{base}/rsviz/assets/{rel}")
            assert r.status_code == 200 and len(r.content) > 100, (base, rel)
    assert client.get("/rsviz/assets/leaflet/dist/leaflet.js").headers["content-type"].startswith("text/javascript")
    for bad in (
        "/rsviz/assets/leaflet/package.json",
        "/rsviz/assets/../../pyproject.toml",
        "/rsviz/assets/leaflet/dist/../../../package-lock.json",
        "/rsviz/assets/%2e%2e/%2e%2e/README.md",
        "/rsviz/assets/browserify/index.js",
        "/rsviz/assets//etc/passwd",
        "/rsviz/assets/leaflet/dist/leaflet.js%00.png",
    ):
        assert client.get(bad).status_code == 404, bad
