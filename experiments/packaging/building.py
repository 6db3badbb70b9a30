"""Evaluate trained building models on the held-out splits and package them with a model card.

``python -m experiments.packaging.building --mtl runs/building-mtl --baseline runs/building-seg``
evaluates both runs on the Banepa test chips, the Kampala test cluster and Joplin
(out-of-domain), times CPU inference, and writes ``weights/building-mtl`` (and
``weights/building-seg``) with ``config.json``, fp16 ``model.safetensors``, ``card.json``
and ``README.md``.

Aggregation: pixel metrics (IoU, F1, precision, recall) come from one confusion matrix
pooled over all pixels of a split; object F1 pools TP/FP/FN over its images; boundary F1
and reconstruction PSNR are means over images.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from experiments.packaging import add_out_argument
from experiments.recipes.common import training_stages, tta_note
from rsviz.datasets import scenes
from rsviz.datasets.buildings import BUILDING_CLASSES
from rsviz.evaluation import evaluate_sample, pool
from rsviz.evaluation.bootstrap import pooled_f1
from rsviz.metrics import object_f1
from rsviz.models.api import LoadedModel, as_stored, resolve_device, save_pretrained
from rsviz.models.architectures import build_model
from rsviz.models.card import HeadSpec, InputSpec, ModelCard, postprocess_of
from rsviz.postprocess import InstanceSettings, instances_for
from rsviz.types import Task

#: The default instance post-processing as a dict (the grid of :func:`tune_postprocess` varies its keys).
DEFAULT_POSTPROCESS = InstanceSettings().to_dict()

SPLITS = {
    "banepa-test": ("banepa-buildings", "test"),
    "kampala-test": ("kampala-buildings", "test"),
    "joplin-ood": ("joplin-buildings", "test"),
    "banepa-test-buffered": ("banepa-buildings", "test"),
}

#: Splits scored with the blocked-CV buffer: footprints cut by an edge shared with a chip of another split
#: (their other part is in train or val) are left out (:func:`rsviz.datasets.buildings.scoring_valid`).
BUFFERED = ("banepa-test-buffered",)

#: Objects under this many pixels are not counted on either side of object F1: the protocol of every
#: card figure, of the post-processing choice and of checkpoint selection by val object F1.
MIN_OBJECT_PX = 10

#: Minimum seed sizes (pixels) searched for edge-seeded watershed. The grid went up to 512 px until the
#: bundled model chose 512, its edge; at 0.1-0.2 m GSD a 768 px seed is still only 3-8 m^2 of roof.
SEED_PX = (32, 128, 256, 512, 768, 1024, 1536)


def object_scores(instances: np.ndarray, gt_mask: np.ndarray, gt_instances: np.ndarray | None, valid: np.ndarray):
    """Object F1 at IoU 0.5 of predicted building instances against the footprints, by the card protocol.

    Args:
        instances: ``(H, W)`` int32 predicted instance ids (0 = background), e.g. from :func:`instances_for`.
        gt_mask: ``(H, W)`` bool footprints (used when ``gt_instances`` is None: its 4-connected components).
        gt_instances: ``(H, W)`` int32 ground-truth instance ids, or None.
        valid: ``(H, W)`` bool, pixels that count.

    Returns:
        ``(scores, match)`` of :func:`rsviz.metrics.object_f1` (``scores`` has ``tp``, ``fp``, ``fn``, ``f1``).
    """
    return object_f1(
        instances > 0, gt_mask, valid=valid, min_area=MIN_OBJECT_PX, gt_instances=gt_instances, pred_instances=instances
    )


def _predictions(
    lm: LoadedModel,
    dataset: str,
    split: str,
    tile: int = 512,
    overlap: float = 0.25,
    tta: bool | None = None,
    context: int | None = None,
):
    """Yield ``(sample, prediction)`` for every image of ``dataset``/``split``.

    ``context`` None follows the card's ``input.context_px``: with a margin > 0 each image is predicted
    inside a mosaic of that many pixels of the other scenes' imagery around it (all splits; their labels
    are not read; :func:`rsviz.inference.context.predict_with_context`). Images without a CRS are
    predicted alone.
    """
    import warnings

    from rsviz.inference import predict
    from rsviz.inference.context import predict_with_context

    margin = lm.card.input.context_px if context is None else context
    others = None
    for ref in scenes(dataset, split):
        s = ref.load()
        r = s.raster_data()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if margin > 0 and s.crs is not None:
                if others is None:
                    others = [(o.id, o.load_image().raster_data()) for o in scenes(dataset)]
                nbs = [o for oid, o in others if oid != s.id]
                p = predict_with_context(lm, r, nbs, margin, tile=tile, overlap=overlap, precision="fp32", tta=tta)
            else:
                p = predict(lm, r, tile=tile, overlap=overlap, precision="fp32", tta=tta)
        yield s, p


#: Validation splits that instance post-processing (and the TTA setting) is chosen on: every held-out
#: val split of the training domains, TP / FP / FN pooled. Banepa val alone (6 chips, ~170 buildings)
#: picked settings that suited Banepa's large roofs and removed Kampala's small ones.
TUNE_SPLITS = (("banepa-buildings", "val"), ("kampala-buildings", "val"))


def val_predictions(
    lm: LoadedModel, splits: tuple[tuple[str, str], ...] = TUNE_SPLITS, tta: bool | None = None
) -> list:
    """``(sample, prediction)`` pairs of every image of ``splits`` (``(dataset, split)`` pairs, default
    :data:`TUNE_SPLITS`), in split order; ``tta`` None follows the card's ``input.tta``."""
    return [sp for ds, split in splits for sp in _predictions(lm, ds, split, tta=tta)]


