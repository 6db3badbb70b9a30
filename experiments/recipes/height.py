"""Training recipe of the semantics + height multi-task model (partial supervision).

One U-Net (shared encoder-decoder) with a semantic head (5 land-cover classes) and a
height-regression head, in the style of multi-task semantics-and-height networks on
aerial images (DFC2018 / ISPRS Vaihingen). No sample set has both targets on the same
images, so each sample contributes only the losses of the targets it has:

* ISPRS Potsdam patches (IR-R-G, 8-bit normalised DSM) supervise the **height** head in
  *relative* units (``dsm / 255``: one global scale, ground ~0, not metres);
* Dubai aerial tiles (RGB, 6 colour-coded classes) supervise the **semantic** head on
  building, land, road, vegetation, water (``unlabelled`` is ignored).

Losses: cross-entropy (semantics) and L1 (height), weighted by learned homoscedastic
uncertainty (Kendall et al., CVPR 2018) as in the building model. Model selection on
``val mIoU - val height RMSE``.
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
    augment,
    mtl_unet_arch,
    optimise,
    save_weights,
    start_run,
    write_run_configs,
)
from rsviz.datasets import scenes
from rsviz.datasets.landcover import DUBAI_IGNORE
from rsviz.models.architectures import build_model
from rsviz.models.losses import UncertaintyWeightedLoss

DEFAULTS: dict[str, Any] = {
    "name": "height-mtl",
    "seed": 0,
    "encoder_name": "mobilenet_v2",
    "decoder_channels": [128, 64, 32, 16, 16],
    "num_classes": 5,
    "crop": 256,
    "batch_size": 8,
    "steps": 600,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "val_every": 100,
    "threads": 1,
    "device": "auto",
    "out": "runs/height-mtl",
}
IGNORE = 255


def _load(split: str):
    pots = [s.load() for s in scenes("potsdam-height", split)]
    dub = [s.load() for s in scenes("dubai-landcover", split)]
    H = [(s.image.astype(np.float32) / 255, s.targets["height"].astype(np.float32)) for s in pots]
    S = []
    for s in dub:
        c = s.targets["classes"].astype(np.int64)
        c[c == DUBAI_IGNORE] = IGNORE
        S.append((s.image.astype(np.float32) / 255, c))
    return H, S


def _crop(img, tgt, rng, c):
    h, w = tgt.shape
    c = min(c, h, w)
    r0, c0 = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
    return img[:, r0 : r0 + c, c0 : c0 + c].copy(), tgt[r0 : r0 + c, c0 : c0 + c]


def _batch(H, S, rng, cfg):
    xs, hs, cs = [], [], []
    n = cfg["batch_size"]
    for i in range(n):
        if i % 2 == 0:
            img, h = _crop(*H[int(rng.integers(len(H)))], rng, cfg["crop"])
            img, (h,) = augment(img, [h], rng, 0.1)
            hs.append(h), cs.append(np.full(h.shape, IGNORE, np.int64))
        else:
            img, c = _crop(*S[int(rng.integers(len(S)))], rng, cfg["crop"])
            img, (c,) = augment(img, [c], rng, 0.1)
            hs.append(np.full(c.shape, np.nan, np.float32)), cs.append(c)
        xs.append(img)
    x = (np.stack(xs) - MEAN) / STD
    return (
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(np.stack(hs)[:, None]),
        torch.from_numpy(np.stack(cs)),
    )


@torch.no_grad()
def _validate(net, H, S, k, device) -> dict:
    from rsviz.metrics import ConfusionMatrix, height_metrics

    net.eval()
    errs = []
    for img, h in H:
        o = net(torch.from_numpy(((img - MEAN) / STD)[None]).to(device))
        errs.append(height_metrics(o["height"][0, 0].cpu().numpy(), h))
    cmk = ConfusionMatrix(k)
    for img, c in S:
        hh, ww = (c.shape[0] // 32) * 32, (c.shape[1] // 32) * 32
        o = net(torch.from_numpy(((img[:, :hh, :ww] - MEAN) / STD)[None]).to(device))
        p = o["seg"][0].argmax(0).cpu().numpy()
        t = c[:hh, :ww]
        cmk.update(p, np.where(t == IGNORE, 0, t), t != IGNORE)
    net.train()
    r = cmk.compute()
    return {
        "val_miou": r["macro"]["iou"],
        "val_height_rmse": float(np.mean([e["rmse"] for e in errs])),
        "val_height_mae": float(np.mean([e["mae"] for e in errs])),
    }


def train(config_path: str | None = None, overrides: dict[str, Any] | None = None) -> Path:
    """Train and write ``best.safetensors``, configs, curves and ``summary.json`` to ``cfg["out"]``."""
    cfg, rng, device, out = start_run(config_path, DEFAULTS, overrides)
    arch = mtl_unet_arch(cfg, {"seg": cfg["num_classes"], "height": 1})
    write_run_configs(out, cfg, arch)
    net = build_model(arch).to(device)
    weighting = UncertaintyWeightedLoss(["seg", "height"]).to(device)
    opt = torch.optim.AdamW(
        [*net.parameters(), *weighting.parameters()], lr=cfg["lr"], weight_decay=cfg["weight_decay"]
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=int(cfg["steps"]), pct_start=0.1)
    Htr, Str = _load("train")
    Hva, Sva = _load("val")
    log = CurveLogger(out)
    best, t0, run = -1e9, time.time(), {}
    for step in range(1, int(cfg["steps"]) + 1):
        x, h, c = (t.to(device) for t in _batch(Htr, Str, rng, cfg))
        o = net(x)
        hm = torch.isfinite(h)
        losses = {"seg": F.cross_entropy(o["seg"], c, ignore_index=IGNORE), "height": F.l1_loss(o["height"][hm], h[hm])}
        optimise(opt, sched, weighting(losses), losses, run)
        if step % int(cfg["val_every"]) == 0 or step == int(cfg["steps"]):
            row = {
                "step": step,
                **{f"loss_{k}": v / cfg["val_every"] for k, v in run.items()},
                **{f"weight_{k}": w for k, w in weighting.weights().items()},
                **_validate(net, Hva, Sva, cfg["num_classes"], device),
                "elapsed_s": time.time() - t0,
            }
            run = {}
            log.log(row)
            print(json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
            score = row["val_miou"] - row["val_height_rmse"]
            if score > best:
                best = score
                save_weights(net, out / "best.safetensors")
                (out / "summary.json").write_text(
                    json.dumps(
                        {"best_step": step, "best_score": score, **row, "task_weights": weighting.weights()}, indent=2
                    )
                )
    log.plot()
    s = json.loads((out / "summary.json").read_text())
    s.update({"wall_s": time.time() - t0, "final_task_weights": weighting.weights(), "device": str(device)})
    (out / "summary.json").write_text(json.dumps(s, indent=2))
    return out
