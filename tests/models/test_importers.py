"""Model folders from other descriptors (rsviz.models.importers): an MLM item alone, Deepness ONNX metadata and a
torchgeo ``meta`` dict each give a model whose predictions equal the source network's."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import segmentation_models_pytorch as smp
import torch
from torch import nn

from rsviz.errors import ModelFolderError
from rsviz.inference import predict
from rsviz.models.api import BUNDLED_DIR, from_pretrained, get_model_card, list_models
from rsviz.models.importers import (
    card_from_mlm,
    card_from_torchgeo,
    import_deepness,
    import_torchgeo,
    mlm_from_deepness,
    read_deepness,
)
from rsviz.models.mlm import write_mlm
from rsviz.models.store import add_model, extract_archive, remove_model

BUNDLED = sorted(d.name for d in BUNDLED_DIR.iterdir() if (d / "card.json").is_file())


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_card_survives_the_trip_through_its_mlm_item(tmp_path, name):
    card = get_model_card(name)
    shutil.copyfile(BUNDLED_DIR / name / "config.json", tmp_path / "config.json")
    (tmp_path / "model.safetensors").write_bytes(b"")  # only its presence is checked here
    write_mlm(card, tmp_path)
    back = card_from_mlm(tmp_path / "mlm.json").card
    assert back.task == card.task and back.input.bands == card.input.bands
    assert back.input.scale == card.input.scale and back.input.tile_size == card.input.tile_size
    assert np.allclose(back.input.mean, card.input.mean) and np.allclose(back.input.std, card.input.std)
    assert {k: (h.kind, h.channels, h.units) for k, h in back.heads.items()} == {
        k: (h.kind, h.channels, h.units) for k, h in card.heads.items()
    }
    assert [(c.id, c.name, tuple(c.color)) for c in back.classes] == [
        (c.id, c.name, tuple(c.color)) for c in card.classes
    ]
    assert back.input.gsd_range_m == card.input.gsd_range_m


class _Tiny(nn.Module):
    """1x1 conv to 3 classes, softmax inside (as Deepness segmentors are exported)."""

    def __init__(self, probabilities: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 1)
        self.probabilities = probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.softmax(y, 1) if self.probabilities else y


def _onnx(path, net, meta: dict[str, str] | None = None, batch: int | None = None, side: int = 64):
    x = torch.rand(1 if batch else 2, 3, side, side)
    dyn = None if batch else ({0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO},)
    torch.onnx.export(
        net,
        (x,),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_shapes=dyn,
        dynamo=True,
        external_data=False,
    )
    m = onnx.load(str(path))
    for k, v in (meta or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, str(path))
    return path


DEEPNESS = {
    "model_type": json.dumps("Segmentor"),
    "class_names": json.dumps({0: "background", 1: "field", 2: "forest"}),
    "resolution": json.dumps(50),
    "tiles_size": json.dumps(64),
    "tiles_overlap": json.dumps(20),
    "seg_thresh": json.dumps(0.4),
}


def test_a_deepness_onnx_model_predicts_its_own_probabilities(tmp_path):
    net = _Tiny().eval()
    src = _onnx(tmp_path / "fields.onnx", net, DEEPNESS)
    meta = read_deepness(src)
    assert meta.class_names[2] == "forest" and meta.resolution_cm == 50 and meta.tiles_overlap_pct == 20
    d = import_deepness(src, tmp_path / "fields")
    card = json.loads((d / "card.json").read_text())
    assert card["task"] == "landcover" and card["input"]["tile_size"] == 64
    assert card["input"]["gsd_range_m"] == [0.5, 0.5] and card["input"]["overlap"] == pytest.approx(0.2)
    assert [c["name"] for c in card["classes"]] == ["background", "field", "forest"]
    assert json.loads((d / "config.json").read_text())["probability_heads"] == ["seg"]
    lm = from_pretrained(d, "cpu")
    img = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    p = predict(lm, img, tile=64, tta=False)
    with torch.no_grad():
        ref = net(torch.from_numpy(img).float()[None] / 255.0)[0].numpy()
    assert np.array_equal(p.heads["classes"], ref.argmax(0))
    assert np.abs(p.heads["probs"] - ref).max() < 1e-4  # softmax(log p) gives p back


def test_a_fixed_batch_of_one_runs_tile_by_tile(tmp_path):
    net = _Tiny().eval()
    src = _onnx(tmp_path / "fixed.onnx", net, DEEPNESS, batch=1)
    assert read_deepness(src).input_shape == (1, 3, 64, 64)
    lm = from_pretrained(import_deepness(src, tmp_path / "fixed"), "cpu")
    img = np.random.default_rng(1).integers(0, 256, (3, 150, 130), dtype=np.uint8)
    p = predict(lm, img, tile=64, overlap=0.25, tta=False, batch_size=4)
    assert p.heads["classes"].shape == (150, 130)
    with pytest.raises(ModelFolderError, match="takes 64 x 64 px tiles only.*set the tile size to 64"):
        predict(lm, img, tile=96, tta=False)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("resolution", '"fine"', "metadata 'resolution' must be a non-negative number"),
        ("model_type", '"Detector"', "rsviz runs Segmentor and Regressor"),
        ("class_names", "[[", "metadata 'class_names' is not JSON"),
        ("standardization_mean", '"a"', "metadata 'standardization_mean' must be a list"),
    ],
)
def test_bad_deepness_metadata_names_the_key(tmp_path, key, value, match):
    src = _onnx(tmp_path / "m.onnx", _Tiny().eval(), {**DEEPNESS, key: value})
    with pytest.raises(ModelFolderError, match=match):
        mlm_from_deepness(src)


def test_an_mlm_item_alone_describes_a_folder_and_registers(tmp_path):
    net = _Tiny(probabilities=False).eval()
    d = tmp_path / "mine"
    d.mkdir()
    _onnx(d / "model.onnx", net)
    card = get_model_card("landcover-deeplabv3plus")
    card.heads = {"seg": card.heads["seg"].__class__(kind="multiclass", channels=3)}
    card.classes = card.classes[:3]
    card.input.mean, card.input.std = [0.0] * 3, [1.0] * 3
    card.name = "mine"
    write_mlm(card, d, weights="model.onnx")
    item = json.loads((d / "mlm.json").read_text())
    item["properties"]["mlm:output"][0]["name"] = "output"  # the ONNX output's own name
    del item["properties"]["rsviz:heads"]  # as another tool would write it
    (d / "mlm.json").write_text(json.dumps(item))
    assert sorted(p.name for p in d.iterdir()) == ["mlm.json", "model.onnx"]
    lm = from_pretrained(d, "cpu")
    assert lm.card.task == "landcover" and list(lm.card.heads) == ["seg"]
    img = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy(img).float()[None] / 255.0), 1)[0].numpy()
    assert np.abs(predict(lm, img, tile=64, tta=False).heads["probs"] - ref).max() < 1e-4
    m = add_model(d)
    try:
        assert m.runtime == "onnx" and "mine" in list_models()
        assert json.loads((m.folder / "card.json").read_text())["extra"]["descriptor"] == "mlm"
    finally:
        remove_model("mine")


def test_an_mlm_item_with_a_scaling_rsviz_cannot_apply_names_the_field(tmp_path):
    write_mlm(get_model_card("building-seg"), tmp_path)
    item = json.loads((tmp_path / "mlm.json").read_text())
    item["properties"]["mlm:input"][0]["value_scaling"][1] = {"type": "clip", "minimum": 0, "maximum": 200}
    (tmp_path / "mlm.json").write_text(json.dumps(item))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelFolderError, match=r"value_scaling\[1\]\.type is 'clip'"):
        card_from_mlm(tmp_path / "mlm.json")


def test_an_mlm_weights_asset_outside_the_folder_is_refused(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (tmp_path / "model.onnx").write_bytes(b"x")
    write_mlm(get_model_card("building-seg"), d, weights="../model.onnx")
    with pytest.raises(ModelFolderError, match=r"assets\.weights\.href is '\.\./model\.onnx'"):
        card_from_mlm(d / "mlm.json")


TCD_META = {
    "dataset": "OAM-TCD",
    "in_chans": 3,
    "num_classes": 2,
    "model": "U-Net",
    "encoder": "resnet18",
    "bands": ["R", "G", "B"],
    "classes": ("background", "tree-canopy"),
    "input_shape": (3, 64, 64),
    "resolution": 0.1,
    "license": "CC-BY-NC-4.0",
}


def test_torchgeo_weights_import_and_predict_as_the_smp_model(tmp_path):
    torch.manual_seed(0)
    net = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=2).eval()
    torch.save(net.state_dict(), tmp_path / "tcd.pth")
    d = import_torchgeo(TCD_META, tmp_path / "tcd.pth", tmp_path / "tcd", mean=[120.0], std=[60.0])
    assert {"card.json", "config.json", "mlm.json", "model.safetensors"} <= {p.name for p in d.iterdir()}
    lm = from_pretrained(d, "cpu")
    assert lm.card.task == "landcover" and [c.name for c in lm.card.classes] == ["background", "tree-canopy"]
    assert lm.card.input.gsd_range_m == [0.1, 0.1] and lm.card.input.tile_size == 64
    img = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    with torch.no_grad():
        ref = torch.softmax(net((torch.from_numpy(img).float()[None] - 120.0) / 60.0), 1)[0].numpy()
    assert np.abs(predict(lm, img, tile=64, tta=False).heads["probs"] - ref).max() < 1e-4


def test_torchgeo_meta_problems_are_named(tmp_path):
    with pytest.raises(ModelFolderError, match="lacks 'encoder'"):
        card_from_torchgeo({k: v for k, v in TCD_META.items() if k != "encoder"}, name="x", mean=[0], std=[1])
    with pytest.raises(ModelFolderError, match="'model' is 'ViT'"):
        card_from_torchgeo({**TCD_META, "model": "ViT"}, name="x", mean=[0], std=[1])
    with pytest.raises(ModelFolderError, match="mean/std have 2/1 values; the model takes 3 bands"):
        card_from_torchgeo(TCD_META, name="x", mean=[0, 1], std=[1])
    torch.save({"w": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ModelFolderError, match="does not fit"):
        import_torchgeo(TCD_META, tmp_path / "bad.pth", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_zipped_model_folder_registers_and_unsafe_archives_are_refused(tmp_path):
    import zipfile

    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as z:
        for f in ("card.json", "config.json", "model.safetensors"):
            z.write(BUNDLED_DIR / "building-seg" / f, f"building-copy/{f}")
    m = add_model(good)
    try:
        assert m.name == "good" and m.task == "buildings" and "good" in list_models()
    finally:
        remove_model("good")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(ModelFolderError, match="member '../outside.txt' is a link or points outside"):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()
    (tmp_path / "not.zip").write_bytes(b"PK no zip")
    with pytest.raises(ModelFolderError, match="is not a zip archive"):
        add_model(tmp_path / "not.zip")


def test_a_deepness_onnx_file_registers_directly(tmp_path):
    src = _onnx(tmp_path / "fields.onnx", _Tiny().eval(), DEEPNESS)
    m = add_model(src)
    try:
        assert m.name == "fields" and m.runtime == "onnx" and m.outputs["classes"] == (64, 64)
    finally:
        remove_model("fields")


def test_cli_imports_torchgeo_and_deepness_and_registers(tmp_path, capsys):
    from rsviz.cli import main

    torch.manual_seed(0)
    net = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=2).eval()
    torch.save(net.state_dict(), tmp_path / "tcd.pth")
    (tmp_path / "meta.json").write_text(json.dumps(TCD_META))
    args = ["models", "import", "torchgeo", str(tmp_path / "meta.json"), str(tmp_path / "tcd.pth")]
    assert main([*args, "--out", str(tmp_path / "tcd"), "--mean", "120", "--std", "60,60,60"]) == 0
    assert "register it with `rsviz models add" in capsys.readouterr().out
    assert from_pretrained(tmp_path / "tcd", "cpu").card.input.std == pytest.approx([60 / 255] * 3)
    assert main([*args, "--out", str(tmp_path / "tcd2"), "--mean", "a"]) != 0
    src = _onnx(tmp_path / "fields.onnx", _Tiny().eval(), DEEPNESS)
    assert main(["models", "add", str(src), "--name", "cli-fields", "--bands", "r,g,b"]) == 0
    try:
        assert "cli-fields: registered (onnx, landcover, bands r, g, b)" in capsys.readouterr().out
    finally:
        remove_model("cli-fields")
    assert main(["models", "import", "deepness", str(src)]) == 2  # no --out
    assert "--out DIR" in capsys.readouterr().err


class _Sigmoid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


def test_a_binary_deepness_model_uses_its_seg_thresh(tmp_path):
    net = _Sigmoid().eval()
    meta = {**DEEPNESS, "class_names": json.dumps({0: "background", 1: "tree"}), "seg_thresh": "0.38"}
    lm = from_pretrained(import_deepness(_onnx(tmp_path / "trees.onnx", net, meta), tmp_path / "trees"), "cpu")
    assert lm.card.task == "buildings" and lm.card.heads["seg"].kind == "binary"
    img = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    p = predict(lm, img, tile=64, tta=False)
    with torch.no_grad():
        prob = net(torch.from_numpy(img).float()[None] / 255.0)[0, 0].numpy()
    assert np.abs(p.heads["probs"][0] - prob).max() < 1e-4  # sigmoid(logit p) gives p back
    assert np.array_equal(p.heads["classes"], (prob >= 0.38).astype(np.uint8))
    assert not np.array_equal(p.heads["classes"], (prob >= 0.5).astype(np.uint8))  # the threshold mattered
    assert np.array_equal(predict(lm, img, tile=64, tta=False, threshold=0.5).heads["classes"], prob >= 0.5)