def tune_postprocess(
    lm: LoadedModel, splits: tuple[tuple[str, str], ...] = TUNE_SPLITS, tta: bool | None = None
) -> tuple[dict, float]:
    """Choose instance post-processing on validation splits by pooled object F1 (never on test).

    Grid: connected components; distance-transform watershed with seeds >= {15, 25, 40, 60} px apart;
    and, for models with an edge head, edge-seeded watershed with footprint threshold in {0.4, 0.5, 0.6},
    edge threshold in {0.2, 0.3, 0.5}, minimum seed {32, 128, 256, 512, 768, 1024, 1536} px (:data:`SEED_PX`;
    seeds under it are slivers of one roof between edge-head responses) and touching instances merged
    across boundaries with a mean edge probability below {off, 0.5}; each with instances under
    {0, 100, 300} px dropped. ``splits`` are ``(dataset, split)`` pairs (default :data:`TUNE_SPLITS`);
    ``tta`` None follows the card's ``input.tta``. Returns ``(params, val_object_f1)``.
    """
    preds = val_predictions(lm, splits, tta)
    has_edge = "edge" in preds[0][1].heads
    base = dict(DEFAULT_POSTPROCESS)
    sizes = (0, 100, 300)
    grid = [dict(base, method="components", min_instance_px=a) for a in sizes]
    grid += [dict(base, method="distance", min_distance=d, min_instance_px=a) for d in (15, 25, 40, 60) for a in sizes]
    if has_edge:
        grid += [
            dict(base, method="edge", threshold=t, edge_threshold=e, min_seed_px=m, min_instance_px=a, merge_below=g)
            for t in (0.4, 0.5, 0.6)
            for e in (0.2, 0.3, 0.5)
            for m in SEED_PX
            for a in sizes
            for g in (0.0, 0.5)
        ]
    best, best_f1 = grid[0], -1.0
    for g in grid:
        f1 = pooled_f1(object_counts(preds, g))
        if f1 > best_f1:
            best, best_f1 = g, f1
    return best, best_f1


def object_counts(preds, pp: dict) -> np.ndarray:
    """``(N, 3)`` int object ``(tp, fp, fn)`` per image of ``preds`` (``(sample, prediction)`` pairs as
    :func:`_predictions` yields them), instances by post-processing ``pp``, card protocol (:func:`object_scores`)."""
    rows = []
    for s, p in preds:
        sc, _ = object_scores(
            instances_for(p.heads, pp), s.targets["buildings"] > 0, s.targets.get("instances"), s.valid
        )
        rows.append((sc["tp"], sc["fp"], sc["fn"]))
    return np.array(rows, np.int64).reshape(-1, 3)


NOTE = (
    "building instances for object F1 come from the predicted footprint by the stated method (components, "
    "distance-transform watershed, or watershed seeded by footprint minus predicted edges; "
    "rsviz.metrics.split_instances), chosen by object F1 pooled over the Banepa and Kampala val splits"
)
_OAM = "Imagery © OpenAerialMap contributors (CC-BY-4.0); building footprints © OpenStreetMap contributors (ODbL)"


def evaluate_building(
    lm: LoadedModel, split: str, tile: int = 512, overlap: float = 0.25, tta: bool | None = None
) -> dict:
    """Figures of a building model on one named split of :data:`SPLITS`, through the one evaluator.

    Each image is scored by :func:`rsviz.evaluation.evaluate_sample` (the card's post-processing,
    test-time augmentation unless ``tta`` is given) and the split by :func:`rsviz.evaluation.pool`:
    pixel metrics from one confusion matrix, object counts summed, boundary F1 and reconstruction
    figures means over images. Returns the pooled values plus ``images``.
    """
    from rsviz.datasets.buildings import scoring_valid, split_groups

    ds, sp = SPLITS[split]
    groups = split_groups() if split in BUFFERED else None
    results = []
    for s, p in _predictions(lm, ds, sp, tile, overlap, tta):
        if groups is not None:
            s.valid = scoring_valid(s, groups)[0]
        results.append(evaluate_sample(lm.card, p.heads, s, task=Task.BUILDINGS, min_area_px=MIN_OBJECT_PX))
    r = pool(results)
    from experiments.packaging.figures import card_figures

    return {**r.values, "images": r.images, **card_figures(results, "buildings")}


