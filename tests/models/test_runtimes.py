"""Runtimes load only what their extension says, never unpickle, and feed the Predictor like a PyTorch net."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from rsviz.errors import ModelFolderError, RsvizError, UnknownNameError
from rsviz.inference.predictor import Predictor
from rsviz.models.api import BUNDLED_DIR, LoadedModel, from_pretrained, get_model_card
from rsviz.models.runtimes import check_onnx, load_runtime, runtime_for


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"seg": self.conv(x)}


def _folder(tmp_path, runtime, fname):
    d = tmp_path / "m"
    d.mkdir()
    shutil.copyfile(BUNDLED_DIR / "building-seg" / "card.json", d / "card.json")
    (d / "config.json").write_text(json.dumps({"runtime": runtime, "file": fname}))
    return d


def _identity_onnx(path, domain=""):
    node = helper.make_node("Relu" if not domain else "MyOp", ["x"], ["seg"], domain=domain)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, "h", "w"])],
        [helper.make_tensor_value_info("seg", TensorProto.FLOAT, ["b", 3, "h", "w"])],
    )
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))


def test_torchscript_runs_through_the_predictor_like_the_eager_net(tmp_path):
    net = _Tiny().eval()
    d = _folder(tmp_path, "torchscript", "model.pt")
    torch.jit.save(torch.jit.script(net), str(d / "model.pt"))
    lm = from_pretrained(d, "cpu")
    batch = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    got = Predictor(lm, tta=True, precision="fp32")(batch).clone()
    ref = Predictor(LoadedModel("eager", get_model_card("building-seg"), net, torch.device("cpu")), tta=True)(batch)
    assert got.shape == (2, 2, 64, 64)  # seg + tta_var
    assert torch.allclose(got, ref, atol=1e-5)


def test_onnx_outputs_are_matched_by_head_name(tmp_path):
    _identity_onnx(tmp_path / "m.onnx")
    net = load_runtime("onnx", tmp_path / "m.onnx", ["seg"], torch.device("cpu"))
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(net(x)["seg"], x.clamp(min=0))


def test_onnx_that_is_not_onnx_is_refused(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"this is a text file renamed to .onnx\n" * 10)
    with pytest.raises(ModelFolderError, match="not an ONNX model"):
        check_onnx(p)


def test_onnx_with_custom_domain_operator_is_refused(tmp_path):
    _identity_onnx(tmp_path / "m.onnx", domain="com.example.custom")
    with pytest.raises(ModelFolderError, match=r"custom operators \['com.example.custom::MyOp'\]"):
        load_runtime("onnx", tmp_path / "m.onnx", ["seg"], torch.device("cpu"))


def test_onnx_with_external_data_outside_the_folder_is_refused(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    w = helper.make_tensor("w", TensorProto.FLOAT, [3], np.ones(3, np.float32).tobytes(), raw=True)
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    w.external_data.add(key="location", value="../../etc/passwd")
    node = helper.make_node("Add", ["x", "w"], ["seg"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 1, 1])],
        [helper.make_tensor_value_info("seg", TensorProto.FLOAT, [1, 3, 1, 1])],
        initializer=[w],
    )
    onnx.save(helper.make_model(graph), str(d / "model.onnx"))
    with pytest.raises(ModelFolderError, match=r"'w' has external data at '../../etc/passwd', outside"):
        check_onnx(d / "model.onnx")


@pytest.mark.parametrize("fname, runtime", [("model.pt2", "export"), ("model.pt", "torchscript")])
def test_pickles_are_refused_without_unpickling(tmp_path, fname, runtime):
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    d = _folder(tmp_path, runtime, fname)
    (d / fname).write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ModelFolderError, match="is a Python pickle"):
        from_pretrained(d, "cpu")


@pytest.mark.parametrize(
    "fname, runtime, match",
    [("model.pt2", "export", "holds pickles"), ("model.pt", "torchscript", "torch.save checkpoint")],
)
def test_torch_save_checkpoints_are_refused(tmp_path, fname, runtime, match):
    d = _folder(tmp_path, runtime, fname)
    torch.save({"state_dict": _Tiny().state_dict()}, d / fname)
    with pytest.raises(ModelFolderError, match=match):
        from_pretrained(d, "cpu")


def test_unknown_runtime_and_extension_list_valid_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="valid names: export, onnx, torchscript"):
        load_runtime("tflite", tmp_path / "m.tflite", ["seg"], torch.device("cpu"))
    with pytest.raises(RsvizError, match=r"valid: \.onnx, \.pt, \.pt2"):
        runtime_for(tmp_path / "m.h5")
