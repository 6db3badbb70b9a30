"""Evaluate the land-cover and road models on their held-out tiles and bundle them.

``python -m experiments.packaging.semantic runs/landcover-deeplabv3plus runs/roads-pplinknet``
writes ``weights/landcover-deeplabv3plus`` and ``weights/roads-pplinknet`` (config, fp16
safetensors, ``card.json``, ``README.md``, training curves).

Metrics (weights evaluated after the fp16 round trip, fp32 inference, card tile/overlap):

* land cover, Dubai ``Tile 8`` (9 images): one confusion matrix pooled over all pixels;
  ``unlabelled`` ground-truth pixels are excluded (they are not scored either way), and mIoU
  is the mean IoU of the five labelled classes; per-class IoU / F1 and OA, kappa.
* roads, ETH ``satImage_091``-``100``: road IoU / F1 from one pooled confusion matrix;
  relaxed precision / recall / F1 with ``rho = 3`` px (Mnih & Hinton 2010) and APLS between
  mask skeleton graphs (Van Etten et al. 2018; CosmiQ's reference algorithm; the predicted graph extracted as
  the card's ``extra.road_graph`` states, :func:`rsviz.metrics.roads.road_graphs`) with a 4 px snapping
  buffer, and with 8 px (about SpaceNet's 4 m at ~0.5 m GSD; the source states no GSD), both
  as means over the tiles.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from experiments.packaging import add_out_argument
from experiments.packaging.building import cpu_speed
from experiments.recipes.common import training_stages, tta_note
from rsviz.datasets import scenes
from rsviz.datasets.landcover import DUBAI_CLASSES, DUBAI_IGNORE
from rsviz.datasets.roads import ETH_GSD_M, ROAD_CLASSES
from rsviz.evaluation import evaluate_sample, pool
from rsviz.metrics.roads import spacenet_buffer_px
from rsviz.models.api import LoadedModel, as_stored, save_pretrained
from rsviz.models.architectures import build_model
from rsviz.models.card import HeadSpec, InputSpec, ModelCard, road_graph_of
from rsviz.postprocess import RoadGraphSettings
from rsviz.types import Task

#: The default APLS graph extraction as a dict (the grid of :func:`choose_road_graph` varies its keys).
ROAD_GRAPH_DEFAULTS = RoadGraphSettings().to_dict()

#: Weights with at least this many elements ship as int8 (PP-LinkNet's 3x3 pyramid projection and the
#: ResNet-18 layer4 convolutions), which keeps the road model under the 30 MB budget.
INT8_MIN_NUMEL = 1_000_000


def _predict_all(lm: LoadedModel, dataset: str, split: str):
    from rsviz.inference import predict
    from rsviz.raster import RasterData

    for ref in scenes(dataset, split):
        s = ref.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield s, predict(lm, RasterData(s.image), precision="fp32")


def evaluate_landcover(lm: LoadedModel, split: str = "test") -> dict:
    """Land-cover figures on a Dubai split through the one evaluator (``unlabelled`` excluded): pixel metrics
    from one confusion matrix pooled over the split, boundary F1 a mean over images; plus ``images``."""
    from experiments.packaging.figures import card_figures

    results = [
        evaluate_sample(lm.card, p.heads, s, task=Task.LANDCOVER) for s, p in _predict_all(lm, "dubai-landcover", split)
    ]
    r = pool(results)
    return {**r.values, "images": r.images, **card_figures(results, "landcover")}


#: Road-graph grid searched on the val tiles by :func:`choose_road_graph` (values of ``extra.road_graph``).
ROAD_GRAPH_GRID = {
    "threshold": (0.3, 0.4, 0.5),
    "closing_px": (2, 3),
    "bridge_px": (0.0, 20.0, 30.0, 45.0, 60.0),
    "bridge_angle": (30.0, 50.0),
}


def _road_probs(lm: LoadedModel, split: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``[(classes (H, W) uint8, road probability (H, W) float32, ground truth (H, W) bool)]`` of an ETH split."""
    return [
        (p.heads["classes"], p.heads["probs"][-1], s.targets["roads"] > 0)
        for s, p in _predict_all(lm, "eth-roads", split)
    ]


