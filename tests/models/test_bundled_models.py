"""Bundled weights reproduce their model cards' held-out figures (within +-0.02)."""

import pytest

from rsviz.models.api import BUNDLED_DIR, get_model_card, load_model

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _bundled(prefix):
    return [d.name for d in sorted(BUNDLED_DIR.glob(f"{prefix}*")) if (d / "card.json").exists()]


def test_bundled_models_exist():
    names = set(_bundled(""))
    assert {"building-mtl", "building-seg"} <= names


@pytest.mark.parametrize("name", _bundled("building-"))
def test_building_card_figures_are_reproduced(mirror, name):
    from experiments.packaging.building import evaluate_building

    card = get_model_card(name)
    got = evaluate_building(load_model(name, "cpu"), "banepa-test")
    assert got["iou"] == pytest.approx(card.metrics["banepa-test"]["iou"], abs=0.02)
    assert got["object_f1_iou50"] == pytest.approx(card.metrics["banepa-test"]["object_f1_iou50"], abs=0.02)


@pytest.mark.parametrize("name", _bundled("s2-"))
def test_s2_card_figures_are_reproduced(mirror, name):
    from rsviz.datasets.bigearthnet import patches_by_split
    from rsviz.evaluation import evaluate_patches

    card = get_model_card(name)
    got = evaluate_patches(load_model(name, "cpu"), patches_by_split()["test"])
    assert got["micro_f1"] == pytest.approx(card.metrics["bigearthnet-test"]["micro_f1"], abs=0.02)
    assert got["map"] == pytest.approx(card.metrics["bigearthnet-test"]["map"], abs=0.02)


@pytest.mark.parametrize("name", _bundled("height-"))
def test_height_card_figures_are_reproduced(mirror, name):
    from experiments.packaging.height import evaluate_height_model

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
    from experiments.packaging.semantic import evaluate_landcover

    card = get_model_card(name)
    assert card.ignore_index is not None and card.classes[card.ignore_index].name == "unlabelled"
    got = evaluate_landcover(load_model(name, "cpu"), "test")
    assert got["miou"] == pytest.approx(card.metrics["dubai-test"]["miou"], abs=0.02)


@pytest.mark.parametrize("name", _bundled("roads-"))
def test_roads_card_figures_are_reproduced(mirror, name):
    from experiments.packaging.semantic import evaluate_roads

    card = get_model_card(name)
    got = evaluate_roads(load_model(name, "cpu"), "test")
    assert got["iou"] == pytest.approx(card.metrics["eth-test"]["iou"], abs=0.02)
    assert got["apls_4px"] == pytest.approx(card.metrics["eth-test"]["apls_4px"], abs=0.02)
    assert got["apls_4m"] == pytest.approx(card.metrics["eth-test"]["apls_4m"], abs=0.02)  # SpaceNet's 4 m buffer


@pytest.mark.parametrize("name", _bundled("landcover-"))
def test_predict_on_a_folder_writes_colour_pngs_and_class_id_geotiffs(mirror, name, tmp_path):
    """Batch inference (``python -m rsviz predict MODEL folder/ out/``) on two Dubai images."""
    import shutil

    import numpy as np
    import rasterio
    from PIL import Image

    from rsviz.cli import main
    from rsviz.datasets import scenes

    src = tmp_path / "in"
    src.mkdir()
    refs = [r for r in scenes("dubai-landcover", "train") if r.id.startswith("tile1-")][:2]
    for r in refs:
        shutil.copy(r.path, src / r.path.name)
    assert main(["predict", name, str(src), str(tmp_path / "out"), "--device", "cpu"]) == 0
    card = get_model_card(name)
    colours = {tuple(c.color) for c in card.classes}
    for r in refs:
        with rasterio.open(tmp_path / "out" / f"{r.path.stem}.tif") as ds:
            ids = ds.read(1)
            assert ds.dtypes[0] == "uint8" and ds.colormap(1)[0][:3] == tuple(card.classes[0].color)
        assert set(np.unique(ids)) <= set(range(card.heads["seg"].channels))
        png = np.asarray(Image.open(tmp_path / "out" / f"{r.path.stem}.png").convert("RGB"))
        assert png.shape[:2] == ids.shape
        assert {
            tuple(int(v) for v in png[y, x]) for y, x in [(0, 0), (ids.shape[0] // 2, ids.shape[1] // 2)]
        } <= colours


def test_refresh_metrics_is_for_road_models_only(tmp_path):
    import shutil

    from experiments.packaging.semantic import main, refresh_road_metrics

    if not (BUNDLED_DIR / "building-mtl" / "card.json").exists():
        pytest.skip("building-mtl weights are not bundled")
    d = shutil.copytree(BUNDLED_DIR / "building-mtl", tmp_path / "building-mtl")
    before = (d / "card.json").read_bytes()
    with pytest.raises(ValueError, match="road models"):
        refresh_road_metrics(d)
    assert (d / "card.json").read_bytes() == before
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
