import pytest
import torch

from rsviz.models.architectures import build_model
from rsviz.models.losses import binary_focal_loss
from rsviz.models.pplinknet import PyramidPooling, poly_lr_lambda


def test_pplinknet_shapes_and_pyramid_bins():
    net = build_model({"arch": "pplinknet", "encoder_name": "resnet18", "classes": 1}).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 96, 128))
    assert out["seg"].shape == (1, 1, 96, 128)
    assert [s[0].output_size for s in net.ppm.stages] == [1, 2, 3, 6]
    ppm = PyramidPooling(64)
    assert ppm(torch.randn(2, 64, 7, 9)).shape == (2, 64, 7, 9)


def test_poly_schedule_and_focal_loss():
    f = poly_lr_lambda(100, 0.9)
    assert f(0) == 1.0 and f(100) == 0.0 and f(50) == pytest.approx(0.5**0.9)
    logits = torch.tensor([[4.0, -4.0]])
    target = torch.tensor([[1.0, 0.0]])
    easy = binary_focal_loss(logits, target)
    hard = binary_focal_loss(-logits, target)
    assert easy < 1e-3 < hard  # well-classified pixels are down-weighted


def test_soft_skeleton_thins_a_road_and_cldice_penalises_breaks():
    from rsviz.models.losses import soft_cldice_loss, soft_skeleton

    road = torch.zeros(1, 1, 40, 80)
    road[..., 16:25, 5:75] = 1.0  # a 9 px wide road
    sk = soft_skeleton(road, iterations=6)
    assert sk.sum() < 0.25 * road.sum()  # thinned
    assert sk[..., :, 40].argmax() == 20  # on the centre line
    logit = lambda m: (m * 2 - 1) * 8.0  # noqa: E731
    broken = road.clone()
    broken[..., :, 38:42] = 0  # a 4 px gap: tiny in area...
    whole, gap = soft_cldice_loss(logit(road), road, 6), soft_cldice_loss(logit(broken), road, 6)
    assert whole < 0.01 and gap > whole
    # ...so clDice penalises it more, relative to the area lost, than soft Dice does
    from rsviz.models.losses import soft_dice_loss

    assert gap / (1 - broken.sum() / road.sum()) > soft_dice_loss(logit(broken), road) / (1 - broken.sum() / road.sum())
    assert soft_cldice_loss(logit(road), road, 3, downsample=2) < 0.01
