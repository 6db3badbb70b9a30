"""Exported bundled models (ONNX, torch.export) load back and agree with the PyTorch engine on a real chip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from rsviz.errors import ModelFolderError, UnknownNameError
from rsviz.inference.engine import predict
from rsviz.models.api import from_pretrained, load_model
from rsviz.models.export import export_model
from rsviz.models.runtimes import RuntimeNet

SEG_MODELS = ("building-seg", "building-mtl", "height-mtl", "landcover-deeplabv3plus", "roads-pplinknet")
CHIP = "banepa-buildings/data/sample/train/oam/OAM-386694-220246-19.tif"
TOL = 1e-4


def _chip(mirror):
    with rasterio.open(mirror / CHIP) as src:
        return src.read([1, 2, 3], window=Window(0, 0, 256, 256))


def _max_diff(name, fmt, chip, tmp_path):
    d = export_model(name, fmt, tmp_path / f"{name}-{fmt}", tile=256)
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["runtime"] == {"onnx": "onnx", "pt2": "export"}[fmt]
    lm = from_pretrained(d, "cpu")
    assert isinstance(lm.net, RuntimeNet)
    ref = predict(load_model(name, "cpu"), chip, tile=256, tta=False, precision="fp32")
    got = predict(lm, chip, tile=256, tta=False, precision="fp32")
    assert set(got.heads) == set(ref.heads)
    # reconstructions are in input units (0-255): compared as the network sees them, divided by the card's scale
    scale = {k: lm.card.input.scale for k, h in lm.card.heads.items() if h.kind == "reconstruction"}
    diffs = {}
    for k, v in ref.heads.items():
        if np.issubdtype(v.dtype, np.floating):
            d = np.abs(got.heads[k].astype(np.float64) - v) / scale.get(k, 1.0)
            diffs[k] = float(np.nanmax(d))
    assert diffs, "no float output to compare"
    print(f"{name} {fmt} max abs diff {diffs}")
    return max(diffs.values())


@pytest.mark.realdata
def test_building_seg_onnx_round_trip_agrees(mirror, tmp_path, capsys):
    """Exported to ONNX, registered through ``rsviz models add``, listed, and predicting like the PyTorch model."""
    from rsviz.cli import main
    from rsviz.models.api import list_models
    from rsviz.models.store import remove_model

    chip = _chip(mirror)
    assert _max_diff("building-seg", "onnx", chip, tmp_path) <= TOL
    assert main(["models", "add", str(tmp_path / "building-seg-onnx"), "--name", "my-seg-onnx"]) == 0
    out = capsys.readouterr().out
    assert "my-seg-onnx: registered (onnx, buildings, bands red, green, blue)" in out and "classes 64x64" in out
    try:
        assert "my-seg-onnx" in list_models()
        assert main(["models", "list"]) == 0 and "my-seg-onnx" in capsys.readouterr().out
        ref = predict(load_model("building-seg", "cpu"), chip, tile=256, tta=False, precision="fp32")
        got = predict(load_model("my-seg-onnx", "cpu"), chip, tile=256, tta=False, precision="fp32")
        assert float(np.abs(got.heads["probs"] - ref.heads["probs"]).max()) <= TOL
        assert (got.heads["classes"] != ref.heads["classes"]).mean() < 1e-4
        # the Metrics page's figures (workspace runs scored by evaluate_run) are the same for both
        from rsviz.datasets import scenes
        from rsviz.models.api import get_model_card
        from rsviz.workspace import RunOptions, open_sample, resolve_extent, run_model
        from rsviz.workspace.metrics import evaluate_run

        scene = open_sample(next(r for r in scenes("banepa-buildings") if r.id == "OAM-386694-220246-19"))
        ext = resolve_extent(scene, None)
        scores = []
        for m in ("building-seg", "my-seg-onnx"):
            run, _ = run_model(m, scene, ext, RunOptions(tta=False, device="cpu"))
            scores.append(evaluate_run(scene, run, get_model_card(m)))
        assert scores[0] is not None and 0.3 < scores[0]["iou"] < 1
        assert abs(scores[0]["iou"] - scores[1]["iou"]) < 1e-3
        assert abs(scores[0]["object_f1_iou50"] - scores[1]["object_f1_iou50"]) < 0.01
    finally:
        remove_model("my-seg-onnx")
    assert "my-seg-onnx" not in list_models()


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
@pytest.mark.parametrize("name", SEG_MODELS)
def test_every_segmentation_model_round_trips(mirror, tmp_path, name, fmt):
    if (name, fmt) == ("building-seg", "onnx"):
        pytest.skip("covered by test_building_seg_onnx_round_trip_agrees")
    assert _max_diff(name, fmt, _chip(mirror), tmp_path) <= TOL


def test_unknown_format_lists_valid_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="onnx, pt2"):
        export_model("building-seg", "tflite", tmp_path / "x")


def test_non_dense_model_is_refused(tmp_path):
    with pytest.raises(ModelFolderError, match="no per-pixel head"):
        export_model("s2-late", "onnx", tmp_path / "x")
