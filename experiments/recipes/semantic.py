"""Training recipes of the land-cover (DeepLabV3+) and road (PP-LinkNet) models.

``landcover-deeplabv3plus``
    smp DeepLabV3+ (Chen et al., ECCV 2018), as in the OpenEarthMap land-cover mapper
    (Xia et al., WACV 2023), trained on the Dubai aerial tiles (Tiles 1-6 train, Tile 7
    val; Tile 8 is the held-out test folder). Loss: cross-entropy with ``unlabelled``
    ignored. The tiles differ in GSD, so crops are rescaled by a random factor.
``roads-pplinknet``
    PP-LinkNet (Tran et al., 2020): LinkNet with a pyramid-pooling module, binary focal
    loss (Lin et al., ICCV 2017) plus soft Dice, on the ETH road tiles (001-080 train,
    081-090 val, 091-100 test). A second stage (``experiments/configs/roads-pplinknet-finetune.json``)
    starts from the first stage's weights (``init``), adds the clDice topology loss
    (Shit et al., CVPR 2021; ``cldice_weight``) and keeps the checkpoint with the best
    validation APLS (``select_by``).

Both use AdamW with the poly learning-rate schedule ``(1 - step / steps) ** 0.9`` after a
linear warm-up, flips / rot90 / colour augmentation, bf16 autocast where the hardware
runs it natively (:func:`experiments.recipes.common.mixed_precision`), and keep the checkpoint
with the best validation score (``select_by``: mIoU, road IoU or APLS).

Run: ``python -m rsviz train landcover-deeplabv3plus`` / ``python -m rsviz train roads-pplinknet``
(optionally ``--config FILE`` with keys of :data:`DEFAULTS`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from experiments.recipes.common import (
    MEAN,
    STD,
    CurveLogger,
    WeightAverage,
    augment,
    load_init,
    mixed_precision,
    optimise,
    save_weights,
    start_run,
    swa_lr_lambda,
)
from rsviz.datasets import scenes
from rsviz.metrics.roads import road_graph_apls
from rsviz.models.architectures import build_model
from rsviz.models.losses import binary_focal_loss, soft_cldice_loss, soft_dice_loss
from rsviz.models.pplinknet import poly_lr_lambda

IGNORE = 255

DEFAULTS: dict[str, dict[str, Any]] = {
    "landcover-deeplabv3plus": {
        "name": "landcover-deeplabv3plus",
        "task": "landcover",
        "seed": 0,
        "arch": {
            "arch": "smp",
            "smp_arch": "DeepLabV3Plus",
            "encoder_name": "resnet18",
            "in_channels": 3,
            "classes": 5,
        },
        "dataset": "dubai-landcover",
        "crop": 256,
        "scale_range": [0.5, 1.5],
        "batch_size": 8,
        "steps": 2000,
        "lr": 1e-3,
        "warmup": 50,
        "weight_decay": 1e-4,
        "colour_jitter": 0.2,
        "val_every": 250,
        "threads": 1,
        "precision": "auto",
        "device": "auto",
        "init": None,
        "select_by": "val_miou",
        "swa": None,
        "out": "runs/landcover-deeplabv3plus",
    },
    "roads-pplinknet": {
        "name": "roads-pplinknet",
        "task": "roads",
        "seed": 0,
        "arch": {"arch": "pplinknet", "encoder_name": "resnet18", "in_channels": 3, "classes": 1, "bins": [1, 2, 3, 6]},
        "dataset": "eth-roads",
        "crop": 256,
        "scale_range": [1.0, 1.0],
        "batch_size": 8,
        "steps": 2000,
        "lr": 1e-3,
        "warmup": 50,
        "weight_decay": 1e-4,
        "colour_jitter": 0.2,
        "focal_gamma": 2.0,
        "focal_alpha": 0.5,
        "cldice_weight": 0.0,
        "cldice_iterations": 10,
        "cldice_downsample": 2,
        "val_every": 250,
        "threads": 1,
        "precision": "auto",
        "device": "auto",
        "init": None,
        "select_by": "val_iou",
        # val APLS graph extraction (keys of rsviz.models.card.ROAD_GRAPH_DEFAULTS; None: the defaults)
        "road_graph": None,
        "swa": None,
        # share of training crops drawn from the Dubai train split's road class (road 1, every other class 0)
        "dubai_road_share": 0.0,
        "out": "runs/roads-pplinknet",
    },
}


def load_split(dataset: str, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(image (3, H, W) float32 in [0, 1], target (H, W) int64)]`` of one split.

    Land cover: class ids with ``unlabelled`` set to 255 (ignored). Roads: 0/1.
    """
    from rsviz.datasets.landcover import DUBAI_IGNORE

    out = []
    for ref in scenes(dataset, split):
        s = ref.load()
        if "classes" in s.targets:
            t = s.targets["classes"].astype(np.int64)
            t[t == DUBAI_IGNORE] = IGNORE
        else:
            t = (s.targets["roads"] > 0).astype(np.int64)
        out.append((s.image[:3].astype(np.float32) / 255.0, t))
    return out