def tile_apls(preds, graph: dict, buffers: tuple[float, ...] = (4.0,)) -> np.ndarray:
    """``(N, len(buffers))`` APLS per tile of ``preds`` (as :func:`_road_probs` returns them) with the road-graph
    parameters ``graph``, at each snapping buffer in pixels (graphs are built once per tile)."""
    from rsviz.metrics.roads import apls
    from rsviz.postprocess import road_graphs

    out = []
    for _, prob, gt in preds:
        graphs = road_graphs(prob, gt, graph)
        out.append([apls(*graphs, buffer=b)["apls"] for b in buffers])
    return np.array(out, float).reshape(-1, len(buffers))


def _mean_apls(preds, graph: dict) -> float:
    return float(np.nanmean(tile_apls(preds, graph)))


def choose_road_graph(lm: LoadedModel, split: str = "val") -> tuple[dict, float]:
    """Road-graph extraction for APLS chosen on a validation split (never on test).

    Searches :data:`ROAD_GRAPH_GRID` (probability threshold, closing radius, longest bridged gap,
    bridge angle; spurs under 20 px pruned) by mean val APLS at the 4 px buffer; of equal scores the
    first in grid order wins. Returns ``(params, val_apls)``.
    """
    import itertools

    preds = _road_probs(lm, split)
    best, best_v = dict(ROAD_GRAPH_DEFAULTS), -1.0
    keys = list(ROAD_GRAPH_GRID)
    for values in itertools.product(*ROAD_GRAPH_GRID.values()):
        g = {**ROAD_GRAPH_DEFAULTS, **dict(zip(keys, values, strict=True))}
        if g["bridge_px"] == 0 and g["bridge_angle"] != ROAD_GRAPH_GRID["bridge_angle"][0]:
            continue  # the angle does nothing without bridges
        v = _mean_apls(preds, g)
        if v > best_v:
            best, best_v = g, v
    return best, best_v


def evaluate_roads(lm: LoadedModel, split: str = "test") -> dict:
    """Road figures on an ETH split through the one evaluator: IoU / F1 pooled over the split's pixels,
    relaxed F1 (rho 3 px) and APLS means over tiles.

    APLS is reported at three snapping buffers: ``apls_4px`` (1.5 m, stricter than the definition),
    ``apls_8px`` and ``apls_4m``, the SpaceNet definition's 4 m
    (:data:`rsviz.metrics.roads.SPACENET_BUFFER_M`) at the measured ETH GSD
    (:data:`rsviz.datasets.roads.ETH_GSD_M`, 0.372 m: 10.75 px), on graphs extracted with the card's
    road-graph settings; ``apls_default_graph`` is the 4 px APLS with the default extraction (threshold
    0.5, no bridging), for comparison with cards that had none.
    """
    pairs = list(_predict_all(lm, "eth-roads", split))
    from experiments.packaging.figures import card_figures

    results = [evaluate_sample(lm.card, p.heads, s, task=Task.ROADS) for s, p in pairs]
    r = pool(results)
    preds = [(p.heads["classes"], p.heads["probs"][-1], s.targets["roads"] > 0) for s, p in pairs]
    return {
        **r.values,
        "apls_default_graph": _mean_apls(preds, ROAD_GRAPH_DEFAULTS),
        "gsd_m": ETH_GSD_M,
        "images": r.images,
        **card_figures(results, "roads"),
    }


