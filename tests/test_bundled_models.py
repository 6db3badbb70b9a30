"""Bundled weights reproduce their model cards' held-out figures (within +-0.02)."""

import pytest

from rsviz.models.api import BUNDLED_DIR, get_model_card, load_model

pytestmark = pytest.mark.realdata


def _bundled(prefix):
    return [d.name for d in sorted(BUNDLED_DIR.glob(f"{prefix}*")) if (d / "card.json").exists()]


def test_bundled_models_exist():
    names = set(_bundled(""))
    assert {"building-mtl", "building-seg"} <= names


@pytest.mark.parametrize("name", _bundled("building-"))
def test_building_card_figures_are_reproduced(mirror, name):
    from rsviz.train.building_card import evaluate_building

    card = get_model_card(name)
    got = evaluate_building(load_model(name, "cpu"), "banepa-test")
    assert got["iou"] == pytest.approx(card.metrics["banepa-test"]["iou"], abs=0.02)
    assert got["object_f1"] == pytest.approx(card.metrics["banepa-test"]["object_f1"], abs=0.02)


@pytest.mark.parametrize("name", _bundled("s2-"))
def test_s2_card_figures_are_reproduced(mirror, name):
    from rsviz.train.s2 import load_patches
    from rsviz.train.s2_card import evaluate_variant

    card = get_model_card(name)
    got = evaluate_variant(load_model(name, "cpu"), load_patches()["test"])
    assert got["micro_f1"] == pytest.approx(card.metrics["bigearthnet-test"]["micro_f1"], abs=0.02)
    assert got["map"] == pytest.approx(card.metrics["bigearthnet-test"]["map"], abs=0.02)


@pytest.mark.parametrize("name", _bundled("height-"))
def test_height_card_figures_are_reproduced(mirror, name):
    from rsviz.train.height_card import evaluate_height_model

    card = get_model_card(name)
    got = evaluate_height_model(load_model(name, "cpu"))
    assert got["potsdam-test"]["rmse"] == pytest.approx(card.metrics["potsdam-test"]["rmse"], abs=0.02)
    assert got["dubai-test"]["miou"] == pytest.approx(card.metrics["dubai-test"]["miou"], abs=0.02)


def test_weights_are_small_safetensors():
    for d in BUNDLED_DIR.iterdir():
        if (d / "card.json").exists():
            w = d / "model.safetensors"
            assert w.stat().st_size <= 30 * 1024 * 1024, d.name
            assert not list(d.glob("*.pt")) and not list(d.glob("*.pth")) and not list(d.glob("*.ckpt"))


@pytest.mark.parametrize("name", _bundled("landcover-"))
def test_landcover_card_figures_are_reproduced(mirror, name):
    from rsviz.train.semantic_card import evaluate_landcover

    card = get_model_card(name)
    assert card.ignore_index is not None and card.classes[card.ignore_index].name == "unlabelled"
    got = evaluate_landcover(load_model(name, "cpu"), "test")
    assert got["miou"] == pytest.approx(card.metrics["dubai-test"]["miou"], abs=0.02)


@pytest.mark.parametrize("name", _bundled("roads-"))
def test_roads_card_figures_are_reproduced(mirror, name):
    from rsviz.train.semantic_card import evaluate_roads

    card = get_model_card(name)
    got = evaluate_roads(load_model(name, "cpu"), "test")
    assert got["iou"] == pytest.approx(card.metrics["eth-test"]["iou"], abs=0.02)
    assert got["apls"] == pytest.approx(card.metrics["eth-test"]["apls"], abs=0.02)
