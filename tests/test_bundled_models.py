"""Bundled weights reproduce their model cards' held-out figures (within +-0.02)."""

import pytest

from rsviz.models.api import BUNDLED_DIR, get_model_card, load_model

pytestmark = pytest.mark.realdata

BUILDING = [d.name for d in sorted(BUNDLED_DIR.glob("building-*")) if (d / "card.json").exists()]


def test_bundled_building_models_exist():
    assert "building-mtl" in BUILDING and "building-seg" in BUILDING


@pytest.mark.parametrize("name", BUILDING)
def test_building_card_iou_is_reproduced(mirror, name):
    from rsviz.train.building_card import evaluate_building

    card = get_model_card(name)
    lm = load_model(name, "cpu")
    got = evaluate_building(lm, "banepa-test")
    assert got["iou"] == pytest.approx(card.metrics["banepa-test"]["iou"], abs=0.02)
    assert got["object_f1"] == pytest.approx(card.metrics["banepa-test"]["object_f1"], abs=0.02)


def test_weights_are_small_safetensors():
    for d in BUNDLED_DIR.iterdir():
        if (d / "card.json").exists():
            w = d / "model.safetensors"
            assert w.stat().st_size <= 30 * 1024 * 1024, d.name
            assert not list(d.glob("*.pt")) and not list(d.glob("*.pth")) and not list(d.glob("*.ckpt"))