def _landcover_card(cfg: dict, metrics: dict, extra: dict, tta: bool = False) -> ModelCard:
    return ModelCard(
        name="landcover-deeplabv3plus",
        title="DeepLabV3+ land cover (Dubai aerial, 5 classes + unlabelled)",
        task="landcover",
        architecture=f"DeepLabV3+ (segmentation_models.pytorch), {cfg['arch']['encoder_name']} encoder from scratch",
        paper="Chen et al., 'Encoder-Decoder with Atrous Separable Convolution' (DeepLabV3+), ECCV 2018; as in the "
        "OpenEarthMap land-cover mapper (Xia et al., WACV 2023)",
        heads={"seg": HeadSpec("multiclass", 5, description="land-cover class probabilities (softmax)")},
        input=InputSpec(bands=["red", "green", "blue"], gsd_range_m=[0.3, 1.5], tile_size=512, overlap=0.25, tta=tta),
        classes=list(DUBAI_CLASSES),
        ignore_index=DUBAI_IGNORE,
        training_data=[
            {
                "dataset": "dubai-landcover",
                "splits": "Tiles 1-6 train (54 images), Tile 7 val (9); Tile 8 held out for test (9)",
                "licence": "not stated in the repository (published elsewhere as public domain; unverified)",
                "attribution": "Humans in the Loop, 'Semantic segmentation of aerial imagery' (MBRSC imagery)",
            }
        ],
        recipe=cfg,
        metrics=metrics,
        extra=extra,
        licence="research use; the training data's licence is unverified (see training_data)",
    )


def road_metric_policy(g: dict) -> str:
    """The card's ``extra.metric_policy`` text for road graph parameters ``g`` (``extra.road_graph``)."""
    return (
        "IoU / F1 pooled over the split's pixels (road = probability >= 0.5); relaxed F1 (rho 3 px) and APLS are "
        "means over tiles. APLS follows CosmiQ's reference algorithm (rsviz.metrics.apls_core, issue #26): "
        "skeleton graphs simplified to junctions and end points, control points at the nodes and every 50 "
        "along edges, inserted into the other graph's nearest edge within the buffer (one control point per "
        "node), paths >= 0.001 compared both ways, harmonic mean. The predicted road mask is probability >= "
        f"{g['threshold']}, cleaned (closing r={g['closing_px']}, holes and blobs <= 100 px), spurs < "
        f"{g['min_spur']:g} px pruned on both graphs"
        + (
            f", and dead ends joined to the road they point at across gaps <= {g['bridge_px']:g} px within "
            f"{g['bridge_angle']:g} degrees (rsviz.metrics.roads.bridge_gaps)"
            if g["bridge_px"] > 0
            else ""
        )
        + " (extra.road_graph, chosen on the val tiles); apls_default_graph: 4 px APLS with threshold 0.5, "
        f"closing r=2, no bridging. apls_4m is the SpaceNet definition: graphs in metres at the ETH GSD of "
        f"{ETH_GSD_M} m (measured from regulation tennis-court lines, rsviz.datasets.roads), 4 m buffer "
        f"({spacenet_buffer_px(ETH_GSD_M):.2f} px), midpoints every 50 m; apls_4px and apls_8px score the same "
        "graphs in pixels (buffer 4 px = 1.5 m or 8 px, midpoints every 50 px). Figures before issue #26 "
        "(skeleton-node APLS: control points snapped to the nearest node) are in extra.metrics_skeleton_node_apls_pre_26"
    )


def _roads_card(cfg: dict, metrics: dict, extra: dict, tta: bool = False) -> ModelCard:
    return ModelCard(
        name="roads-pplinknet",
        title="PP-LinkNet road extraction (ETH aerial tiles)",
        task="roads",
        architecture=f"LinkNet (segmentation_models.pytorch) with a pyramid-pooling module (bins "
        f"{cfg['arch']['bins']}) on the {cfg['arch']['encoder_name']} encoder's deepest features, "
        "from scratch",
        paper="Tran et al., 'PP-LinkNet: Improving Semantic Segmentation of High Resolution Satellite Imagery with "
        "Multi-stage Training', ACM MM workshops 2020; focal loss (Lin et al., ICCV 2017) + Dice; poly LR",
        heads={"seg": HeadSpec("binary", 1, description="road probability")},
        input=InputSpec(bands=["red", "green", "blue"], gsd_range_m=[0.3, 0.6], tile_size=512, overlap=0.25, tta=tta),
        classes=list(ROAD_CLASSES),
        training_data=[
            {
                "dataset": "eth-roads",
                "splits": "satImage_001-080 train, 081-090 val; 091-100 held out for test",
                "licence": "none stated; imagery Google-derived: local training and tests only",
                "attribution": "ETH Zurich CIL road segmentation data (mhamas/road-extraction-from-aerial-images)",
            }
        ],
        recipe=cfg,
        metrics=metrics,
        extra=extra,
        licence="research use only (training imagery is Google-derived and carries no licence)",
    )


