"""Re-measure a packaged model's card figures through the one evaluator, weights untouched.

``rsviz package refresh weights/NAME [weights/NAME ...] --out DIR`` copies each model folder into
``DIR`` and rewrites its ``card.json`` metrics (and ``README.md``) from the stored weights, with the
card's own post-processing, TTA and splits: nothing is chosen, nothing is trained. The previous
figures are kept under ``extra.metrics_before_refresh`` so every change can be read beside its
cause. ``rsviz promote DIR/NAME`` then accepts the folder because its weights are byte-identical to
the bundled ones (a metrics refresh, not a new model).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from rsviz.models.api import LoadedModel, from_pretrained, render_card_markdown
from rsviz.models.card import ModelCard


def measure(lm: LoadedModel) -> dict[str, dict[str, Any]]:
    """The card's metrics re-measured by task (the splits each packager reports).

    Raises:
        ValueError: A task with no card evaluation here.
    """
    task = lm.card.task
    if task == "buildings":
        from experiments.packaging.building import SPLITS, evaluate_building

        return {split: evaluate_building(lm, split) for split in SPLITS}
    if task == "roads":
        from experiments.packaging.semantic import evaluate_roads

        return {"eth-test": evaluate_roads(lm, "test"), "eth-val": evaluate_roads(lm, "val")}
    if task == "landcover":
        from experiments.packaging.semantic import evaluate_landcover

        return {"dubai-test": evaluate_landcover(lm, "test"), "dubai-val": evaluate_landcover(lm, "val")}
    if task == "height":
        from experiments.packaging.height import evaluate_height_model

        return evaluate_height_model(lm)
    if task == "scene":
        from experiments.packaging.s2 import scene_figures
        from rsviz.datasets.bigearthnet import patches_by_split

        splits = patches_by_split()
        return {"bigearthnet-test": scene_figures(lm, splits["test"], splits["train"])}
    raise ValueError(f"no card evaluation for task {task!r}; valid: buildings, roads, landcover, height, scene")


def remeasure(model_dir: Path, *, keep_other_splits: bool = False, record_before: bool = False) -> ModelCard:
    """Re-measure a model folder's card in place from its stored weights (which are not touched).

    Args:
        model_dir: The folder (``config.json``, ``model.safetensors``, ``card.json``).
        keep_other_splits: Keep the card's figures of splits :func:`measure` does not report (else they go).
        record_before: Keep the previous figures under ``extra.metrics_before_refresh`` (the first ones, on
            a repeated refresh).

    Returns:
        The rewritten card (``card.json`` and ``README.md`` are saved).
    """
    lm = from_pretrained(model_dir, "cpu")
    card = lm.card
    fresh = measure(lm)
    if record_before:
        card.extra["metrics_before_refresh"] = card.extra.get("metrics_before_refresh") or card.metrics
    card.metrics = {**card.metrics, **fresh} if keep_other_splits else fresh
    if card.task != "scene":  # the S2 cards' intervals and baseline come from experiments.packaging.s2
        from experiments.packaging.figures import BASELINE_NOTE, METHOD

        card.extra["interval_method"] = METHOD
        card.extra["baseline_note"] = BASELINE_NOTE
    if card.task == "roads":
        from experiments.packaging.semantic import road_metric_policy
        from rsviz.models.card import road_graph_of

        card.extra["metric_policy"] = road_metric_policy(road_graph_of(card).to_dict())
    card.save(model_dir / "card.json")
    (model_dir / "README.md").write_text(render_card_markdown(card), encoding="utf-8")
    return card


def refresh(model_dir: Path, out: Path) -> Path:
    """Copy ``model_dir`` into ``out`` and re-measure the copy's card; returns the copy's folder."""
    dst = out / model_dir.name
    if dst.resolve() != model_dir.resolve():
        shutil.copytree(model_dir, dst, dirs_exist_ok=True)
    remeasure(dst, record_before=True)
    return dst


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="rsviz package refresh", description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="model folders, e.g. weights/building-mtl")
    ap.add_argument("--out", type=Path, required=True, help="folder the refreshed copies are written into")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    for m in a.models:
        d = refresh(m, a.out)
        print(d.name, json.dumps(json.loads((d / "card.json").read_text())["metrics"], indent=1))
