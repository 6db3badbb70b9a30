"""Map layers of a scene and its runs: every head a model has is a registered, renderable tile layer."""

import io

import numpy as np
import pytest
from PIL import Image

from rsviz.app.compare_maps import linked_maps_html, swipe_html
from rsviz.app.layers import run_layers, scene_layers
from rsviz.tiles import REGISTRY, render_tile

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def banepa_run(mirror):
    from rsviz.datasets import scenes
    from rsviz.models.api import get_model_card
    from rsviz.workspace import RunOptions, open_sample, resolve_extent, run_model

    ref = [r for r in scenes("banepa-buildings") if r.id == "OAM-386694-220245-19"][0]
    s = open_sample(ref)
    run, _ = run_model("building-mtl", s, resolve_extent(s, None), RunOptions(tile=256, tta=False, device="cpu"))
    return s, run, get_model_card("building-mtl")


def _tile_of(bounds, z=19):
    w, s, e, n = bounds
    lon, lat = (w + e) / 2, (s + n) / 2
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * 2**z)
    return z, x, y


def test_every_head_of_building_mtl_is_a_layer(banepa_run):
    s, run, card = banepa_run
    names = [lyr.name for lyr in scene_layers(s) + run_layers(s, run, card)]
    assert names[:2] == ["imagery", "ground truth: buildings"]
    for want in (
        "prediction",
        "errors (TP green",
        "probability of building",
        "uncertainty",
        "edge probability",
        "reconstruction residual",
    ):
        assert any(want in n for n in names), (want, names)
    z, x, y = _tile_of(s.bounds_4326)
    for lyr in scene_layers(s) + run_layers(s, run, card):
        img = np.asarray(Image.open(io.BytesIO(render_tile(REGISTRY.get(lyr.id), z, x, y))))
        assert img.shape == (256, 256, 4)
        if lyr.pixelated:  # class layers: only legend colours (or transparent), never blends of them
            colours = {tuple(c) for c in img[img[..., 3] > 0][:, :3].tolist()}
            assert len(colours) <= 4, (lyr.name, list(colours)[:6])


def test_errors_layer_agrees_with_the_pixel_counts(banepa_run):
    s, run, card = banepa_run
    errs = [lyr for lyr in run_layers(s, run, card) if "errors" in lyr.name][0]
    z, x, y = _tile_of(s.bounds_4326)
    img = np.asarray(Image.open(io.BytesIO(render_tile(REGISTRY.get(errs.id), z, x, y))))
    shown = img[img[..., 3] > 0][:, :3]
    assert len(shown) > 0
    # green (TP) dominates for a model with IoU ~0.85 on this chip
    g = (shown[:, 1] > shown[:, 0]) & (shown[:, 1] > shown[:, 2])
    assert g.mean() > 0.5


def test_compare_pages_use_only_local_assets_and_escape_names(banepa_run):
    import re

    s, run, card = banepa_run
    layers = scene_layers(s) + run_layers(s, run, card)
    evil = type(layers[1])(**{**layers[1].__dict__, "name": "</script><script>alert(1)</script>"})
    for html in (
        swipe_html(evil, layers[2], layers[0], s.bounds_4326, base_url="/qa"),
        linked_maps_html([evil, layers[2], layers[3]], layers[0], s.bounds_4326, base_url="/qa"),
    ):
        assert "</script><script>alert(1)" not in html  # neither in the titles nor in the inline JSON
        links = re.findall(r"(?:src|href)='([^']+)'", html)
        assert links and all(u.startswith("/qa/rsviz/assets/") for u in links), links
        assert "/qa/rsviz/tiles/" in html
    assert "sideBySide" in swipe_html(layers[1], layers[2], layers[0], s.bounds_4326)
    assert ".sync(" in linked_maps_html(layers[1:4], layers[0], s.bounds_4326)
