"""``rsviz evaluate --model``: a prediction COG scored with its card, block by block, equal to the app's figures."""

import json
import os

from rsviz.cli import main
from tests import toy_models


def test_evaluate_with_the_card_equals_the_workspace_evaluation(scene_dir, tmp_path):
    toy_models.register(tmp_path / "models")
    from rsviz.models.api import get_model_card
    from rsviz.workspace import RunOptions, open_path, resolve_extent, run_model
    from rsviz.workspace.metrics import evaluate_run

    s = open_path(scene_dir / "image.tif", scene_dir / "gt.tif")
    run, _ = run_model("toy-pointwise", s, resolve_extent(s, None), RunOptions(tile=96, overlap=0.0, device="cpu"))
    out = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            "--model",
            "toy-pointwise",
            "--pred",
            str(run.path),
            "--gt",
            str(scene_dir / "gt.tif"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    ref = evaluate_run(s, run, get_model_card("toy-pointwise"))
    assert doc["values"]["iou"] == ref["iou"] and doc["values"]["object_f1_iou50"] == ref["object_f1_iou50"]
    assert os.path.exists(out.with_suffix(".csv"))