def cpu_speed(lm_net, in_channels: int = 3, size: int = 512, repeats: int = 5) -> float:
    """Median seconds of one forward pass on a ``size x size`` tile (batch 1, CPU, all threads)."""
    x = torch.randn(1, in_channels, size, size)
    net = lm_net.cpu().eval()
    times = []
    with torch.inference_mode():
        net(x)
        for _ in range(repeats):
            t = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _card(
    name: str, heads: dict, summary: dict, train_cfg: dict, metrics: dict, extra: dict, tta: bool = False
) -> ModelCard:
    hs = {"seg": HeadSpec("binary", 1, description="building footprint probability")}
    if "edge" in heads:
        hs["edge"] = HeadSpec("binary", 1, description="building boundary probability (3 px wide band)")
    if "recon" in heads:
        hs["recon"] = HeadSpec("reconstruction", 3, description="RGB reconstruction of the input")
    mtl = len(heads) > 1
    return ModelCard(
        name=name,
        title="Multi-task building footprints (segmentation + edges + reconstruction)"
        if mtl
        else "Building footprints, single-task baseline (segmentation only)",
        task="buildings",
        architecture=f"U-Net (segmentation_models.pytorch), {train_cfg['encoder_name']} encoder trained from scratch, "
        f"decoder {train_cfg['decoder_channels']}, 3x3 conv heads {list(heads)}",
        paper="Ekim & Sertel, 'A Multi-Task Deep Learning Framework for Building Footprint Segmentation', IGARSS 2021; "
        "loss weighting: Kendall, Gal & Cipolla, CVPR 2018"
        if mtl
        else "single-task baseline of Ekim & Sertel (IGARSS 2021), same backbone and budget",
        heads=hs,
        input=InputSpec(
            bands=["red", "green", "blue"],
            dtype="uint8",
            scale=255.0,
            mean=[0.485, 0.456, 0.406],
            std=[0.229, 0.224, 0.225],
            gsd_range_m=[0.1, 0.2],
            tile_size=512,
            overlap=0.25,
            tta=tta,
        ),
        classes=list(BUILDING_CLASSES),
        training_data=[
            {
                "dataset": "banepa-buildings",
                "splits": "train (34 chips); val (6 chips) for model selection",
                "licence": "imagery CC-BY-4.0; OSM ODbL 1.0",
                "attribution": _OAM,
            },
            {
                "dataset": "kampala-buildings",
                "splits": "zoom-20 train (20 tiles); val (4 tiles)",
                "licence": "imagery CC-BY-4.0; OSM ODbL 1.0",
                "attribution": _OAM,
            },
        ],
        recipe=train_cfg,
        metrics=metrics,
        extra=extra,
        licence="CC-BY-4.0 (weights trained on CC-BY-4.0 imagery and ODbL labels; attribute both)",
    )


