"""Training recipe of the Sentinel-2 multi-label classifiers (three fusion variants).

Data: every BigEarthNet patch in the sample data, read in GeoTIFF form (11 patches,
split by :func:`rsviz.datasets.bigearthnet.patch_split`) and in BigEarthNet v2
LMDB-of-safetensors form (18 labelled patches, split by their ``metadata.parquet``).
That is demo-scale data (14 train / 7 val / 8 test patches): the figures show the
pipeline works, not what the architecture achieves on the 590,326-patch archive. Point
``bigearthnet_root`` at a full BigEarthNet-S2 folder (``<patch>/<patch>_<band>.tif`` with
``*_labels_metadata.json``) to train on it; split by the same rule.

Loss: binary cross-entropy over the 19 labels; AdamW; cosine learning rate; flips and
rot90 augmentation. Model selection on val micro-F1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from experiments.recipes.common import CurveLogger, start_run
from rsviz.datasets.bigearthnet import LABELS_19, patches_by_split
from rsviz.models.architectures import build_model

DEFAULTS: dict[str, Any] = {
    "variant": "resize",
    "seed": 0,
    "width": 24,
    "epochs": 120,
    "batch_size": 8,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "threads": 2,
    "out": "runs/s2-resize",
    "bigearthnet_root": None,
}


def load_patches(root: str | None = None) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """All patches by split (:func:`rsviz.datasets.bigearthnet.patches_by_split`)."""
    return patches_by_split(root)


def band_stats(patches) -> tuple[list[float], list[float]]:
    """Per-band mean and std of reflectance / 10000 over the training patches."""
    x = np.stack([p[1] for p in patches]).astype(np.float64) / 10000.0
    return x.mean(axis=(0, 2, 3)).tolist(), (x.std(axis=(0, 2, 3)) + 1e-6).tolist()


def train(config_path: str | None = None, overrides: dict[str, Any] | None = None) -> Path:
    """Train one variant; writes ``best.safetensors``, ``config.json``, ``train_config.json``, curves, ``summary.json``."""
    from safetensors.torch import save_file

    from rsviz.metrics.multilabel import multilabel_metrics

    cfg, rng, _, out = start_run(config_path, DEFAULTS, overrides)
    data = load_patches(cfg["bigearthnet_root"])
    mean, std = band_stats(data["train"])
    cfg["band_mean"], cfg["band_std"] = mean, std
    cfg["patches"] = {k: len(v) for k, v in data.items()}
    (out / "train_config.json").write_text(json.dumps(cfg, indent=2))
    arch = {"arch": "s2_multilabel", "variant": cfg["variant"], "width": cfg["width"], "num_labels": 19}
    (out / "config.json").write_text(json.dumps(arch, indent=2))
    net = build_model(arch)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)

    def tensors(items):
        x = torch.from_numpy(np.stack([p[1] for p in items]).astype(np.float32) / 10000.0)
        return (x - m) / s, torch.from_numpy(np.stack([p[2] for p in items]).astype(np.float32))

    xtr, ytr = tensors(data["train"])
    xva, yva = tensors(data["val"])
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps_per_epoch = max(1, int(np.ceil(len(xtr) / cfg["batch_size"])))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"] * steps_per_epoch)
    log = CurveLogger(out)
    best, t0 = -1.0, time.time()
    for epoch in range(1, int(cfg["epochs"]) + 1):
        net.train()
        perm = rng.permutation(len(xtr))
        tot = 0.0
        for i in range(0, len(perm), cfg["batch_size"]):
            idx = perm[i : i + cfg["batch_size"]]
            x, y = xtr[idx], ytr[idx]
            k = int(rng.integers(4))
            x = torch.rot90(x, k, dims=(-2, -1))
            if rng.integers(2):
                x = torch.flip(x, dims=(-1,))
            loss = F.binary_cross_entropy_with_logits(net(x)["labels"], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
        if epoch % 5 == 0 or epoch == cfg["epochs"]:
            net.eval()
            with torch.inference_mode():
                pv = torch.sigmoid(net(xva)["labels"]).numpy()
            r = multilabel_metrics(pv, yva.numpy(), LABELS_19)
            row = {"step": epoch, "loss_bce": tot / len(xtr), "val_micro_f1": r["micro_f1"], "val_map": r["map"]}
            log.log(row)
            if r["micro_f1"] > best:
                best = r["micro_f1"]
                save_file(
                    {k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(out / "best.safetensors")
                )
                (out / "summary.json").write_text(
                    json.dumps({"best_val_micro_f1": best, "best_epoch": epoch}, indent=2)
                )
    log.plot()
    summ = json.loads((out / "summary.json").read_text())
    summ["wall_s"] = time.time() - t0
    (out / "summary.json").write_text(json.dumps(summ, indent=2))
    return out
