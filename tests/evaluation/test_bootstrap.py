"""Stage selection: a candidate replaces bundled weights only when a paired bootstrap over val images says so."""

import numpy as np
import pytest

from rsviz.evaluation.bootstrap import REPLACE_P, mean_score, p_better, pooled_f1


def test_pooled_f1_pools_counts_over_images():
    assert pooled_f1(np.array([[3, 1, 0], [1, 0, 3]])) == pytest.approx(2 * 4 / (2 * 4 + 1 + 3))
    assert pooled_f1(np.zeros((2, 3))) == 0.0


def test_a_consistent_gain_wins_and_a_lucky_one_does_not():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.8, 10)
    assert p_better(base, base + 0.02, mean_score) == 1.0  # better on every image
    assert p_better(base, base, mean_score) == 0.5  # identical: every draw a tie
    lucky = base.copy()
    lucky[0] += 0.5  # one tile improves a lot, two get worse: the mean rises by 0.03
    lucky[1:3] -= 0.05
    assert mean_score(lucky) > mean_score(base)
    assert p_better(base, lucky, mean_score) < REPLACE_P
    assert p_better(base, lucky, mean_score, seed=3) == pytest.approx(p_better(base, lucky, mean_score, seed=3))


def test_nan_tiles_are_ignored_and_mismatched_inputs_rejected():
    a = np.array([0.5, np.nan, 0.5, 0.5])
    assert p_better(a, a + 0.1, mean_score) == 1.0
    with pytest.raises(ValueError, match="same non-zero number"):
        p_better([0.1, 0.2], [0.1], mean_score)


def test_from_pretrained_loads_a_folder_outside_the_registry(tmp_path):
    import torch

    from rsviz.models.api import from_pretrained, load_model, model_dir

    src = model_dir("building-seg")
    dst = tmp_path / "candidate"
    dst.mkdir()
    for f in ("card.json", "config.json", "model.safetensors"):
        (dst / f).write_bytes((src / f).read_bytes())
    lm, ref = from_pretrained(dst, "cpu"), load_model("building-seg", "cpu")
    assert lm.name == "candidate" and lm.card.name == "building-seg"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(lm.net(x)["seg"], ref.net(x)["seg"])
