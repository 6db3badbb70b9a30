import numpy as np
import pytest
import torch

from rsviz.datasets.bigearthnet import BANDS, upsample_stack
from rsviz.models.s2 import VARIANTS, S2MultiLabel, split_resolutions


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_output_19_logits(variant):
    net = S2MultiLabel(variant).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 12, 120, 120))
    assert out["labels"].shape == (2, 19)
    with pytest.raises(ValueError):
        S2MultiLabel("nope")


def test_pooling_recovers_native_resolutions_exactly():
    rng = np.random.default_rng(0)
    native = {
        b: rng.integers(0, 10000, (120 if b in BANDS[:4] else 60 if b in BANDS[4:10] else 20,) * 2).astype(np.float32)
        for b in BANDS
    }
    x = torch.from_numpy(upsample_stack(native)[None])
    x10, x20, x60 = split_resolutions(x)
    np.testing.assert_array_equal(x20[0, 0].numpy(), native["B05"])
    np.testing.assert_array_equal(x60[0, 1].numpy(), native["B09"])
    assert x10.shape == (1, 4, 120, 120)


@pytest.mark.realdata
def test_lmdb_safetensors_patches(mirror):
    from rsviz.datasets.bigearthnet import lmdb_patches

    p = lmdb_patches()
    assert len(p) == 18 and {s for _, s, _, _ in p} == {"train", "val", "test"}
    pid, _, img, lab = p[0]
    assert img.shape == (12, 120, 120) and img.dtype == np.uint16 and lab.sum() >= 1


@pytest.mark.realdata
def test_dense_predict_refuses_scene_classifier(mirror):
    from rsviz.errors import ModelInputError
    from rsviz.inference import predict

    with pytest.raises(ModelInputError, match="Scene classification"):
        predict("s2-resize", np.zeros((12, 120, 120), np.uint16), device="cpu")
