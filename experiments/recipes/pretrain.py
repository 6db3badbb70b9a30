"""Self-supervised pretraining of the building U-Net by masked-image reconstruction (issue #23).

The network is the ``building-mtl`` architecture (U-Net, seg + edge + reconstruction heads), so a run's
``best.safetensors`` is the ``init`` of a building fine-tuning stage. The encoder, decoder and reconstruction
head are trained through the reconstruction loss alone (the seg and edge heads stay as initialised): each crop has a random half of its 16 px cells masked to the normalised mean (0), and the loss is the L1 error
of the reconstruction on the masked cells alone, so that skip connections cannot copy the input through
(the masked-image modelling of He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022,
applied to a convolutional U-Net as in SparK, Tian et al., ICLR 2023, without sparse convolutions).

The images are the mirror's RGB imagery that no building evaluation reads and that no test split holds
(:data:`POOL`): the 16 unlabelled Banepa ``predict`` chips and the Dubai, ETH roads and Chesapeake (R, G, B of
NAIP's four bands) train and val images; their labels are discarded on loading and never enter the loss.
Potsdam (NIR, R, G) is left out: its bands are not R, G, B. Banepa and Kampala labelled chips (the CV pool and the test blocks)
and the out-of-domain sets (Joplin, Tanzania, Austin) are not in it.

``rsviz train building-mim`` (config ``experiments/configs/building-mim.json``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.recipes.building import DEFAULTS as BUILDING_DEFAULTS
from experiments.recipes.common import (
    MEAN,
    STD,
    CurveLogger,
    augment,
    mixed_precision,
    mtl_unet_arch,
    optimise,
    save_weights,
    start_run,
    write_run_configs,
)
from rsviz.models.architectures import build_model

#: dataset -> splits whose images (never their labels) are pretrained on
POOL: dict[str, tuple[str, ...]] = {
    "banepa-buildings": ("predict",),
    "dubai-landcover": ("train", "val"),
    "eth-roads": ("train", "val"),
    "chesapeake-landcover": ("train", "val"),
}

DEFAULTS: dict[str, Any] = {
    "name": "building-mim",
    "seed": 0,
    # the building recipe's network, so that a run is its init
    **{k: BUILDING_DEFAULTS[k] for k in ("encoder_name", "decoder_channels", "heads")},
    "crop": 192,
    "batch_size": 8,
    "steps": 600,
    "lr": 0.002,
    "weight_decay": 0.0001,
    "mask_cell": 16,
    "mask_ratio": 0.5,
    "colour_jitter": 0.2,
    "log_every": 50,
    "threads": 1,
    "device": "auto",
    "precision": "auto",
    "out": "runs/building-mim",
}


def pool_images(pool: dict[str, tuple[str, ...]] | None = None) -> list[np.ndarray]:
    """The pretraining images: ``(3, H, W)`` float32 R, G, B in [0, 1] (the first three bands), labels dropped.

    Raises:
        ValueError: If an image is not 8-bit or its first three bands are not red, green, blue.
    """
    from rsviz.datasets import scenes

    out = []
    for name, splits in (POOL if pool is None else pool).items():
        for ref in scenes(name):
            if ref.split not in splits:
                continue
            s = ref.load_image()
            img, bands = s.image, tuple(s.band_names[:3])
            if img.dtype != np.uint8 or bands != ("red", "green", "blue"):
                raise ValueError(
                    f"{name}/{ref.id}: pretraining needs 8-bit red, green, blue first; got {bands} as {img.dtype}"
                )
            out.append(img[:3].astype(np.float32) / 255.0)
    return out


def cell_mask(rng: np.random.Generator, size: int, cell: int, ratio: float) -> np.ndarray:
    """``(size, size)`` bool, True where masked: ``round(ratio * n)`` of the ``n`` ``cell`` px cells, drawn at random.

    Raises:
        ValueError: If ``ratio`` is outside (0, 1) or ``cell`` does not divide ``size``.
    """
    if not 0 < ratio < 1:
        raise ValueError(f"mask_ratio must lie in (0, 1), got {ratio}")
    if cell <= 0 or size % cell:
        raise ValueError(f"mask_cell {cell} must divide the crop {size}")
    n = (size // cell) ** 2
    flat = np.zeros(n, bool)
    flat[rng.choice(n, size=round(ratio * n), replace=False)] = True
    g = flat.reshape(size // cell, size // cell)
    return np.kron(g, np.ones((cell, cell), bool)).astype(bool)


def batch(images: list[np.ndarray], rng: np.random.Generator, cfg: dict[str, Any]):
    """``(x_masked, x, mask)``: ``(B, 3, crop, crop)`` normalised float32 input with masked cells at 0, the
    unmasked normalised crop, and ``(B, 1, crop, crop)`` float32 mask (1 = masked)."""
    crop, xs, ms = int(cfg["crop"]), [], []
    for _ in range(int(cfg["batch_size"])):
        img = images[int(rng.integers(len(images)))]
        _, h, w = img.shape
        r0, c0 = int(rng.integers(max(h - crop, 0) + 1)), int(rng.integers(max(w - crop, 0) + 1))
        win = img[:, r0 : r0 + crop, c0 : c0 + crop]
        win = np.pad(win, ((0, 0), (0, crop - win.shape[1]), (0, crop - win.shape[2])), mode="reflect")
        a, _ = augment(win, [], rng, float(cfg["colour_jitter"]))
        xs.append((a - MEAN) / STD)
        ms.append(cell_mask(rng, crop, int(cfg["mask_cell"]), float(cfg["mask_ratio"])))
    x = torch.from_numpy(np.stack(xs).astype(np.float32))
    m = torch.from_numpy(np.stack(ms)[:, None].astype(np.float32))
    return x * (1 - m), x, m


def masked_l1(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the masked pixels (``mask`` ``(B, 1, H, W)``, 1 = masked) and channels."""
    return ((recon - target).abs() * mask).sum() / (mask.sum() * recon.shape[1]).clamp(min=1)