def _sample(img: np.ndarray, tgt: np.ndarray, rng: np.random.Generator, crop: int, scale_range) -> tuple:
    """A random ``crop``-pixel crop, rescaled by a factor drawn from ``scale_range``."""
    s = float(rng.uniform(*scale_range))
    h, w = tgt.shape
    c = int(min(round(crop / s), h, w))
    r0, c0 = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
    x, y = img[:, r0 : r0 + c, c0 : c0 + c], tgt[r0 : r0 + c, c0 : c0 + c]
    if c != crop:
        x = F.interpolate(
            torch.from_numpy(np.ascontiguousarray(x))[None], size=(crop, crop), mode="bilinear", align_corners=False
        )[0].numpy()
        y = (
            F.interpolate(
                torch.from_numpy(np.ascontiguousarray(y))[None, None].float(), size=(crop, crop), mode="nearest"
            )[0, 0]
            .numpy()
            .astype(np.int64)
        )
    return x.copy(), y


def dubai_roads(split: str = "train") -> list[tuple[np.ndarray, np.ndarray]]:
    """The Dubai images of ``split`` as extra road training data: ``[(image (3, H, W) float32 in [0, 1],
    target (H, W) int64: 1 road, 0 any other class including unlabelled)]``."""
    from rsviz.datasets.landcover import DUBAI, DUBAI_CLASSES

    road = next(c.id for c in DUBAI_CLASSES if c.name == "road")
    return [
        (s.image[:3].astype(np.float32) / 255.0, (s.targets["classes"] == road).astype(np.int64))
        for s in (ref.load() for ref in scenes(DUBAI, split))
    ]


