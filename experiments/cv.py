"""Spatially blocked k-fold cross-validation of the building recipe (issue #23).

The labelled train and val chips of Banepa (40) and Kampala (24) are dealt to ``k`` folds by 2 x 2 blocks of
neighbouring chips (:func:`rsviz.datasets.buildings.building_cv_folds`); the test blocks of each city are
never read. For each fold a model is trained on the other folds (the recipe's ``cv`` option, last step kept)
and predicts the held-out chips; every chip's pixel and object counts are written to ``oof.csv``. Footprints
cut by an edge shared with a chip of another fold are dropped from scoring
(:func:`rsviz.datasets.buildings.scoring_valid`): their other part was in the training data.

Instances come from the bundled ``building-mtl`` card's post-processing (fixed before any fold ran), so
two recipes differ only in training. Out-of-fold figures pool every chip once; intervals and the paired
rule resample chips (:mod:`rsviz.evaluation.bootstrap`).

Run: ``rsviz cv run CONFIG --out runs/cv/NAME [--k 4] [--set steps=400 crop=192]`` then
``rsviz cv compare runs/cv/BASE runs/cv/CANDIDATE``.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from rsviz.evaluation.bootstrap import pooled_f1

#: the out-of-fold table's columns
OOF_NAME = "oof.csv"


@dataclass(frozen=True)
class ChipScore:
    """Counts of one held-out chip.

    Attributes:
        chip: Scene id (``OAM-x-y-z``).
        city: ``banepa`` or ``kampala``.
        fold: Fold the chip was held out in.
        tp: Footprint pixels predicted as building (valid pixels only), and likewise ``fp`` / ``fn``.
        obj_tp: Predicted instances matched to a footprint at IoU >= 0.5, and likewise ``obj_fp`` / ``obj_fn``.
        dropped: Footprints cut by a fold edge, left out of scoring.
        valid_px: Pixels scored (valid, less the dropped footprints); 0 in tables written before it was kept.
    """

    chip: str
    city: str
    fold: int
    tp: int
    fp: int
    fn: int
    obj_tp: int
    obj_fp: int
    obj_fn: int
    dropped: int
    valid_px: int = 0


def _net(run_dir: Path):
    import torch
    from safetensors.torch import load_file

    from rsviz.models.architectures import build_model

    net = build_model(json.loads((run_dir / "config.json").read_text()))
    net.load_state_dict(load_file(str(run_dir / "best.safetensors")))
    return net.eval().to(torch.device("cpu"))


def score_fold(run_dir: Path, cv: dict[str, Any], settings: dict[str, Any], zoom: int = 20) -> list[ChipScore]:
    """Predict and score the held-out chips of one fold's run.

    Args:
        run_dir: The fold's training run (``config.json``, ``best.safetensors``).
        cv: The fold's ``{"k", "fold", "block", "seed"}``.
        settings: Building-instance post-processing (a card's ``postprocess.instances``).
        zoom: Kampala zoom.

    Returns:
        One :class:`ChipScore` per held-out chip.
    """
    import torch

    from experiments.packaging.building import object_scores
    from experiments.recipes.building import cv_refs
    from experiments.recipes.common import MEAN, STD
    from rsviz.datasets.buildings import building_cv_folds, grid_cell, scoring_valid
    from rsviz.postprocess import instances_for

    folds = building_cv_folds(int(cv["k"]), int(cv.get("block", 2)), int(cv.get("seed", 0)), zoom)
    groups = {city: dict(f.fold) for city, f in folds.items()}
    net = _net(run_dir)
    out = []
    for ref in cv_refs(cv, True, zoom):
        s = ref.load()
        img = s.image[:3].astype(np.float32) / 255.0
        with torch.no_grad():
            o = net(torch.from_numpy(((img - MEAN) / STD)[None].astype(np.float32)))
        heads = {"probs": torch.sigmoid(o["seg"][0]).float().numpy()}
        if "edge" in o:
            heads["edge"] = torch.sigmoid(o["edge"][0, 0]).float().numpy()
        valid, dropped = scoring_valid(s, groups)
        t = s.targets["buildings"].astype(bool)
        p = heads["probs"][0] > float(settings.get("threshold", 0.5))
        sc, _ = object_scores(instances_for(heads, settings), t, s.targets["instances"], valid)
        out.append(
            ChipScore(
                ref.id,
                grid_cell(ref)[0],
                int(cv["fold"]),
                int((p & t & valid).sum()),
                int((p & ~t & valid).sum()),
                int((~p & t & valid).sum()),
                int(sc["tp"]),
                int(sc["fp"]),
                int(sc["fn"]),
                dropped,
                int(valid.sum()),
            )
        )
    return out


def write_oof(rows: list[ChipScore], path: Path) -> Path:
    """Write the out-of-fold table (one row per chip, sorted by chip id)."""
    names = [f.name for f in fields(ChipScore)]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, names)
        w.writeheader()
        for r in sorted(rows, key=lambda r: r.chip):
            w.writerow(asdict(r))
    return path


def read_oof(path: Path) -> list[ChipScore]:
    """Read an ``oof.csv`` back (the cross-validation folder or the file itself)."""
    path = path / OOF_NAME if path.is_dir() else path
    with path.open() as f:
        return [
            ChipScore(**{k: (v if k in ("chip", "city") else int(v)) for k, v in row.items()})
            for row in csv.DictReader(f)
        ]


def _iou(c: np.ndarray) -> float:
    tp, fp, fn = c.sum(0)
    return float(tp / max(tp + fp + fn, 1))


#: pooled figures of the OOF table: name -> (columns, statistic)
FIGURES = {"iou": (("tp", "fp", "fn"), _iou), "object_f1": (("obj_tp", "obj_fp", "obj_fn"), pooled_f1)}


def _counts(rows: list[ChipScore], cols: tuple[str, ...]) -> np.ndarray:
    return np.array([[getattr(r, c) for c in cols] for r in rows], float).reshape(len(rows), len(cols))


def summarise(rows: list[ChipScore], *, n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Pooled out-of-fold IoU and object F1@0.5 per city and overall, with 95 % chip-bootstrap intervals.

    Returns:
        ``{scope: {"chips", "dropped", figure: value, f"{figure}_ci95": [lo, hi], f"constant_{figure}"}}``
        for scopes ``all``, ``banepa``, ``kampala``: ``constant_iou`` is the IoU of calling every scored pixel
        building (the better constant; all background scores 0), left out when a row lacks ``valid_px``.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for scope in ("all", "banepa", "kampala"):
        sel = [r for r in rows if scope in ("all", r.city)]
        if not sel:
            continue
        d: dict[str, Any] = {"chips": len(sel), "dropped": sum(r.dropped for r in sel)}
        idx = rng.integers(len(sel), size=(n, len(sel)))
        for name, (cols, stat) in FIGURES.items():
            c = _counts(sel, cols)
            draws = np.array([stat(c[i]) for i in idx])
            d[name] = stat(c)
            d[f"{name}_ci95"] = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]
        if all(r.valid_px > 0 for r in sel):  # every scored pixel called building: the best constant map's IoU
            d["constant_iou"] = sum(r.tp + r.fn for r in sel) / sum(r.valid_px for r in sel)
        d["constant_object_f1"] = 0.0  # a constant map has no objects
        out[scope] = d
    return out


def compare(base: list[ChipScore], cand: list[ChipScore], *, n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Paired chip bootstrap of a candidate recipe against a base recipe on the pooled out-of-fold chips.

    Returns:
        ``{figure: {"base", "candidate", "p_better", "replace"}}``; ``replace`` applies the
        :data:`experiments.selection.REPLACE_P` rule.

    Raises:
        ValueError: If the two tables do not hold the same chips.
    """
    from experiments.selection import REPLACE_P
    from rsviz.evaluation.bootstrap import p_better

    a, b = sorted(base, key=lambda r: r.chip), sorted(cand, key=lambda r: r.chip)
    if [r.chip for r in a] != [r.chip for r in b]:
        raise ValueError("the two out-of-fold tables hold different chips; run both with the same k, block and seed")
    out = {}
    for name, (cols, stat) in FIGURES.items():
        ca, cb = _counts(a, cols), _counts(b, cols)
        p = p_better(ca, cb, stat, n=n, seed=seed)
        out[name] = {"base": stat(ca), "candidate": stat(cb), "p_better": p, "replace": p >= REPLACE_P}
    return out


#: config names ``run`` accepts (each has a bundled card whose post-processing scores the folds)
CV_RECIPES = ("building-mtl", "building-seg")


def _check_same_run(run_dir: Path, settings: dict[str, Any]) -> None:
    """Refuse to re-score a fold trained with other settings than the ones asked for now."""
    ran = json.loads((run_dir / "train_config.json").read_text())
    diff = {k: (ran.get(k), v) for k, v in settings.items() if ran.get(k) != v}
    if diff:
        raise ValueError(
            f"{run_dir} was trained with other settings (ran, asked): {diff}; use another --out or remove it"
        )


def run(config: str, out: Path, *, k: int = 4, block: int = 2, seed: int = 0, folds=None, overrides=None) -> Path:
    """Train and score every fold of a recipe config; write ``oof.csv`` and ``summary.json`` into ``out``.

    Args:
        config: Recipe config (``experiments/configs/*.json``) of one of :data:`CV_RECIPES`; its ``name`` also
            picks the bundled card whose instance post-processing scores the folds.
        out: Output folder; fold runs go to ``out/fold{i}``. A fold whose run already has weights is scored,
            not retrained (it must have been trained with the same ``overrides``).
        k: Folds. ``block``, ``seed``: see :func:`rsviz.datasets.buildings.building_cv_folds`.
        folds: Fold indices to run (default: all).
        overrides: Recipe settings applied on top of ``config`` (e.g. a smaller CV budget).

    Returns:
        ``out``.

    Raises:
        ValueError: If the config is not a building recipe, a fold index is outside ``0..k-1``, or a fold run
            already in ``out`` was trained with other settings.
    """
    from experiments.recipes.building import train
    from rsviz.resources import weights_dir

    recipe = json.loads(Path(config).read_text())
    name = recipe.get("name", "building-mtl")
    if name not in CV_RECIPES:
        raise ValueError(f"rsviz cv runs the building recipes {list(CV_RECIPES)}; {config} names {name!r}")
    # the bundled model's post-processing, chosen on the old val chips (inside the CV pool; see the docs)
    settings = json.loads((weights_dir() / name / "card.json").read_text())["postprocess"]["instances"]
    out.mkdir(parents=True, exist_ok=True)
    todo = list(range(k) if folds is None else folds)
    bad = [f for f in todo if not 0 <= f < k]
    if bad:
        raise ValueError(f"fold {bad[0]} does not exist: folds are 0-{k - 1}")
    # rows of folds scored by an earlier call (``--fold`` one at a time) are kept
    rows = [r for r in read_oof(out) if r.fold not in todo] if (out / OOF_NAME).exists() else []
    for fold in todo:
        cv = {"k": k, "fold": fold, "block": block, "seed": seed}
        run_dir = out / f"fold{fold}"
        if (run_dir / "best.safetensors").exists():
            _check_same_run(run_dir, {**(overrides or {}), "cv": cv})
        else:
            o = dict(overrides or {})
            steps = int(o.get("steps", recipe.get("steps", 1000)))
            train(config, {**o, "cv": cv, "out": str(run_dir), "select_by": "last", "val_every": steps})
        rows += score_fold(run_dir, cv, settings)
        write_oof(rows, out / OOF_NAME)
    (out / "summary.json").write_text(
        json.dumps({"k": k, "block": block, "seed": seed, "overrides": overrides, **summarise(rows)}, indent=1)
    )
    return out


def card_with_cv(model_dir: Path, stages: list[Path], out: Path) -> Path:
    """Copy a bundled building model into ``out`` with its recipe's cross-validated figures in the card.

    The figures (``extra.recipe_cv``: each stage's pooled out-of-fold IoU and object F1@0.5 with their 95 %
    chip-bootstrap intervals and the best constant map's, and each stage's paired P against the stage before)
    describe the *recipe* at the CV budget, not the bundled weights, which are left byte-identical; so
    ``rsviz promote`` takes the copy in as a metrics refresh.

    Args:
        model_dir: A bundled model folder (``weights/building-mtl``).
        stages: CV folders (``rsviz cv run --out``) in stage order.
        out: Folder the copy is written into (``out/<model name>``).

    Returns:
        The copy's folder.
    """
    import shutil

    from rsviz.models.api import render_card_markdown
    from rsviz.models.card import ModelCard

    dst = out / model_dir.name
    shutil.copytree(model_dir, dst, dirs_exist_ok=True)
    card = ModelCard.load(dst / "card.json")
    entry: dict[str, Any] = {"protocol": CV_NOTE, "stages": {}}
    before = None
    for d in stages:
        summary = json.loads((d / "summary.json").read_text())
        stage = {"overrides": _portable(summary["overrides"]), **summary["all"]}
        if before is not None:
            c = compare(read_oof(before), read_oof(d))
            stage["p_better_than_previous"] = {k: v["p_better"] for k, v in c.items()}
        entry["stages"][d.name] = stage
        before = d
    card.extra["recipe_cv"] = entry
    card.save(dst / "card.json")
    (dst / "README.md").write_text(render_card_markdown(card), encoding="utf-8")
    return dst


def _portable(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with a path under the working directory (an ``init``) made relative to it, for a card."""
    cwd = Path.cwd().resolve()
    out = {}
    for k, v in overrides.items():
        p = Path(v) if isinstance(v, str) and Path(v).is_absolute() else None
        out[k] = str(p.resolve().relative_to(cwd)) if p is not None and p.resolve().is_relative_to(cwd) else v
    return out


#: what ``extra.recipe_cv`` measures, in the card's words
CV_NOTE = (
    "blocked 4-fold cross-validation of the recipe (rsviz cv run): the 64 labelled Banepa and Kampala train + val "
    "chips dealt to folds by 2 x 2 blocks, footprints cut by another fold's chip edge not scored, test blocks in no "
    "fold; each stage trained from scratch per fold at the CV budget (300 steps, 192 px crops, batch 8, last step, "
    "no TTA, this card's instance post-processing), so its figures are lower than this card's and compare recipe "
    "stages, not these weights; docs/model-selection.md has the table"
)


def _value(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def main(argv: list[str] | None = None) -> int:
    """``rsviz cv run CONFIG --out DIR`` / ``rsviz cv compare BASE CANDIDATE`` / ``rsviz cv card MODEL CV... --out``."""
    ap = argparse.ArgumentParser(prog="rsviz cv", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and score every fold; writes oof.csv and summary.json")
    r.add_argument("config")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--k", type=int, default=4)
    r.add_argument("--block", type=int, default=2)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--fold", type=int, action="append", help="run only this fold (repeatable)")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="recipe overrides, e.g. steps=400")
    c = sub.add_parser("compare", help="paired bootstrap of two CV folders' out-of-fold chips")
    c.add_argument("base", type=Path)
    c.add_argument("candidate", type=Path)
    k = sub.add_parser("card", help="copy a bundled model with its recipe's CV figures (then rsviz promote)")
    k.add_argument("model", type=Path, help="e.g. weights/building-mtl")
    k.add_argument("stages", nargs="+", type=Path, help="CV folders in stage order")
    k.add_argument("--out", required=True, type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "run":
        bad = [s for s in a.set if "=" not in s]
        if bad:
            ap.error(f"--set takes KEY=VALUE, got {bad[0]!r}")
        o = {s.split("=", 1)[0]: _value(s.split("=", 1)[1]) for s in a.set}
        out = run(a.config, a.out, k=a.k, block=a.block, seed=a.seed, folds=a.fold, overrides=o)
        print((out / "summary.json").read_text())
    elif a.cmd == "card":
        print(card_with_cv(a.model, a.stages, a.out))
    else:
        print(json.dumps(compare(read_oof(a.base), read_oof(a.candidate)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
