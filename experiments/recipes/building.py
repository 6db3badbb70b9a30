"""Training recipe of the multi-task building-footprint model (and its single-task baseline).

Reproduces Ekim & Sertel, IGARSS 2021: a U-Net with building segmentation, boundary
and RGB reconstruction heads; the task losses are weighted by learned homoscedastic
uncertainty (Kendall et al., CVPR 2018). ``heads: {"seg": 1}`` trains the single-task
baseline with the same backbone and budget.

Data: Banepa (train split) and Kampala zoom-20 tiles (train split), see
:mod:`rsviz.datasets.buildings`; model selection on their val splits.
Run: ``python -m rsviz train building-mtl --config experiments/configs/building-mtl.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from experiments.packaging.building import object_scores
from experiments.recipes.common import (
    MEAN,
    STD,
    CurveLogger,
    WeightAverage,
    augment,
    init_log_vars,
    load_init,
    log_uniform,
    mixed_precision,
    mtl_unet_arch,
    optimise,
    save_weights,
    scaled_crop,
    start_run,
    swa_lr_lambda,
    write_run_configs,
)
from rsviz.datasets.buildings import banepa_scenes, building_cv_folds, grid_cell, kampala_scenes
from rsviz.errors import unknown_name
from rsviz.labels import contact_mask, edges_from_mask
from rsviz.models.architectures import build_model
from rsviz.models.losses import UncertaintyWeightedLoss, soft_dice_loss
from rsviz.postprocess import InstanceSettings, instances_for

DEFAULTS: dict[str, Any] = {
    "name": "building-mtl",
    "seed": 0,
    "encoder_name": "mobilenet_v2",
    "decoder_channels": [128, 64, 32, 16, 16],
    "heads": {"seg": 1, "edge": 1, "recon": 3},
    "crop": 256,
    "batch_size": 8,
    "steps": 1000,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "edge_pos_weight": 3.0,
    "colour_jitter": 0.2,
    "val_every": 100,
    "threads": 2,
    "device": "auto",
    "out": "runs/building-mtl",
    "kampala_zoom": 20,
    "precision": "auto",
    "init": None,
    # checkpoint selection: "val_iou" (pixel IoU on the Banepa + Kampala val splits) or "val_object_f1"
    # (object F1 at IoU 0.5 pooled over the same splits, instances by ``postprocess``; runs before session 6
    # pooled Banepa val only)
    "select_by": "val_iou",
    "postprocess": None,
    # stochastic weight averaging ({"start", "every", "bn_batches"}, experiments.recipes.common.WeightAverage): the run's
    # output is then the mean of the weights from step "start" on, under a constant learning rate after "warmup"
    # steps, instead of the checkpoint chosen by "select_by" (which val then only plots)
    "swa": None,
    "warmup": 50,
    # edge-loss weight added where two footprints meet (shared walls, narrow gaps; rsviz.labels.contact_mask
    # with a "contact_px" window): 0 leaves the boundary loss unweighted
    "contact_weight": 0.0,
    "contact_px": 5,
    # scale augmentation: each crop rescaled by a factor drawn log-uniformly from [lo, hi] (0.25-2: the
    # 0.15 m chips seen at 0.6-0.075 m GSD); null: off
    "scale": None,
    # probability of a grey (panchromatic-looking, BT.601 luma) crop; 0: off
    "grey": 0.0,
    # blocked cross-validation ({"k", "fold", "block", "seed"}, rsviz.datasets.buildings.building_cv_folds):
    # train on the train + val chips of the other folds, log the held-out fold as "val" (select_by "last"
    # keeps the last step: nothing is chosen on the held-out fold); null: the fixed train / val splits
    "cv": None,
}
SELECT = ("val_iou", "val_object_f1", "last")


def cv_refs(cv: dict[str, Any], held_out: bool, zoom: int = 20) -> list:
    """The Banepa and Kampala chips of a CV fold (``held_out``) or of the other folds (the training set)."""
    folds = building_cv_folds(int(cv["k"]), int(cv.get("block", 2)), int(cv.get("seed", 0)), zoom)
    out = []
    for ref in [*banepa_scenes(), *kampala_scenes(zoom)]:
        if ref.split not in ("train", "val"):
            continue
        city, cell = grid_cell(ref)
        if (folds[city].fold[cell] == int(cv["fold"])) == held_out:
            out.append(ref)
    return out


def _load_split(split: str, zoom: int, cv: dict[str, Any] | None = None) -> list[tuple]:
    """``(image, mask, edges, valid, instances)`` per scene of ``split`` (Banepa and Kampala);
    ``instances`` is the ground-truth instance map (one id per footprint). With ``cv``, ``train`` is the
    other folds' chips and ``val`` the held-out fold's (:func:`cv_refs`)."""
    out = []
    refs = cv_refs(cv, split == "val", zoom) if cv else [*banepa_scenes(), *kampala_scenes(zoom)]
    for ref in refs:
        if not cv and ref.split != split:
            continue
        s = ref.load()
        out.append(
            (
                s.image[:3].astype(np.float32) / 255.0,
                s.targets["buildings"],
                s.targets["edges"],
                s.valid,
                s.targets["instances"],
            )
        )
    return out


def _scaled_sample(img, v, inst, crop, factor, rng):
    """A crop rescaled by ``factor`` (:func:`scaled_crop`), its footprint and edge targets recomputed from the
    resampled instances (edges stay 3 px wide at the new scale); padding is invalid."""
    x, (inst2, v2), inside = scaled_crop(img, [inst, v], crop, factor, rng)
    # edges of the resampled window alone: padding (bottom / right) is no boundary of the footprints it cuts
    oh, ow = int(inside.any(1).sum()), int(inside.any(0).sum())
    edges = np.zeros_like(inst2, dtype=np.uint8)
    edges[:oh, :ow] = edges_from_mask(inst2[:oh, :ow])
    return x, (inst2 > 0).astype(np.uint8), edges, v2.astype(bool) & inside, inst2


def check_cv_run(cfg: dict[str, Any]) -> None:
    """A cross-validation fold must not see its held-out chips through the back door.

    Raises:
        ValueError: If ``select_by`` is not ``last`` (a checkpoint chosen on the held-out fold), or ``init`` is
            a run that trained on labels (every building run does: the held-out fold's chips were in its
            train or val split). Self-supervised inits (``building-mim`` runs, which read no building chip)
            are allowed.
    """
    if cfg["select_by"] != "last":
        raise ValueError(f"a CV fold keeps its last step; select_by is {cfg['select_by']!r}, set it to 'last'")
    if cfg["init"]:
        tc = Path(cfg["init"]).parent / "train_config.json"
        name = json.loads(tc.read_text()).get("name") if tc.exists() else None
        if name != "building-mim":
            raise ValueError(
                f"CV init {cfg['init']!r} is not a building-mim pretraining run (its recipe: {name!r}); a model "
                "trained on building labels has seen the held-out fold"
            )


def _batch(data, rng, crop, bs, colour, contact_px: int = 0, scale=None, grey: float = 0.0):
    """``(x, mask, edges, valid, contact)`` tensors ``(B, C, crop, crop)`` of random augmented crops;
    ``contact`` (float 0/1, :func:`rsviz.labels.contact_mask`) is all zero unless ``contact_px`` > 0.
    ``scale`` ``[lo, hi]`` rescales each crop by a log-uniform factor (GSD augmentation); ``grey`` is the
    probability of a panchromatic-looking crop. Neither draws from ``rng`` when off."""
    xs, ys, es, vs, cs = [], [], [], [], []
    for _ in range(bs):
        img, m, e, v, inst = data[int(rng.integers(len(data)))]
        if scale:
            x0, m2, e2, v2, inst2 = _scaled_sample(img, v, inst, crop, log_uniform(rng, *scale), rng)
            c = contact_mask(inst2, contact_px) if contact_px else np.zeros((crop, crop), bool)
            x, (m2, e2, v2, c2) = augment(x0, [m2, e2, v2, c], rng, colour, grey)
            xs.append(x), ys.append(m2), es.append(e2), vs.append(v2), cs.append(c2)
            continue
        h, w = m.shape
        ch, cw = min(crop, h), min(crop, w)
        r0, c0 = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        sl = (slice(r0, r0 + ch), slice(c0, c0 + cw))
        # chips smaller than the crop (Kampala's 256 px tiles under a 384 px crop) are padded; the
        # padding is marked invalid, so it adds nothing to any loss
        pad = ((0, crop - ch), (0, crop - cw))
        x0 = np.pad(img[(slice(None), *sl)], ((0, 0), *pad), mode="reflect" if ch > 1 and cw > 1 else "edge")
        c = contact_mask(inst[sl], contact_px) if contact_px and inst is not None else np.zeros((ch, cw), bool)
        x, (m2, e2, v2, c2) = augment(
            x0, [np.pad(m[sl], pad), np.pad(e[sl], pad), np.pad(v[sl], pad), np.pad(c, pad)], rng, colour, grey
        )
        xs.append(x), ys.append(m2), es.append(e2), vs.append(v2), cs.append(c2)
    x = (np.stack(xs) - MEAN) / STD
    return (torch.from_numpy(x), *(torch.from_numpy(np.stack(a)[:, None].astype(np.float32)) for a in (ys, es, vs, cs)))


@torch.no_grad()
def _validate(net, data, device, pp: dict | None = None) -> dict[str, float]:
    """Pixel IoU/F1 over all val scenes; with ``pp`` also ``val_object_f1`` (TP / FP / FN pooled over the
    same scenes), instances from the footprint and edge probabilities by ``pp``."""
    net.eval()
    tp = fp = fn = 0
    otp = ofp = ofn = 0
    for img, m, _, v, gt_inst in data:
        x = torch.from_numpy(((img - MEAN) / STD)[None]).to(device)
        o = net(x)
        p = (o["seg"][0, 0] > 0).cpu().numpy()
        t, vv = m.astype(bool), v.astype(bool)
        tp += int((p & t & vv).sum())
        fp += int((p & ~t & vv).sum())
        fn += int((~p & t & vv).sum())
        if pp is not None:
            heads = {"probs": torch.sigmoid(o["seg"][0]).float().cpu().numpy()}
            if "edge" in o:
                heads["edge"] = torch.sigmoid(o["edge"][0, 0]).float().cpu().numpy()
            pred = instances_for(heads, pp)
            sc, _ = object_scores(pred, t, gt_inst, vv)
            otp, ofp, ofn = otp + sc["tp"], ofp + sc["fp"], ofn + sc["fn"]
    net.train()
    row = {"val_iou": tp / max(tp + fp + fn, 1), "val_f1": 2 * tp / max(2 * tp + fp + fn, 1)}
    if pp is not None:
        row["val_object_f1"] = 2 * otp / max(2 * otp + ofp + ofn, 1)
    return row


def _validated(row: dict[str, float], step: int, select: str, pp: dict | None) -> dict[str, Any]:
    return {
        "best_val_iou": row["val_iou"],
        "best_step": step,
        "selected_by": select,
        **({"best_val_object_f1": row["val_object_f1"]} if pp is not None else {}),
    }


def _save_checkpoint(out: Path, net, summary: dict[str, Any], weighting, tasks: list[str]) -> None:
    """Write the run's output weights (``best.safetensors``) and ``summary.json`` with the task weighting."""
    save_weights(net, out / "best.safetensors")
    summary = {
        **summary,
        "task_weights": weighting.weights(),
        "log_vars": {t: float(s) for t, s in zip(tasks, weighting.log_vars.detach(), strict=False)},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


def train(config_path: str | None = None, overrides: dict[str, Any] | None = None) -> Path:
    """Train and write the best checkpoint, config and curves to ``cfg["out"]``.

    Returns:
        The output folder, holding ``best.safetensors``, ``config.json`` (architecture),
        ``train_config.json`` (recipe as run), ``curves.csv`` / ``curves.png`` and
        ``summary.json`` (best val IoU, learned task weights, wall time).
    """
    cfg, rng, device, out = start_run(config_path, DEFAULTS, overrides)
    arch = mtl_unet_arch(cfg)
    write_run_configs(out, cfg, arch)
    net = build_model(arch)
    load_init(net, cfg["init"])  # fine-tune from an earlier run's weights (same architecture)
    amp, channels_last = mixed_precision(device, cfg["precision"])
    net = net.to(device, memory_format=torch.channels_last) if channels_last else net.to(device)
    tasks = list(cfg["heads"])
    weighting = UncertaintyWeightedLoss(tasks).to(device)
    carried = init_log_vars(cfg["init"])  # a fine-tuning stage continues the init run's task weighting
    if carried:
        weighting.set_log_vars(carried)
    opt = torch.optim.AdamW(
        [*net.parameters(), *weighting.parameters()], lr=cfg["lr"], weight_decay=cfg["weight_decay"]
    )
    swa = WeightAverage(net, cfg["swa"]) if cfg["swa"] else None
    sched = (
        torch.optim.lr_scheduler.LambdaLR(opt, swa_lr_lambda(cfg["warmup"]))
        if swa is not None
        else torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=int(cfg["steps"]), pct_start=0.1)
    )
    select = cfg["select_by"]
    if select not in SELECT:
        raise unknown_name("select_by", select, SELECT)
    if cfg["cv"]:
        check_cv_run(cfg)
    pp = InstanceSettings.from_dict(cfg["postprocess"]) if select == "val_object_f1" else None
    train_data = _load_split("train", cfg["kampala_zoom"], cfg["cv"])
    val_data = _load_split("val", cfg["kampala_zoom"], cfg["cv"])
    log = CurveLogger(out)
    best, t0 = -1.0, time.time()
    pos_w = torch.tensor([cfg["edge_pos_weight"]], device=device)
    run: dict[str, float] = {}
    for step in range(1, int(cfg["steps"]) + 1):
        x, y, e, v, c = (
            t.to(device)
            for t in _batch(
                train_data,
                rng,
                cfg["crop"],
                cfg["batch_size"],
                cfg["colour_jitter"],
                int(cfg["contact_px"]) if cfg["contact_weight"] else 0,
                cfg["scale"],
                float(cfg["grey"]),
            )
        )
        with amp():
            o = {
                k: v.float()
                for k, v in net(x.contiguous(memory_format=torch.channels_last) if channels_last else x).items()
            }
        losses = {}
        if "seg" in o:
            bce = (F.binary_cross_entropy_with_logits(o["seg"], y, reduction="none") * v).sum() / v.sum().clamp(min=1)
            losses["seg"] = bce + soft_dice_loss(o["seg"] * v - 20 * (1 - v), y * v)
        if "edge" in o:
            w = v * (1 + float(cfg["contact_weight"]) * c)
            losses["edge"] = (
                F.binary_cross_entropy_with_logits(o["edge"], e, pos_weight=pos_w, reduction="none") * w
            ).sum() / v.sum().clamp(min=1)
        if "recon" in o:
            losses["recon"] = F.l1_loss(o["recon"], x)
        optimise(opt, sched, weighting(losses) if len(losses) > 1 else losses["seg"], losses, run)
        if swa is not None:
            swa.update(net, step)
        if step % int(cfg["val_every"]) == 0 or step == int(cfg["steps"]):
            n = int(cfg["val_every"])
            row: dict[str, float] = {"step": step, **{f"loss_{k}": val / n for k, val in run.items()}}
            row.update({f"weight_{k}": w for k, w in weighting.weights().items()} if len(losses) > 1 else {})
            row.update(_validate(net, val_data, device, pp))
            row["elapsed_s"] = time.time() - t0
            log.log(row)
            run = {}
            print(json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
            if swa is None and select == "last" and step == int(cfg["steps"]):
                _save_checkpoint(out, net, {**_validated(row, step, select, pp), "last_step": step}, weighting, tasks)
            elif swa is None and select != "last" and row[select] > best:
                best = row[select]
                _save_checkpoint(out, net, _validated(row, step, select, pp), weighting, tasks)
    log.plot()
    if swa is not None:  # the run's output: the averaged weights, batch-norm statistics recomputed on train crops
        bn = (
            _batch(train_data, rng, cfg["crop"], cfg["batch_size"], cfg["colour_jitter"])[0]
            for _ in range(swa.bn_batches)
        )
        avg = swa.finish(bn, device)
        row = _validate(avg, val_data, device, pp)  # reported only: nothing is chosen by it
        _save_checkpoint(
            out, avg, {**_validated(row, int(cfg["steps"]), "swa", pp), "swa": swa.summary()}, weighting, tasks
        )
    summary = json.loads((out / "summary.json").read_text())
    summary.update(
        {
            "final_task_weights": weighting.weights(),
            "wall_s": time.time() - t0,
            "steps": cfg["steps"],
            "precision": "bf16 autocast" if channels_last else "fp32",
            "device": str(device),
        }
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out
