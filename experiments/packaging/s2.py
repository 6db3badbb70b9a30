"""Evaluate the three Sentinel-2 fusion variants on the held-out patches and bundle them.

``python -m experiments.packaging.s2 runs/s2-resize runs/s2-intermediate runs/s2-late`` writes
``weights/s2-<variant>/`` each with a card holding its own test metrics and, under
``extra.variants``, the comparison of all three.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from experiments.packaging import add_out_argument
from experiments.recipes.s2 import load_patches
from rsviz.datasets.bigearthnet import BANDS, LABELS_19
from rsviz.evaluation import evaluate_patches, multilabel_rows
from rsviz.models.api import LoadedModel, save_pretrained
from rsviz.models.architectures import build_model
from rsviz.models.card import HeadSpec, InputSpec, ModelCard
from rsviz.types import ClassInfo

_TAB20 = [
    (31, 119, 180),
    (174, 199, 232),
    (255, 127, 14),
    (255, 187, 120),
    (44, 160, 44),
    (152, 223, 138),
    (214, 39, 40),
    (255, 152, 150),
    (148, 103, 189),
    (197, 176, 213),
    (140, 86, 75),
    (196, 156, 148),
    (227, 119, 194),
    (247, 182, 210),
    (127, 127, 127),
    (199, 199, 199),
    (188, 189, 34),
    (219, 219, 141),
    (23, 190, 207),
]


def evaluate_variant(lm: LoadedModel, patches) -> dict:
    """Multi-label figures of a loaded S2 model on ``[(id, image, labels19)]`` through the one evaluator
    (:func:`rsviz.evaluation.evaluate_patches`); ``per_label`` is the per-label table."""
    r = evaluate_patches(lm, patches)
    return {**r.values, "per_label": multilabel_rows(r)}


#: Labels the majority baseline predicts for every patch (the commonest in training).
MAJORITY_K = 3
#: Bootstrap draws of the 95 % intervals over test patches.
DRAWS = 1000


def scene_figures(lm: LoadedModel, test, train, *, seed: int = 0) -> dict:
    """Test figures of an S2 model with 95 % bootstrap intervals over patches, beside the majority baseline.

    The baseline predicts the :data:`MAJORITY_K` labels commonest in ``train`` for every patch (probability 1,
    the rest 0). Intervals: percentile bootstrap of the pooled figure over :data:`DRAWS` resamplings of the
    test patches with replacement (the same resamplings for the model and the baseline, so
    ``p_model_above_baseline`` is a paired bootstrap).

    Args:
        lm: The model.
        test: ``[(id, (12, 120, 120) image, (19,) labels)]`` scored.
        train: The same for the training patches (their label counts only).
        seed: Bootstrap seed.

    Returns:
        ``micro_f1``, ``macro_f1``, ``map``, ``patches``, ``*_ci95`` pairs, ``majority_micro_f1``,
        ``majority_macro_f1``, ``majority_labels`` and ``p_model_above_baseline`` (micro-F1).
    """
    import numpy as np

    from rsviz.evaluation import evaluate, pool
    from rsviz.inference.classify import classify_patch
    from rsviz.types import Task

    classes = lm.card.classes or None
    per = [evaluate(classify_patch(lm, img), np.asarray(y), Task.SCENE, classes=classes) for _, img, y in test]
    counts = np.sum([np.asarray(y, np.int64) for _, _, y in train], axis=0)  # signed: -counts below
    top = np.argsort(-counts, kind="stable")[:MAJORITY_K]
    const = np.zeros(len(counts), np.float32)
    const[top] = 1.0
    base = [evaluate(const, np.asarray(y), Task.SCENE, classes=classes) for _, _, y in test]
    m, b = pool(per), pool(base)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per), (DRAWS, len(per)))
    boot: dict[str, list[float]] = {"micro_f1": [], "macro_f1": [], "map": [], "majority_micro_f1": []}
    for row in draws:
        pm, pb = pool([per[i] for i in row]), pool([base[i] for i in row])
        for k in ("micro_f1", "macro_f1", "map"):
            boot[k].append(float(pm.values[k]))
        boot["majority_micro_f1"].append(float(pb.values["micro_f1"]))
    out: dict = {k: m.values[k] for k in ("micro_f1", "macro_f1", "map", "patches")}
    for k, v in boot.items():
        out[f"{k}_ci95"] = [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
    out["majority_micro_f1"] = float(b.values["micro_f1"])
    out["majority_macro_f1"] = float(b.values["macro_f1"])
    out["majority_labels"] = [LABELS_19[i] for i in top]
    out["p_model_above_baseline"] = float(np.mean(np.array(boot["micro_f1"]) > np.array(boot["majority_micro_f1"])))
    return out


def card_for(variant: str, train_cfg: dict, metrics: dict, extra: dict) -> ModelCard:
    """Model card of one variant."""
    return ModelCard(
        name=f"s2-{variant}",
        title=f"Sentinel-2 multi-label scene classifier ({variant} fusion)",
        task="scene",
        architecture=f"S2MultiLabel CNN, {variant} fusion of 10/20/60 m bands (see rsviz.models.s2), width {train_cfg['width']}",
        paper="Inter-region transfer learning on BigEarthNet with resize / intermediate / late band fusion; "
        "BigEarthNet: Sumbul et al., IGARSS 2019; 19-class nomenclature: Sumbul et al., IEEE GRSM 2021",
        heads={"labels": HeadSpec("multilabel", 19, description="BigEarthNet-19 label probabilities (sigmoid)")},
        input=InputSpec(
            bands=list(BANDS),
            dtype="uint16",
            scale=10000.0,
            mean=train_cfg["band_mean"],
            std=train_cfg["band_std"],
            gsd_range_m=[10.0, 10.0],
            tile_size=120,
            overlap=0.0,
        ),
        classes=[ClassInfo(i, n, _TAB20[i]) for i, n in enumerate(LABELS_19)],
        training_data=[
            {
                "dataset": "bigearthnet",
                "splits": f"{train_cfg['patches']} patches (train/val/test); GeoTIFF "
                "form (bigearthnet-gdf-builder sdist) and v2 LMDB of safetensors (configilm wheel)",
                "licence": "BigEarthNet CDLA-Permissive-1.0",
                "attribution": "BigEarthNet (CDLA-Permissive-1.0)",
            }
        ],
        recipe=train_cfg,
        metrics=metrics,
        extra=extra,
        licence="CDLA-Permissive-1.0 (as the training data)",
    )


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="rsviz package s2", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="training run folders (one per fusion variant)")
    add_out_argument(ap)
    a = ap.parse_args(argv)
    run_dirs = a.runs
    test = load_patches()["test"]
    results = {}
    for d in map(Path, run_dirs):
        cfg = json.loads((d / "config.json").read_text())
        tcfg = json.loads((d / "train_config.json").read_text())
        net = build_model(cfg)
        net.load_state_dict(load_file(str(d / "best.safetensors")))
        net.eval()
        card = card_for(cfg["variant"], tcfg, {}, {})
        lm = LoadedModel(card.name, card, net, torch.device("cpu"))
        m = evaluate_variant(lm, test)
        results[cfg["variant"]] = (d, cfg, tcfg, net, m)
    comparison = {v: {k: r[4][k] for k in ("micro_f1", "macro_f1", "map")} for v, r in results.items()}
    for v, (d, cfg, tcfg, net, m) in results.items():
        summary = json.loads((d / "summary.json").read_text())
        extra = {
            "variants": comparison,
            "per_label_test": m["per_label"],
            "best_val_micro_f1": summary["best_val_micro_f1"],
            "demo_scale": "trained and tested on the ~30 BigEarthNet patches shipped in PyPI packages; "
            "not representative of BigEarthNet-scale accuracy",
        }
        card = card_for(
            v, tcfg, {"bigearthnet-test": {k: m[k] for k in ("micro_f1", "macro_f1", "map", "patches")}}, extra
        )
        save_pretrained(net, cfg, card, a.out / f"s2-{v}", half=False)
    print(json.dumps(comparison, indent=1))


if __name__ == "__main__":
    main()
