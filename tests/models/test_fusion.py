"""Batch-norm folding for inference (rsviz.models.fusion)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rsviz.models.api import list_models, load_model
from rsviz.models.fusion import count_batchnorms, fold_batchnorm, inference_net

SIZE = {"scene": 120}  # S2 patches are 120 x 120 at 10 m; segmentation models take multiples of 32


@pytest.mark.parametrize("name", list_models())
def test_every_bundled_model_folds_to_the_same_outputs(name):
    lm = load_model(name, "cpu")
    size = SIZE.get(lm.card.task, 64)
    x = torch.randn(2, lm.card.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    folded = fold_batchnorm(lm.net)
    assert type(folded) is type(lm.net) and not folded.training
    assert count_batchnorms(lm.net) > 0
    assert count_batchnorms(folded) == 0, "some Conv -> BatchNorm pair was not folded"
    with torch.inference_mode():
        ref, out = lm.net(x), folded(x)
    assert set(out) == set(ref)
    for k in ref:
        assert out[k].shape == ref[k].shape and out[k].dtype == ref[k].dtype
        scale = ref[k].abs().max().item() + 1.0
        assert (out[k] - ref[k]).abs().max().item() <= 1e-4 * scale, k
    assert count_batchnorms(lm.net) > 0, "the loaded model itself must stay unfolded"


@pytest.mark.parametrize(
    "conv",
    [nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ConvTranspose2d(3, 4, 2, stride=2)],
    ids=["conv", "transposed"],
)
def test_folding_is_exact_for_a_hand_built_conv_bn(conv):
    torch.manual_seed(0)
    net = nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU())
    bn = net[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    net.eval()
    x = torch.randn(1, 3, 8, 8)
    folded = fold_batchnorm(net)
    assert count_batchnorms(folded) == 0
    torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)


def test_batchnorm_whose_input_is_used_twice_is_not_folded():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y  # folding would change the second use of y

    net = Branch().eval()
    net.bn.running_mean.fill_(0.5)
    x = torch.randn(1, 2, 4, 4)
    folded = fold_batchnorm(net)
    assert count_batchnorms(folded) == 1
    torch.testing.assert_close(folded(x), net(x))


def test_untraceable_network_is_used_unfolded():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)

        def forward(self, x):
            if x.sum() > 0:  # control flow on a tensor value: torch.fx cannot trace it
                return self.bn(self.conv(x))
            return x

    net = DataDependent().eval()
    folded = fold_batchnorm(net)
    assert count_batchnorms(folded) == 1 and folded is not net  # the pair sits in an untraceable forward
    x = torch.ones(1, 1, 2, 2)
    torch.testing.assert_close(folded(x), net(x))


def test_inference_net_is_cached_until_the_weights_change():
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)).eval()
    a = inference_net(net)
    assert inference_net(net) is a
    x = torch.ones(1, 1, 2, 2)
    before = a(x).clone()
    with torch.no_grad():
        net[0].weight.mul_(2.0)  # what an optimiser step does: an in-place update
    b = inference_net(net)
    assert b is not a
    torch.testing.assert_close(b(x), net(x))
    assert not torch.allclose(b(x), before)
    net.train()
    assert not inference_net(net).training, "the folded copy is always in eval mode"


def test_channels_last_copy_is_cached_separately_and_agrees():
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)).eval()
    plain, nhwc = inference_net(net), inference_net(net, channels_last=True)
    assert plain is not nhwc and inference_net(net, channels_last=True) is nhwc
    assert nhwc[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(nhwc(x.contiguous(memory_format=torch.channels_last)), plain(x))


def test_first_uses_trace_safely_beside_warm_runs():
    """Models prepared for the first time (a torch.fx trace) in threads while another thread runs a warm model:
    every forward succeeds and gives the same output as alone (torch.fx patches torch globals while tracing)."""
    import threading

    import segmentation_models_pytorch as smp

    from rsviz.models.fusion import TRACE_GATE, inference_net

    torch.manual_seed(0)
    warm = inference_net(smp.Unet("resnet18", encoder_weights=None, classes=1).eval())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = warm(x)
    errors: list[BaseException] = []
    outs: list[torch.Tensor] = []

    def run_warm() -> None:
        try:
            for _ in range(30):
                with TRACE_GATE.shared(), torch.no_grad():
                    outs.append(warm(x))
        except BaseException as e:  # noqa: BLE001  (collected and asserted below)
            errors.append(e)

    def first_use(seed: int) -> None:
        try:
            torch.manual_seed(seed)
            inference_net(smp.Unet("resnet18", encoder_weights=None, classes=2).eval())
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run_warm)] + [threading.Thread(target=first_use, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(outs) == 30 and all(torch.equal(o, ref) for o in outs)


def test_a_model_built_under_inference_mode_can_be_prepared_later():
    """A model first loaded inside ``torch.inference_mode`` (the Sentinel-2 patch grid does) has inference
    tensors, which keep no version counter; preparing its inference copy outside must not fail on them."""
    import torch
    from torch import nn

    from rsviz.models.fusion import inference_net

    with torch.inference_mode():
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    fused = inference_net(net)
    with torch.inference_mode():
        x = torch.rand(1, 3, 16, 16)
        assert torch.allclose(fused(x), net(x), atol=1e-5)
