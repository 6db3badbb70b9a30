"""Training recipes run end to end on a tiny budget and write what their cards are built from."""

import json

import pytest

from rsviz.errors import UnknownNameError
from rsviz.train import RECIPES


def test_every_bundled_model_family_has_a_recipe():
    assert {"building-mtl", "building-seg", "height-mtl", "landcover-deeplabv3plus", "roads-pplinknet",
            "s2-resize", "s2-intermediate", "s2-late"} <= set(RECIPES)


def test_semantic_recipe_rejects_unknown_names_and_keys(tmp_path):
    from rsviz.train.semantic import train

    with pytest.raises(UnknownNameError, match="roads-pplinknet"):
        train("roads-unet")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stepz": 3}))
    with pytest.raises(ValueError, match="stepz"):
        train("roads-pplinknet", str(bad))


@pytest.mark.realdata
def test_roads_recipe_trains_and_writes_a_loadable_run(mirror, tmp_path):
    from safetensors.torch import load_file

    from rsviz.models.architectures import build_model
    from rsviz.train.semantic import train

    out = train("roads-pplinknet", None, {"steps": 2, "val_every": 2, "crop": 64, "batch_size": 2,
                                          "out": str(tmp_path / "run"), "threads": 2})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_step"] == 2 and 0.0 <= summary["val_iou"] <= 1.0
    assert (out / "curves.csv").exists() and (out / "curves.png").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arch"] == "pplinknet"
    build_model(cfg).load_state_dict(load_file(str(out / "best.safetensors")))
