"""Evaluate the semantics + height model on held-out data and bundle it as ``weights/height-mtl``.

``python -m experiments.packaging.height runs/height-mtl``

Metrics: height RMSE / MAE / bias / delta<1.25 on the Potsdam test patches (relative units,
``dsm / 255``), pooled over pixels, beside the RMSE / MAE of predicting the training mean
everywhere (the floor any useful model must beat); semantic mIoU and per-class IoU on the Dubai test tile
folder (``Tile 8``; ``unlabelled`` excluded), from one pooled confusion matrix.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from experiments.packaging import add_out_argument
from rsviz.datasets import scenes
from rsviz.datasets.landcover import DUBAI_CLASSES, DUBAI_IGNORE
from rsviz.evaluation import evaluate_sample, pool
from rsviz.models.api import LoadedModel, as_stored, save_pretrained
from rsviz.models.architectures import build_model
from rsviz.models.card import HeadSpec, InputSpec, ModelCard
from rsviz.types import Task


def evaluate_height_model(lm: LoadedModel) -> dict:
    """``{"potsdam-test": height figures, "dubai-test": land-cover figures}`` through the one evaluator.

    Height errors are pooled over every pixel of the Potsdam test patches; ``constant_train_mean_*``
    scores predicting the mean training height everywhere (the trivial baseline).
    """
    from rsviz.inference import predict
    from rsviz.raster import RasterData

    height, const, seg = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_mean = float(np.mean([r.load().targets["height"].mean() for r in scenes("potsdam-height", "train")]))
        for r in scenes("potsdam-height", "test"):
            s = r.load()
            p = predict(lm, RasterData(s.image), tile=256, overlap=0.25, precision="fp32")
            height.append(evaluate_sample(lm.card, p.heads, s, task=Task.HEIGHT))
            const.append(
                evaluate_sample(lm.card, {"height": np.full_like(p.heads["height"], train_mean)}, s, task=Task.HEIGHT)
            )
        for r in scenes("dubai-landcover", "test"):
            s = r.load()
            p = predict(lm, RasterData(s.image), tile=512, overlap=0.25, precision="fp32")
            seg.append(evaluate_sample(lm.card, p.heads, s, task=Task.LANDCOVER))
    from experiments.packaging.figures import card_figures, intervals

    h, c, d = pool(height), pool(const), pool(seg)
    const_ci = {f"constant_train_mean_{k}_ci95": v for k, v in intervals(const, ("rmse", "mae")).items()}
    return {
        "potsdam-test": {
            **h.values,
            "units": "relative",
            "constant_train_mean_rmse": c["rmse"],
            "constant_train_mean_mae": c["mae"],
            "images": h.images,
            **card_figures(height, "height"),
            **const_ci,
        },
        "dubai-test": {**d.values, "images": d.images, **card_figures(seg, "landcover")},
    }


def card_for(train_cfg: dict, metrics: dict, extra: dict) -> ModelCard:
    """Model card of the semantics + height model."""
    return ModelCard(
        name="height-mtl",
        title="Semantics + height multi-task model (partial supervision)",
        task="height",
        architecture=f"U-Net (segmentation_models.pytorch), {train_cfg['encoder_name']} encoder from scratch, "
        "shared decoder, 3x3 conv heads: seg (5 classes), height (1)",
        paper="Multi-task learning of semantics and height from aerial images (DFC2018 / ISPRS Vaihingen style); "
        "loss weighting: Kendall, Gal & Cipolla, CVPR 2018 (learned, not the paper's fixed weights)",
        heads={
            "seg": HeadSpec("multiclass", 5, description="land cover (Dubai classes)"),
            "height": HeadSpec(
                "regression",
                1,
                units="relative",
                description="relative height above ground: Potsdam nDSM / 255 (one global scale, "
                "ground ~0); NOT metres",
            ),
        },
        input=InputSpec(
            bands=["band1", "band2", "band3"],
            dtype="uint8",
            scale=255.0,
            gsd_range_m=[0.3, 1.0],
            tile_size=256,
            overlap=0.25,
        ),
        classes=list(DUBAI_CLASSES),
        ignore_index=DUBAI_IGNORE,
        training_data=[
            {
                "dataset": "potsdam-height",
                "splits": "train (100 patches), val (30)",
                "supervises": "height head only",
                "units": "relative (8-bit nDSM / 255)",
                "bands": "IR, R, G",
                "licence": "CC BY-NC-SA 4.0; ISPRS benchmark terms",
                "attribution": "ISPRS Potsdam benchmark",
            },
            {
                "dataset": "dubai-landcover",
                "splits": "Tiles 1-6 train, Tile 7 val",
                "supervises": "semantic head only",
                "bands": "R, G, B",
                "licence": "not stated (published as public domain; unverified)",
                "attribution": "Humans in the Loop / MBRSC",
            },
        ],
        recipe=train_cfg,
        metrics=metrics,
        extra=extra,
        licence="CC BY-NC-SA 4.0 (inherits the Potsdam terms: non-commercial)",
    )


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="rsviz package height", description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="training run folder")
    add_out_argument(ap)
    a = ap.parse_args(argv)
    d = a.run
    cfg = json.loads((d / "config.json").read_text())
    tcfg = json.loads((d / "train_config.json").read_text())
    summary = json.loads((d / "summary.json").read_text())
    net = build_model(cfg)
    net.load_state_dict(load_file(str(d / "best.safetensors")))
    as_stored(net, half=True)
    card = card_for(tcfg, {}, {})
    lm = LoadedModel("height-mtl", card, net.eval(), torch.device("cpu"))
    metrics = evaluate_height_model(lm)
    extra = {
        "learned_task_weights_exp_minus_s": summary.get("final_task_weights"),
        "best_step": summary.get("best_step"),
        "training_wall_s": summary.get("wall_s"),
        "what_supervised_each_head": "height: Potsdam only (relative units); semantics: Dubai only. The two "
        "sets differ in bands (IR-R-G vs R-G-B) and place; the height output on "
        "RGB imagery is an extrapolation.",
    }
    card = card_for(tcfg, metrics, extra)
    save_pretrained(net, cfg, card, a.out / "height-mtl", half=True)
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