def _batch(data, rng, cfg, extra=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented crops ``(B, 3, crop, crop)`` float32 (normalised) and targets ``(B, crop, crop)`` int64; each
    crop comes from ``extra`` with probability ``cfg["dubai_road_share"]`` when ``extra`` is given."""
    xs, ys = [], []
    for _ in range(int(cfg["batch_size"])):
        pool = extra if extra and rng.random() < float(cfg.get("dubai_road_share", 0.0)) else data
        img, t = pool[int(rng.integers(len(pool)))]
        x, y = _sample(img, t, rng, int(cfg["crop"]), cfg["scale_range"])
        x, (y,) = augment(x, [y], rng, float(cfg["colour_jitter"]))
        xs.append(x), ys.append(y)
    return torch.from_numpy((np.stack(xs) - MEAN) / STD), torch.from_numpy(np.stack(ys))


def forward_full(net: torch.nn.Module, img: np.ndarray, device: torch.device, amp) -> torch.Tensor:
    """Logits ``(C, H, W)`` float32 of a whole ``(3, H, W)`` image in [0, 1] (reflect-padded to 32)."""
    h, w = img.shape[1:]
    ph, pw = (-h) % 32, (-w) % 32
    x = torch.from_numpy(((img - MEAN) / STD).astype(np.float32))[None]
    x = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
    with amp():
        o = net(x.to(device))["seg"]
    return o[0, :, :h, :w].float()


@torch.no_grad()
def validate(net, data, cfg, device, amp) -> dict[str, float]:
    """Validation scores: mIoU and OA (land cover); road IoU, F1 and mean APLS over tiles (roads)."""
    from rsviz.metrics import ConfusionMatrix

    net.eval()
    k = max(int(cfg["arch"].get("classes", 1)), 2)
    cm = ConfusionMatrix(k, ignore_index=IGNORE if cfg["task"] == "landcover" else None)
    apls_scores = []
    for img, t in data:
        o = forward_full(net, img, device, amp)
        p = (o.argmax(0) if o.shape[0] > 1 else (o[0] > 0).long()).cpu().numpy()
        cm.update(p, np.where(t == IGNORE, 0, t), t != IGNORE)
        if cfg["task"] == "roads":
            prob = torch.sigmoid(o[0]).cpu().numpy()
            apls_scores.append(road_graph_apls(prob, t == 1, cfg.get("road_graph") or {})["apls"])
    net.train()
    r = cm.compute()
    if cfg["task"] == "roads":
        return {
            "val_iou": r["per_class"][1]["iou"],
            "val_f1": r["per_class"][1]["f1"],
            "val_apls": float(np.nanmean(apls_scores)),
        }
    return {"val_miou": r["macro"]["iou"], "val_oa": r["overall_accuracy"]}


def _loss(o: torch.Tensor, y: torch.Tensor, cfg) -> dict[str, torch.Tensor]:
    o = o.float()
    if cfg["task"] == "roads":
        t = y[:, None].float()
        out = {"focal": binary_focal_loss(o, t, cfg["focal_gamma"], cfg["focal_alpha"]), "dice": soft_dice_loss(o, t)}
        if cfg.get("cldice_weight", 0.0) > 0:
            out["cldice"] = cfg["cldice_weight"] * soft_cldice_loss(
                o, t, int(cfg["cldice_iterations"]), int(cfg["cldice_downsample"])
            )
        return out
    return {"ce": F.cross_entropy(o, y, ignore_index=IGNORE)}


def train(recipe: str, config_path: str | None = None, overrides: dict[str, Any] | None = None) -> Path:
    """Train one recipe; writes ``best.safetensors``, configs, curves and ``summary.json`` to ``cfg["out"]``.

    Raises:
        UnknownNameError: For a recipe not in :data:`DEFAULTS`.
    """
    from rsviz.errors import unknown_name

    if recipe not in DEFAULTS:
        raise unknown_name("recipe", recipe, list(DEFAULTS))
    cfg, rng, device, out = start_run(config_path, DEFAULTS[recipe], overrides)
    (out / "train_config.json").write_text(json.dumps(cfg, indent=2))
    (out / "config.json").write_text(json.dumps(cfg["arch"], indent=2))
    amp, channels_last = mixed_precision(device, cfg["precision"])
    net = load_init(build_model(cfg["arch"]), cfg.get("init")).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps, warm = int(cfg["steps"]), int(cfg["warmup"])
    poly = poly_lr_lambda(steps)
    # "swa" ({"start", "every", "bn_batches"}): the run's output is the mean of the weights from step "start" on
    # (experiments.recipes.common.WeightAverage) under a constant learning rate after warm-up, not a val-chosen checkpoint
    swa = WeightAverage(net, cfg["swa"]) if cfg.get("swa") else None
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, swa_lr_lambda(warm) if swa is not None else (lambda s: min(1.0, (s + 1) / max(warm, 1)) * poly(s))
    )
    train_data, val_data = load_split(cfg["dataset"], "train"), load_split(cfg["dataset"], "val")
    extra = dubai_roads("train") if cfg["task"] == "roads" and cfg.get("dubai_road_share", 0.0) > 0 else None
    key = cfg["select_by"]
    log, best, t0, run = CurveLogger(out), -1.0, time.time(), {}
    for step in range(1, steps + 1):
        x, y = _batch(train_data, rng, cfg, extra)
        x = x.to(device, memory_format=torch.channels_last) if channels_last else x.to(device)
        with amp():
            o = net(x)["seg"]
        losses = _loss(o, y.to(device), cfg)
        optimise(opt, sched, sum(losses.values()), losses, run)
        if swa is not None:
            swa.update(net, step)
        if step % int(cfg["val_every"]) == 0 or step == steps:
            n = step - int(log.rows[-1]["step"]) if log.rows else step
            row = {
                "step": step,
                **{f"loss_{k}": v / n for k, v in run.items()},
                "lr": sched.get_last_lr()[0],
                **validate(net, val_data, cfg, device, amp),
                "elapsed_s": time.time() - t0,
            }
            run = {}
            log.log(row)
            print(json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
            if swa is None and row[key] > best:
                best = row[key]
                save_weights(net, out / "best.safetensors")
                (out / "summary.json").write_text(json.dumps({"best_step": step, f"best_{key}": best, **row}, indent=2))
    log.plot()
    if swa is not None:  # batch-norm statistics of the averaged weights from training crops; val only reported
        avg = swa.finish((_batch(train_data, rng, cfg)[0] for _ in range(swa.bn_batches)), device)
        row = {"step": steps, **validate(avg, val_data, cfg, device, amp)}
        save_weights(avg, out / "best.safetensors")
        (out / "summary.json").write_text(
            json.dumps(
                {"best_step": steps, f"best_{key}": row[key], **row, "selected_by": "swa", "swa": swa.summary()},
                indent=2,
            )
        )
    s = json.loads((out / "summary.json").read_text())
    s.update(
        {
            "wall_s": time.time() - t0,
            "steps": steps,
            "device": str(device),
            "precision": "bf16 autocast" if channels_last else "fp32",
        }
    )
    (out / "summary.json").write_text(json.dumps(s, indent=2))
    return out