def package(
    run_dir: Path,
    out_root: Path,
    choose_tta: bool = False,
    choose_graph: bool = False,
    settings_from: Path | None = None,
) -> Path:
    """Evaluate one training run (land cover or roads, from its ``train_config.json``) and write its weights folder.

    With ``choose_tta``, test-time augmentation is switched on in the card (``input.tta``) when it
    raises the val score (road APLS with the default graph extraction, or land-cover mIoU). With
    ``choose_graph`` (roads), the APLS graph extraction (``extra.road_graph``) is then chosen on the
    val tiles (:func:`choose_road_graph`). The test metrics use the chosen settings.

    With ``settings_from`` (a model folder, e.g. the bundled ``weights/roads-pplinknet``), the TTA setting and
    the road-graph extraction are copied from that card instead (``choose_tta`` and ``choose_graph`` are then
    ignored), so the candidate's val tiles stay unused until :mod:`experiments.selection` compares it.

    Raises:
        FileNotFoundError: If ``settings_from`` has no ``card.json``.
    """
    import shutil

    from safetensors.torch import load_file

    cfg = json.loads((run_dir / "train_config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    arch = json.loads((run_dir / "config.json").read_text())
    net = build_model(arch)
    net.load_state_dict(load_file(str(run_dir / "best.safetensors")))
    make, evaluate, split = (
        (_landcover_card, evaluate_landcover, "dubai-test")
        if cfg["task"] == "landcover"
        else (_roads_card, evaluate_roads, "eth-test")
    )
    as_stored(net, half=True, int8_min_numel=INT8_MIN_NUMEL).eval()  # evaluate the weights as shipped
    key = "miou" if cfg["task"] == "landcover" else "apls_4px"
    tta, tta_choice, copied = False, None, None
    if settings_from is not None:
        ref = ModelCard.load(Path(settings_from) / "card.json")
        tta, choose_tta, choose_graph = bool(ref.input.tta), False, False
        copied = {"road_graph": road_graph_of(ref).to_dict()} if cfg["task"] == "roads" else {}
        tta_choice = {"copied_from": str(settings_from), "tta": tta}
    lm = LoadedModel(cfg["name"], make(cfg, {}, copied or {}, tta=tta), net, torch.device("cpu"))
    val = evaluate(lm, "val")
    if choose_tta:
        lm_tta = LoadedModel(cfg["name"], make(cfg, {}, {}, tta=True), net, torch.device("cpu"))
        val_tta = evaluate(lm_tta, "val")
        tta = val_tta[key] > val[key]
        tta_choice = {f"val_{key}_without_tta": val[key], f"val_{key}_with_tta": val_tta[key], "tta": tta}
        lm, val = (lm_tta, val_tta) if tta else (lm, val)
    graph_choice = None
    if choose_graph and cfg["task"] == "roads":
        graph, graph_val = choose_road_graph(lm, "val")
        graph_choice = {
            "val_apls_default_graph": val["apls_default_graph"],
            "val_apls_chosen": graph_val,
            "grid": {k: list(v) for k, v in ROAD_GRAPH_GRID.items()},
        }
        lm.card.postprocess = replace(lm.card.postprocess, road_graph=RoadGraphSettings.from_dict(graph))
        val = evaluate(lm, "val")
    metrics = {split: evaluate(lm, "test"), split.replace("test", "val"): val}
    extra = {
        "best_step": summary["best_step"],
        "training_wall_s": summary.get("wall_s"),
        "training_device": summary.get("device"),
        "training_precision": summary.get("precision"),
        "cpu_seconds_per_512px_tile": round(cpu_speed(net), 3),
        "cpu_note": "median of 5 forward passes, batch 1, fp32, PyTorch CPU threads on the machine that built the card",
        "weights_storage": f"fp16; conv weights with >= {INT8_MIN_NUMEL:,} elements as int8 per output channel "
        "(metrics above are measured on these stored weights)",
    }
    if tta_choice is not None:
        extra["tta_choice"] = tta_choice
        extra["tta_note"] = tta_note(tta, f"copied from {settings_from}" if settings_from else "by the val score")
    if copied:
        extra["road_graph"] = copied["road_graph"]
        extra["road_graph_choice"] = {"copied_from": str(settings_from)}
    if "swa" in summary:
        extra["weight_averaging"] = summary["swa"]
    if graph_choice is not None:
        extra["road_graph"] = road_graph_of(lm.card).to_dict()
        extra["road_graph_choice"] = graph_choice
    if cfg.get("init"):  # fine-tuned from earlier runs: record every stage
        extra["training_stages"] = training_stages(run_dir)
    if cfg["task"] == "landcover":
        extra["metric_policy"] = (
            "unlabelled ground-truth pixels are excluded; mIoU = mean IoU of building, land, "
            "road, vegetation, water from one confusion matrix pooled over the split"
        )
    else:
        extra["metric_policy"] = road_metric_policy(road_graph_of(lm.card).to_dict())
        extra["osm_rasterizer_check"] = (
            "rsviz.labels.rasterize_roads on the SpaceNet solaris sample: sample_roads.geojson lies about 6 km west "
            "of sample_road_raster_mask.tif, so the two do not overlap and their IoU is 0 by construction; "
            "the rasterizer is checked instead against hand-computed buffer areas and on the apls Vegas RGB tile with its ground-truth lines (tests/test_roads.py)"
        )
    card = make(cfg, metrics, extra, tta=tta)
    d = save_pretrained(net, arch, card, out_root / cfg["name"], half=True, int8_min_numel=INT8_MIN_NUMEL)
    for f in ("curves.csv", "curves.png"):
        if (run_dir / f).exists():
            shutil.copy(run_dir / f, d / f)
    return d


def refresh_road_metrics(model_dir: Path) -> dict:
    """Re-measure a packaged road model's val and test metrics with the current :func:`evaluate_roads`.

    For when the metric set grows (e.g. ``apls_4m``): ``card.json`` (``metrics`` and
    ``extra.metric_policy``) and ``README.md`` are rewritten from the stored weights, evaluated as
    shipped; ``model.safetensors`` and ``config.json`` are not touched, and nothing is chosen.

    Returns:
        The new ``metrics``.

    Raises:
        ValueError: The folder holds no road model.
    """
    from experiments.packaging.refresh import remeasure

    model_dir = Path(model_dir)
    task = ModelCard.load(model_dir / "card.json").task
    if task != "roads":
        raise ValueError(f"{model_dir} holds a {task!r} model; --refresh-metrics is for road models")
    return remeasure(model_dir, keep_other_splits=True).metrics


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", type=Path, help="training run folders")
    p.add_argument(
        "--refresh-metrics",
        type=Path,
        metavar="MODEL_DIR",
        help="re-measure a packaged road model's metrics (card.json, README.md) into a copy under --out; the "
        "weights are copied unchanged",
    )
    p.add_argument("--choose-tta", action="store_true", help="turn TTA on in the card where it raises the val score")
    p.add_argument("--choose-graph", action="store_true", help="roads: choose the APLS graph extraction on val")
    p.add_argument(
        "--settings-from",
        type=Path,
        help="model folder whose card's TTA setting and road-graph extraction are copied instead of "
        "chosen on val (e.g. weights/roads-pplinknet)",
    )
    add_out_argument(p, required=False)
    a = p.parse_args(argv)
    if a.out is None:
        p.error("--out is required")
    if a.refresh_metrics is not None:
        import shutil

        dst = a.out / a.refresh_metrics.name
        if dst.resolve() != a.refresh_metrics.resolve():
            shutil.copytree(a.refresh_metrics, dst, dirs_exist_ok=True)
        print(json.dumps(refresh_road_metrics(dst), indent=1))
    elif not a.runs:
        p.error("give training run folders, or --refresh-metrics MODEL_DIR")
    for run in a.runs:
        d = package(run, a.out, choose_tta=a.choose_tta, choose_graph=a.choose_graph, settings_from=a.settings_from)
        print(d.name, json.dumps(json.loads((d / "card.json").read_text())["metrics"], indent=1))


if __name__ == "__main__":
    main()
