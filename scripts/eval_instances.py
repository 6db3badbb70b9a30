"""Where the multi-task model's object F1 comes from: its edge head's instance split, or the footprint itself.

``python scripts/eval_instances.py`` (issue #23). The bundled ``building-mtl`` (edge head) and ``building-seg``
(no edge head) predict the Banepa and Kampala test chips once, with their cards' input settings; each
prediction is then turned into building instances three ways: its card's own post-processing (``edge``
watershed for building-mtl, ``distance`` watershed for building-seg), plain 4-connected components of the
footprint at the same threshold and minimum size, and (to hold the method fixed) building-seg's distance
watershed for both. Object F1@0.5 is pooled over the 12 chips (Banepa test buffered: the footprints cut by an
edge shared with a train or val chip are not scored), and the two models are compared by the paired chip
bootstrap (:func:`rsviz.evaluation.bootstrap.p_better`, 2000 draws, seed 0) under each
post-processing. Test-only: nothing is chosen here. Prints a Markdown table with the CPU.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from eval_gsd import cpu_name

from experiments.packaging.building import object_scores, val_predictions
from rsviz.datasets.buildings import scoring_valid, split_groups
from rsviz.evaluation.bootstrap import p_better, pooled_f1
from rsviz.models.api import LoadedModel, load_model
from rsviz.postprocess import InstanceSettings, instances_for

MODELS = ("building-mtl", "building-seg")
TEST_SPLITS = (("banepa-buildings", "test"), ("kampala-buildings", "test"))


def _instance_settings(lm: LoadedModel) -> InstanceSettings:
    settings = lm.card.postprocess.instances
    assert settings is not None, f"{lm.card.name}'s card has no instance post-processing"
    return settings


def counts(lm: LoadedModel, seg: InstanceSettings) -> dict[str, np.ndarray]:
    """``{"card", "components", "distance"}`` -> ``(12, 3)`` per-chip object ``(tp, fp, fn)`` of one bundled model;
    ``seg`` is building-seg's instance settings (distance-transform watershed, chosen on val without edges)."""
    own = _instance_settings(lm)
    plain = dataclasses.replace(own, method="components")
    distance = dataclasses.replace(seg, threshold=own.threshold)
    groups = split_groups()
    out: dict[str, list[tuple[int, int, int]]] = {"card": [], "components": [], "distance": []}
    for s, pred in val_predictions(lm, TEST_SPLITS):
        valid, _ = scoring_valid(s, groups)
        gt = s.targets["buildings"].astype(bool)
        for key, settings in (("card", own), ("components", plain), ("distance", distance)):
            sc, _ = object_scores(instances_for(pred.heads, settings), gt, s.targets["instances"], valid)
            out[key].append((int(sc["tp"]), int(sc["fp"]), int(sc["fn"])))
    return {k: np.array(v, float) for k, v in out.items()}


def main() -> None:
    models = {name: load_model(name, "cpu") for name in MODELS}
    seg = _instance_settings(models["building-seg"])
    c = {name: counts(lm, seg) for name, lm in models.items()}
    print(f"CPU: {cpu_name()}\n")
    print("| post-processing | building-mtl object F1 | building-seg object F1 | P(mtl > seg) |")
    print("|---|---|---|---|")
    rows = (
        ("card", "each card's own"),
        ("components", "plain connected components"),
        ("distance", "distance watershed (building-seg's settings)"),
    )
    for key, label in rows:
        mtl, seg = c["building-mtl"][key], c["building-seg"][key]
        p = p_better(seg, mtl, pooled_f1, n=2000, seed=0)
        print(f"| {label} | {pooled_f1(mtl):.3f} | {pooled_f1(seg):.3f} | {p:.2f} |")


if __name__ == "__main__":
    main()