def package(
    run_dir: Path,
    name: str,
    out_root: Path,
    device: str = "cpu",
    choose_tta: bool = False,
    settings_from: Path | None = None,
) -> Path:
    """Evaluate a training run and write ``weights/<name>``.

    With ``choose_tta``, post-processing is tuned on the val splits (:data:`TUNE_SPLITS`) both without and with
    test-time augmentation (mean of the 8 flips / 90-degree rotations), and the card takes the setting
    with the higher val object F1 (``input.tta``); every test metric is then measured with it.

    With ``settings_from`` (a model folder, e.g. the bundled ``weights/building-mtl``), the post-processing and
    TTA setting are copied from that card instead of chosen on val, so that the val splits stay unused by the
    candidate and :mod:`experiments.selection` compares the two on equal terms (``choose_tta`` is then ignored).

    Raises:
        FileNotFoundError: If ``settings_from`` has no ``card.json``.
    """
    from safetensors.torch import load_file

    cfg = json.loads((run_dir / "config.json").read_text())
    train_cfg = json.loads((run_dir / "train_config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    net = build_model(cfg)
    net.load_state_dict(load_file(str(run_dir / "best.safetensors")))
    # evaluate the weights as shipped (fp16 round trip)
    as_stored(net, half=True)
    dev = resolve_device(device)
    heads = cfg["heads"]
    card = _card(name, heads, summary, train_cfg, {}, {})
    lm = LoadedModel(name, card, net.to(dev).eval(), dev)
    tta, tta_choice = False, None
    if settings_from is not None:
        ref = ModelCard.load(Path(settings_from) / "card.json")
        pp, tta = postprocess_of(ref).to_dict(), bool(ref.input.tta)
        val_f1 = pooled_f1(object_counts(val_predictions(lm, tta=tta), pp))
        tta_choice = {"copied_from": str(settings_from), "tta": tta}
    else:
        pp, val_f1 = tune_postprocess(lm, tta=False)
    if choose_tta and settings_from is None:
        pp_tta, val_f1_tta = tune_postprocess(lm, tta=True)
        tta = val_f1_tta > val_f1
        tta_choice = {"val_object_f1_without_tta": val_f1, "val_object_f1_with_tta": val_f1_tta, "tta": tta}
        if tta:
            pp, val_f1 = pp_tta, val_f1_tta
    card.input.tta = tta
    card.postprocess = replace(card.postprocess, instances=InstanceSettings.from_dict(pp))
    metrics = {split: evaluate_building(lm, split) for split in SPLITS}
    speed = cpu_speed(net)
    extra = {
        "best_val_iou": summary["best_val_iou"],
        "best_step": summary["best_step"],
        "checkpoint_selected_by": summary.get("selected_by", "val_iou"),
        **({"weight_averaging": summary["swa"]} if "swa" in summary else {}),
        **({"best_val_object_f1": summary["best_val_object_f1"]} if "best_val_object_f1" in summary else {}),
        "training_wall_s": summary.get("wall_s"),
        "training_device": summary.get("device"),
        "cpu_seconds_per_512px_tile": round(speed, 3),
        "cpu_note": "median of 5 forward passes, batch 1, PyTorch CPU threads on the machine that built the card",
        "instance_postprocess": pp,
        "instance_postprocess_val_object_f1": val_f1,
        "instance_postprocess_note": NOTE
        if settings_from is None
        else NOTE.split(", chosen by")[0] + f", copied from {settings_from} (not chosen on this model's val scores)",
    }
    if tta_choice is not None:
        extra["tta_choice"] = tta_choice
        extra["tta_note"] = tta_note(
            tta,
            f"with the post-processing: copied from {settings_from}"
            if settings_from
            else "with the post-processing by Banepa + Kampala val object F1",
        )
    if train_cfg.get("init"):  # fine-tuned from earlier runs: record every stage
        extra["training_stages"] = training_stages(run_dir)
    if len(heads) > 1:
        extra["learned_task_weights_exp_minus_s"] = summary.get("final_task_weights")
        extra["learned_log_variances_s"] = summary.get("log_vars")
    card = _card(name, heads, summary, train_cfg, metrics, extra, tta=tta)
    d = save_pretrained(net.cpu(), cfg, card, out_root / name, half=True)
    import shutil

    for f in ("curves.csv", "curves.png"):
        if (run_dir / f).exists():
            shutil.copy(run_dir / f, d / f)
    return d


def add_comparison(out_root: Path) -> dict | None:
    """Put the multi-task vs single-task comparison into both cards (when both are bundled)."""
    from rsviz.models.api import render_card_markdown

    a, b = out_root / "building-mtl" / "card.json", out_root / "building-seg" / "card.json"
    if not (a.exists() and b.exists()):
        return None
    mtl, base = ModelCard.load(a), ModelCard.load(b)
    cmp = {
        s: {
            f"{who}_{k}": card.metrics[s][k]
            for k in ("iou", "object_f1_iou50", "boundary_f1_2px")
            for who, card in (("mtl", mtl), ("baseline", base))
        }
        for s in SPLITS
        if s in mtl.metrics and s in base.metrics
    }
    for card, path in ((mtl, a), (base, b)):
        card.extra["mtl_vs_single_task"] = cmp
        card.save(path)
        (path.parent / "README.md").write_text(render_card_markdown(card), encoding="utf-8")
    return cmp


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mtl", type=Path, help="training run of the multi-task model")
    p.add_argument("--baseline", type=Path, help="training run of the single-task baseline")
    add_out_argument(p)
    p.add_argument(
        "--choose-tta",
        action="store_true",
        help="turn test-time augmentation on in a card where it raises the val object F1",
    )
    p.add_argument(
        "--settings-from",
        type=Path,
        help="model folder whose card's post-processing and TTA setting are copied instead of chosen on "
        "val (e.g. weights/building-mtl), so that the candidate is compared on unused val splits",
    )
    a = p.parse_args(argv)
    for run, name in ((a.baseline, "building-seg"), (a.mtl, "building-mtl")):
        if run is not None:
            d = package(run, name, a.out, choose_tta=a.choose_tta, settings_from=a.settings_from)
            print(name, json.dumps(json.loads((d / "card.json").read_text())["metrics"], indent=1))
    print(json.dumps(add_comparison(a.out), indent=1))


if __name__ == "__main__":
    main()
