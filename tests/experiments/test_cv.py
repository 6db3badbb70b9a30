"""Blocked cross-validation of the building recipe (experiments.cv) and its scale / grey augmentation."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from experiments.cv import ChipScore, compare, read_oof, score_fold, summarise, write_oof
from experiments.recipes.common import augment, scaled_crop


def test_scaled_crop_shrinks_a_chip_into_the_crop_and_keeps_instance_ids():
    rng = np.random.default_rng(0)
    img = np.random.default_rng(1).random((3, 64, 64)).astype(np.float32)
    inst = np.zeros((64, 64), np.int32)
    inst[8:40, 8:40] = 7
    x, (i2,), inside = scaled_crop(img, [inst], 48, 0.25, rng)  # a 192 px window: the whole chip, 16 px out
    assert x.shape == (3, 48, 48) and i2.shape == (48, 48) and i2.dtype == np.int32
    assert inside.sum() == 16 * 16 and inside[:16, :16].all()
    assert set(np.unique(i2)) == {0, 7} and (i2 == 7).sum() == 8 * 8  # 32 px a side at 1/4
    assert not i2[~inside].any()
    x, (i2,), inside = scaled_crop(img, [inst], 48, 2.0, rng)  # a 24 px window doubled: no padding
    assert inside.all() and x.shape == (3, 48, 48)


def test_grey_augmentation_makes_the_bands_equal_and_is_free_when_off():
    img = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    g, _ = augment(img, [], np.random.default_rng(0), colour=0.0, grey=1.0)
    assert np.allclose(g[0], g[1]) and np.allclose(g[1], g[2])
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    augment(img, [], a, colour=0.2, grey=0.0)
    augment(img, [], b, colour=0.2)
    assert a.random() == b.random()  # grey=0 draws nothing: earlier runs replay exactly


def test_scaled_batches_recompute_targets_at_the_new_scale():
    from experiments.recipes.building import _batch

    inst = np.zeros((64, 64), np.int32)
    inst[10:50, 10:50] = 3
    chip = (np.full((3, 64, 64), 0.5, np.float32), (inst > 0).astype(np.uint8), None, np.ones((64, 64), bool), inst)
    x, y, e, v, _ = _batch([chip], np.random.default_rng(0), 64, 4, 0.0, scale=[0.25, 0.5])
    assert x.shape == (4, 3, 64, 64)
    assert (v.sum(dim=(1, 2, 3)) < 64 * 64).all()  # zoomed out: the chip fills only part of each crop
    assert torch_all(y <= v) and e.sum() > 0 and torch_all(e <= v + y)


def test_scaled_batches_mark_no_edge_where_a_footprint_meets_the_padding():
    from experiments.recipes.building import _scaled_sample

    inst = np.zeros((64, 64), np.int32)
    inst[20:64, 20:64] = 5  # cut by the chip's south and east borders
    img = np.full((3, 64, 64), 0.5, np.float32)
    _, m, e, v, _ = _scaled_sample(img, np.ones((64, 64), bool), inst, 64, 0.5, np.random.default_rng(0))
    assert v[:32, :32].all() and not v[32:].any()  # the chip fills the top-left 32 px, the rest is padding
    assert m[31, 31] == 1 and e[31, 20:32].sum() == 0 and e[20:32, 31].sum() == 0  # no edge along the cut
    assert e[10, 10:32].sum() > 0  # the footprint's own north boundary still is one


def torch_all(t) -> bool:
    return bool(t.all())


def _rows(base_tp: int, seed: int) -> list[ChipScore]:
    rng = np.random.default_rng(seed)
    return [
        ChipScore(
            f"OAM-{i}-0-19",
            "banepa" if i < 8 else "kampala",
            i % 4,
            50,
            10,
            10,
            base_tp + int(rng.integers(3)),
            5,
            5,
            1,
            200,
        )
        for i in range(12)
    ]


def test_oof_tables_round_trip_summarise_and_compare(tmp_path):
    base, better = _rows(10, 0), _rows(20, 1)
    write_oof(base, tmp_path / "oof.csv")
    assert read_oof(tmp_path) == sorted(base, key=lambda r: r.chip)
    s = summarise(base, n=200)
    assert s["all"]["chips"] == 12 and s["banepa"]["chips"] == 8 and s["all"]["dropped"] == 12
    assert s["all"]["iou"] == pytest.approx(50 / 70)
    assert s["all"]["constant_iou"] == pytest.approx(60 / 200) and s["all"]["constant_object_f1"] == 0
    assert "constant_iou" not in summarise([replace(r, valid_px=0) for r in base], n=10)["all"]
    lo, hi = s["all"]["object_f1_ci95"]
    assert lo <= s["all"]["object_f1"] <= hi
    c = compare(base, better, n=200)
    assert c["object_f1"]["p_better"] == 1.0 and c["object_f1"]["replace"]
    assert c["iou"]["p_better"] == 0.5 and not c["iou"]["replace"]  # identical pixel counts: a tie
    with pytest.raises(ValueError, match="different chips"):
        compare(base, better[:-1])


def test_a_fold_trains_on_the_other_folds_and_scores_its_own_chips(mirror, tmp_path):
    from experiments.recipes.building import cv_refs, train

    cv = {"k": 4, "fold": 2, "block": 2, "seed": 0}
    held, rest = cv_refs(cv, True), cv_refs(cv, False)
    assert len(held) + len(rest) == 64 and not {r.id for r in held} & {r.id for r in rest}
    assert all(r.split in ("train", "val") for r in held + rest)
    run = train(
        None,
        {
            "steps": 1,
            "val_every": 1,
            "crop": 64,
            "batch_size": 2,
            "threads": 2,
            "cv": cv,
            "select_by": "last",
            "scale": [0.25, 2.0],
            "grey": 0.5,
            "out": str(tmp_path / "fold2"),
        },
    )
    assert json.loads((run / "summary.json").read_text())["selected_by"] == "last"
    rows = score_fold(run, cv, {"method": "components", "min_instance_px": 100})
    assert sorted(r.chip for r in rows) == sorted(r.id for r in held)
    assert {r.fold for r in rows} == {2} and sum(r.dropped for r in rows) > 0
    assert all(r.tp + r.fp + r.fn <= r.valid_px <= 512 * 512 for r in rows)


def test_a_cv_fold_refuses_a_checkpoint_choice_and_an_init_that_saw_labels(tmp_path):
    from experiments.recipes.building import check_cv_run

    cv = {"k": 4, "fold": 0}
    with pytest.raises(ValueError, match="select_by is 'val_object_f1'"):
        check_cv_run({"cv": cv, "select_by": "val_object_f1", "init": None})
    run = tmp_path / "ft"
    run.mkdir()
    (run / "train_config.json").write_text(json.dumps({"name": "building-mtl"}))
    with pytest.raises(ValueError, match="has seen the held-out fold"):
        check_cv_run({"cv": cv, "select_by": "last", "init": str(run / "best.safetensors")})
    (run / "train_config.json").write_text(json.dumps({"name": "building-mim"}))
    check_cv_run({"cv": cv, "select_by": "last", "init": str(run / "best.safetensors")})


def test_cv_run_refuses_other_recipes_missing_folds_and_stale_fold_runs(tmp_path):
    from experiments.cv import run

    cfg = tmp_path / "roads.json"
    cfg.write_text(json.dumps({"name": "roads-pplinknet"}))
    with pytest.raises(ValueError, match="names 'roads-pplinknet'"):
        run(str(cfg), tmp_path / "cv")
    mtl = tmp_path / "mtl.json"
    mtl.write_text(json.dumps({"name": "building-mtl"}))
    with pytest.raises(ValueError, match="fold 4 does not exist"):
        run(str(mtl), tmp_path / "cv", folds=[4])
    fold = tmp_path / "cv" / "fold0"
    fold.mkdir(parents=True)
    (fold / "best.safetensors").write_bytes(b"")
    (fold / "train_config.json").write_text(
        json.dumps({"steps": 300, "cv": {"k": 4, "fold": 0, "block": 2, "seed": 0}})
    )
    with pytest.raises(ValueError, match="other settings"):
        run(str(mtl), tmp_path / "cv", folds=[0], overrides={"steps": 300, "scale": [0.25, 2.0]})


def test_recipe_overrides_with_unknown_keys_are_refused(tmp_path):
    from experiments.recipes.building import train

    with pytest.raises(ValueError, match="scael"):
        train(None, {"scael": [0.25, 2.0], "out": str(tmp_path / "x")})


def test_cv_card_adds_the_recipe_figures_and_leaves_the_weights_alone(tmp_path, monkeypatch):
    from experiments.cv import card_with_cv
    from rsviz.models.card import ModelCard
    from rsviz.resources import weights_dir

    stages = []
    for name, tp in (("base", 10), ("scale", 20)):
        d = tmp_path / "cv" / name
        d.mkdir(parents=True)
        rows = _rows(tp, 0)
        write_oof(rows, d / "oof.csv")
        o = {"steps": 300, "init": str(tmp_path / "runs" / "mim" / "best.safetensors")}
        (d / "summary.json").write_text(json.dumps({"overrides": o, **summarise(rows, n=50)}))
        stages.append(d)
    src = weights_dir() / "building-seg"
    monkeypatch.chdir(tmp_path)
    dst = card_with_cv(src, stages, tmp_path / "out")
    cv = ModelCard.load(dst / "card.json").extra["recipe_cv"]
    assert list(cv["stages"]) == ["base", "scale"] and "p_better_than_previous" not in cv["stages"]["base"]
    assert cv["stages"]["scale"]["p_better_than_previous"]["object_f1"] == 1.0
    assert cv["stages"]["base"]["constant_iou"] == pytest.approx(60 / 200)
    assert cv["stages"]["base"]["overrides"] == {"steps": 300, "init": "runs/mim/best.safetensors"}  # no host path
    assert (dst / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    assert "recipe_cv" in (dst / "README.md").read_text()
