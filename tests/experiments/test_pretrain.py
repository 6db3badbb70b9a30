"""Masked-image pretraining of the building U-Net (experiments.recipes.pretrain)."""

import json

import numpy as np
import pytest
import torch

from experiments.recipes.pretrain import POOL, cell_mask, masked_l1


def test_cell_mask_masks_the_ratio_of_whole_cells():
    m = cell_mask(np.random.default_rng(0), 64, 16, 0.5)
    assert m.shape == (64, 64) and m.dtype == bool
    cells = m.reshape(4, 16, 4, 16).transpose(0, 2, 1, 3).reshape(16, -1)
    assert set(cells.mean(1)) == {0.0, 1.0}  # every cell wholly masked or not
    assert cells.mean(1).sum() == 8


@pytest.mark.parametrize(("size", "cell", "ratio", "match"), [(64, 16, 1.0, "mask_ratio"), (60, 16, 0.5, "divide")])
def test_cell_mask_rejects_bad_settings(size, cell, ratio, match):
    with pytest.raises(ValueError, match=match):
        cell_mask(np.random.default_rng(0), size, cell, ratio)


def test_masked_l1_ignores_the_visible_pixels():
    target = torch.zeros(1, 3, 4, 4)
    recon = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    recon[..., 2:, :] = 5.0  # wrong only where visible
    assert float(masked_l1(recon, target, mask)) == 0.0
    recon[..., :2, :] = 1.0
    assert float(masked_l1(recon, target, mask)) == pytest.approx(1.0)


def test_pool_holds_no_building_evaluation_image_and_no_test_split():
    assert "kampala-buildings" not in POOL
    assert POOL["banepa-buildings"] == ("predict",)
    assert not any(name in POOL for name in ("joplin-buildings", "tanzania-austin-buildings"))
    assert all("test" not in splits for splits in POOL.values())


@pytest.mark.realdata
def test_pool_refuses_imagery_whose_first_bands_are_not_rgb(mirror):
    from experiments.recipes.pretrain import pool_images

    with pytest.raises(ValueError, match="nir"):
        pool_images({"potsdam-height": ("val",)})  # NIR, R, G
    assert all(i.shape[0] == 3 for i in pool_images({"chesapeake-landcover": ("val",)}))  # RGB of RGB + NIR


@pytest.mark.slow
@pytest.mark.realdata
def test_pretraining_writes_an_init_the_building_recipe_loads(mirror, tmp_path, monkeypatch):
    from experiments.recipes import pretrain
    from experiments.recipes.common import load_init
    from rsviz.models.architectures import build_model

    monkeypatch.setattr(pretrain, "POOL", {"eth-roads": ("val",)})
    out = pretrain.train(None, {"steps": 2, "crop": 64, "batch_size": 2, "log_every": 1, "out": str(tmp_path / "m")})
    net = build_model(json.loads((out / "config.json").read_text()))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    load_init(net, out / "best.safetensors")
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder") for k in changed)
    s = json.loads((out / "summary.json").read_text())
    assert s["images"] == 10 and s["last_step"] == 2 and np.isfinite(s["final_loss_masked_l1"])