def train(config_path: str | None = None, overrides: dict[str, Any] | None = None) -> Path:
    """Pretrain and write ``best.safetensors`` (the last step), ``config.json``, ``train_config.json``,
    ``curves.csv`` and ``summary.json`` to ``cfg["out"]``.

    Returns:
        The output folder.
    """
    cfg, rng, device, out = start_run(config_path, DEFAULTS, overrides)
    arch = mtl_unet_arch(cfg)
    write_run_configs(out, cfg, arch)
    if "recon" not in cfg["heads"]:
        raise ValueError(f"masked-image pretraining needs a 'recon' head; heads are {sorted(cfg['heads'])}")
    net = build_model(arch)
    amp, channels_last = mixed_precision(device, cfg["precision"])
    net = net.to(device, memory_format=torch.channels_last) if channels_last else net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=int(cfg["steps"]), pct_start=0.1)
    images = pool_images()
    log, t0, run = CurveLogger(out), time.time(), {}
    for step in range(1, int(cfg["steps"]) + 1):
        xm, x, m = (t.to(device) for t in batch(images, rng, cfg))
        with amp():
            recon = net(xm.contiguous(memory_format=torch.channels_last) if channels_last else xm)["recon"].float()
        loss = masked_l1(recon, x, m)
        optimise(opt, sched, loss, {"recon": loss}, run)
        if step % int(cfg["log_every"]) == 0 or step == int(cfg["steps"]):
            n = int(cfg["log_every"]) if step % int(cfg["log_every"]) == 0 else step % int(cfg["log_every"])
            row = {"step": step, "loss_masked_l1": run["recon"] / n, "elapsed_s": time.time() - t0}
            log.log(row)
            run = {}
            print(json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
    log.plot()
    save_weights(net, out / "best.safetensors")
    summary = {
        "images": len(images),
        "pixels": int(sum(i.shape[1] * i.shape[2] for i in images)),
        "pool": {k: list(v) for k, v in POOL.items()},
        "last_step": int(cfg["steps"]),
        "final_loss_masked_l1": row["loss_masked_l1"],
        "wall_s": time.time() - t0,
        "device": str(device),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out
