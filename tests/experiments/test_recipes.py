"""Training recipes run end to end on a tiny budget and write what their cards are built from."""

import json

import pytest
import torch

from experiments.recipes import RECIPES
from rsviz.errors import UnknownNameError

pytestmark = pytest.mark.slow


def test_every_bundled_model_family_has_a_recipe():
    assert {
        "building-mtl",
        "building-seg",
        "height-mtl",
        "landcover-deeplabv3plus",
        "roads-pplinknet",
        "s2-resize",
        "s2-intermediate",
        "s2-late",
    } <= set(RECIPES)


def test_semantic_recipe_rejects_unknown_names_and_keys(tmp_path):
    from experiments.recipes.semantic import train

    with pytest.raises(UnknownNameError, match="roads-pplinknet"):
        train("roads-unet")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stepz": 3}))
    with pytest.raises(ValueError, match="stepz"):
        train("roads-pplinknet", str(bad))


@pytest.mark.realdata
def test_roads_recipe_trains_and_writes_a_loadable_run(mirror, tmp_path):
    from safetensors.torch import load_file

    from experiments.recipes.semantic import train
    from rsviz.models.architectures import build_model

    out = train(
        "roads-pplinknet",
        None,
        {"steps": 2, "val_every": 2, "crop": 64, "batch_size": 2, "out": str(tmp_path / "run"), "threads": 2},
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_step"] == 2 and 0.0 <= summary["val_iou"] <= 1.0
    assert (out / "curves.csv").exists() and (out / "curves.png").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arch"] == "pplinknet"
    build_model(cfg).load_state_dict(load_file(str(out / "best.safetensors")))


def test_roads_fine_tune_starts_from_init_weights_and_selects_by_apls(mirror, tmp_path):
    from safetensors.torch import load_file, save_file

    from experiments.recipes.semantic import DEFAULTS, train
    from rsviz.models.architectures import build_model

    torch.manual_seed(3)
    net = build_model(DEFAULTS["roads-pplinknet"]["arch"])
    init = {k: v.clone() for k, v in net.state_dict().items()}
    save_file(init, str(tmp_path / "init.safetensors"))
    out = train(
        "roads-pplinknet",
        None,
        {
            "steps": 1,
            "val_every": 1,
            "crop": 64,
            "batch_size": 2,
            "lr": 0.0,
            "init": str(tmp_path / "init.safetensors"),
            "cldice_weight": 0.5,
            "select_by": "val_apls",
            "out": str(tmp_path / "ft"),
            "threads": 2,
        },
    )
    summary = json.loads((out / "summary.json").read_text())
    assert "best_val_apls" in summary and 0.0 <= summary["val_apls"] <= 1.0
    got = load_file(str(out / "best.safetensors"))
    conv = "encoder.conv1.weight" if "encoder.conv1.weight" in got else next(k for k in got if k.endswith("weight"))
    assert torch.equal(got[conv].float(), init[conv].float())  # lr 0: the init weights came through
    assert "loss_cldice" in (out / "curves.csv").read_text().splitlines()[0]


def test_training_stages_follow_the_init_chain(tmp_path):
    from experiments.recipes.common import training_stages

    def run(name, init, precision=None):
        d = tmp_path / name
        d.mkdir()
        cfg = {
            "steps": 10,
            **({"init": str(tmp_path / init / "best.safetensors")} if init else {}),
            **({"precision": precision} if precision else {}),
        }
        (d / "train_config.json").write_text(json.dumps(cfg))
        (d / "summary.json").write_text(json.dumps({"best_step": 5, "best_val_iou": 0.5, "wall_s": 1.0}))
        return d

    run("s1", None)
    run("s2", "s1", "auto")
    last = run("s3", "s2", "fp32")
    st = training_stages(last)
    assert [s["run"] for s in st] == ["s1", "s2", "s3"] and [s["stage"] for s in st] == [1, 2, 3]
    assert [s["precision"] for s in st] == ["fp32", "bf16 autocast", "fp32"]
    assert st[0]["best_val_iou"] == 0.5 and st[2]["steps"] == 10
    assert len(training_stages(tmp_path / "s1")) == 1


def test_training_stages_continue_into_a_bundled_card(tmp_path):
    """A stage fine-tuned from bundled weights (``init`` = ``weights/<name>/model.safetensors``) keeps the
    stages recorded in that folder's card."""
    from experiments.recipes.common import training_stages

    bundled = tmp_path / "weights" / "m"
    bundled.mkdir(parents=True)
    earlier = [{"run": "a", "steps": 100, "stage": 1}, {"run": "b", "steps": 50, "stage": 2}]
    (bundled / "card.json").write_text(json.dumps({"extra": {"training_stages": earlier}}))
    d = tmp_path / "c"
    d.mkdir()
    (d / "train_config.json").write_text(json.dumps({"steps": 10, "init": str(bundled / "model.safetensors")}))
    (d / "summary.json").write_text(json.dumps({"best_step": 10, "best_val_iou": 0.6}))
    st = training_stages(d)
    assert [s["run"] for s in st] == ["a", "b", "c"] and [s["stage"] for s in st] == [1, 2, 3]
    assert st[2]["best_val_iou"] == 0.6 and st[0]["steps"] == 100
    # later, c's weights were bundled (the card lists a, b, c) and d was fine-tuned from run c:
    # the chain is a, b, c, d, not a, b, c, c, d
    (bundled / "card.json").write_text(json.dumps({"extra": {"training_stages": [*earlier, {"run": "c", "stage": 3}]}}))
    e = tmp_path / "d"
    e.mkdir()
    (e / "train_config.json").write_text(json.dumps({"steps": 5, "init": str(d / "best.safetensors")}))
    (e / "summary.json").write_text(json.dumps({"best_step": 5, "best_val_iou": 0.7}))
    assert [s["run"] for s in training_stages(e)] == ["a", "b", "c", "d"]


def test_building_recipe_selects_by_val_object_f1(mirror, tmp_path):
    from experiments.recipes.building import train

    with pytest.raises(UnknownNameError, match="val_object_f1"):
        train(None, {"select_by": "val_loss", "out": str(tmp_path / "bad")})
    pp = {"method": "components", "min_instance_px": 100}
    out = train(
        None,
        {
            "steps": 2,
            "val_every": 1,
            "crop": 64,
            "batch_size": 2,
            "threads": 2,
            "lr": 1e-4,
            "select_by": "val_object_f1",
            "postprocess": pp,
            "out": str(tmp_path / "run"),
        },
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selected_by"] == "val_object_f1" and 0.0 <= summary["best_val_object_f1"] <= 1.0
    rows = (out / "curves.csv").read_text().splitlines()
    assert "val_object_f1" in rows[0].split(",") and len(rows) == 3
    col = rows[0].split(",").index("val_object_f1")
    best = max(float(r.split(",")[col]) for r in rows[1:])
    assert summary["best_val_object_f1"] == pytest.approx(best)


def test_fine_tuning_continues_the_learned_task_weighting(tmp_path):
    from experiments.recipes.common import init_log_vars
    from rsviz.models.losses import UncertaintyWeightedLoss

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"log_vars": {"seg": -0.5, "edge": -0.8}}))
    bundled = tmp_path / "weights" / "m"
    bundled.mkdir(parents=True)
    (bundled / "card.json").write_text(json.dumps({"extra": {"learned_log_variances_s": {"seg": -0.2}}}))
    assert init_log_vars(str(run / "best.safetensors")) == {"seg": -0.5, "edge": -0.8}
    assert init_log_vars(str(bundled / "model.safetensors")) == {"seg": -0.2}
    assert init_log_vars(None) is None and init_log_vars(str(tmp_path / "none" / "x.safetensors")) is None
    w = UncertaintyWeightedLoss(["seg", "edge", "recon"])
    w.set_log_vars(init_log_vars(str(run / "best.safetensors")))
    assert w.weights() == pytest.approx({"seg": 1.6487, "edge": 2.2255, "recon": 1.0}, abs=1e-3)
    assert w.log_vars.requires_grad


def test_fine_tuning_starts_from_bundled_int8_weights(tmp_path):
    """``init`` may name a bundled ``model.safetensors`` whose large convolutions are stored as int8."""
    from safetensors.torch import load_file

    from experiments.recipes.common import load_init
    from experiments.recipes.semantic import DEFAULTS
    from rsviz.models.api import dequantize_state, save_pretrained
    from rsviz.models.architectures import build_model
    from rsviz.models.card import HeadSpec, InputSpec, ModelCard

    arch = DEFAULTS["roads-pplinknet"]["arch"]
    torch.manual_seed(0)
    net = build_model(arch)
    card = ModelCard(
        name="r",
        title="r",
        task="roads",
        architecture="a",
        paper="p",
        heads={"seg": HeadSpec("binary", 1)},
        input=InputSpec(bands=["red", "green", "blue"]),
    )
    d = save_pretrained(net, arch, card, tmp_path / "r", half=True, int8_min_numel=1_000_000)
    stored = load_file(str(d / "model.safetensors"))
    assert any(k.endswith(".__int8") for k in stored)
    got = load_init(build_model(arch), d / "model.safetensors").state_dict()
    want = dequantize_state(stored)
    big = next(k for k in want if k + ".__int8" in stored)
    assert torch.equal(got[big], want[big])
    assert (got[big] - net.state_dict()[big]).abs().max() < net.state_dict()[big].abs().max() / 100


def test_building_batches_pad_chips_smaller_than_the_crop():
    import numpy as np

    from experiments.recipes.building import _batch

    rng = np.random.default_rng(0)
    small = (
        np.full((3, 40, 50), 0.5, np.float32),
        np.ones((40, 50), np.uint8),
        np.zeros((40, 50), np.uint8),
        np.ones((40, 50), np.uint8),
        None,
    )
    x, y, e, v, c = _batch([small], rng, 64, 3, 0.0)
    assert x.shape == (3, 3, 64, 64) and v.shape == (3, 1, 64, 64)
    assert v.sum(dim=(1, 2, 3)).tolist() == [2000.0] * 3  # only the chip's own 40 x 50 pixels count
    assert torch.equal(y * v, v)  # the padding carries no building


def test_building_postprocessing_is_chosen_on_every_val_split_pooled(monkeypatch):
    """Two val splits that want different post-processing: the choice maximises their pooled object F1."""
    from types import SimpleNamespace

    import numpy as np

    import experiments.packaging.building as bc

    def scene(prob, gt_inst):
        s = SimpleNamespace(
            targets={"buildings": (gt_inst > 0).astype(np.uint8), "instances": gt_inst},
            valid=np.ones(gt_inst.shape, bool),
        )
        return s, SimpleNamespace(heads={"probs": prob[None].astype(np.float32)})

    # split a: two 20 x 20 houses that touch (a distance-transform split is right)
    gt_a = np.zeros((64, 64), np.int32)
    gt_a[10:30, 10:30], gt_a[10:30, 30:50] = 1, 2
    # split b: three separate 12 x 40 sheds, each with a 4 px waist (components are right; the distance
    # split cuts each shed in two)
    gt_b = np.zeros((64, 64), np.int32)
    for i, c in enumerate((2, 22, 42)):
        gt_b[2:42, c : c + 12] = i + 1
        gt_b[20:24, c : c + 4] = gt_b[20:24, c + 8 : c + 12] = 0
    calls = []

    def fake_predictions(lm, ds, split, tile=512, overlap=0.25, tta=None):
        calls.append((ds, split))
        gt = gt_a if ds == "banepa-buildings" else gt_b
        yield scene((gt > 0) * 0.9, gt)

    monkeypatch.setattr(bc, "_predictions", fake_predictions)
    pp, f1 = bc.tune_postprocess(None)
    assert calls == list(bc.TUNE_SPLITS)

    def pooled(pp):
        tp = fp = fn = 0
        for gt in (gt_a, gt_b):
            s, p = scene((gt > 0) * 0.9, gt)
            sc, _ = bc.object_scores(bc.instances_for(p.heads, pp), gt > 0, gt, s.valid)
            tp, fp, fn = tp + sc["tp"], fp + sc["fp"], fn + sc["fn"]
        return 2 * tp / max(2 * tp + fp + fn, 1)

    assert f1 == pytest.approx(pooled(pp))
    only_a, _ = bc.tune_postprocess(None, splits=(("banepa-buildings", "val"),))
    assert only_a["method"] == "distance"  # on split a alone the distance split wins ...
    assert pp["method"] == "components" and f1 > pooled(only_a) + 0.1  # ... but it cuts split b's sheds


def test_weight_average_is_the_mean_of_due_snapshots_with_batchnorm_recomputed():
    from experiments.recipes.common import WeightAverage

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    swa = WeightAverage(net, {"start": 2, "every": 2, "bn_batches": 3})
    seen = []
    for step, value in enumerate([5.0, 1.0, 9.0, 3.0, 7.0], start=1):
        torch.nn.init.constant_(net[0].weight, value)
        if swa.update(net, step):
            seen.append(value)
    assert seen == [1.0, 3.0] and swa.summary()["snapshots"] == 2  # steps 2 and 4 only
    torch.manual_seed(0)
    batches = [torch.randn(4, 2, 5, 5) + 10.0 for _ in range(3)]
    avg = swa.finish(batches, torch.device("cpu"))
    assert torch.allclose(avg[0].weight, torch.full_like(avg[0].weight, 2.0))
    assert not avg.training
    # running statistics now describe the averaged weights on these batches, not the snapshots' (init 0 / 1)
    with torch.no_grad():
        feats = torch.cat([avg[0](b) for b in batches])
    assert torch.allclose(avg[1].running_mean, feats.mean(dim=(0, 2, 3)), atol=1e-4)
    with pytest.raises(ValueError, match="bn_batches"):
        WeightAverage(net, {"start": 2, "every": 0, "bn_batches": 1})
    with pytest.raises(RuntimeError, match="start step 9"):
        WeightAverage(net, {"start": 9, "every": 1, "bn_batches": 1}).finish(batches, torch.device("cpu"))


@pytest.mark.realdata
def test_building_recipe_with_weight_averaging_outputs_the_average(mirror, tmp_path):
    from safetensors.torch import load_file, save_file

    from experiments.recipes.building import train
    from rsviz.models.architectures import build_model

    torch.manual_seed(1)
    arch = {
        "arch": "mtl_unet",
        "encoder_name": "mobilenet_v2",
        "in_channels": 3,
        "heads": {"seg": 1, "edge": 1, "recon": 3},
        "decoder_channels": [128, 64, 32, 16, 16],
    }
    init = build_model(arch).state_dict()
    save_file({k: v.contiguous() for k, v in init.items()}, str(tmp_path / "init.safetensors"))
    out = train(
        None,
        {
            "steps": 3,
            "val_every": 3,
            "crop": 64,
            "batch_size": 2,
            "threads": 2,
            "lr": 0.0,
            "init": str(tmp_path / "init.safetensors"),
            "swa": {"start": 1, "every": 1, "bn_batches": 2},
            "out": str(tmp_path / "run"),
        },
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selected_by"] == "swa" and summary["swa"]["snapshots"] == 3 and summary["best_step"] == 3
    got = load_file(str(out / "best.safetensors"))
    w = "encoder.features.0.0.weight"
    assert torch.equal(got[w], init[w])  # lr 0: every snapshot is the init, so is their mean
    bn = "encoder.features.0.1.running_mean"
    assert not torch.equal(got[bn], init[bn])  # batch-norm statistics recomputed on training crops


def test_building_packager_copies_post_processing_and_tta_from_a_card(monkeypatch, tmp_path):
    """``settings_from``: the candidate is scored on val with the bundled card's settings, none chosen on val."""
    from types import SimpleNamespace

    import numpy as np
    from safetensors.torch import save_file

    import experiments.packaging.building as bc
    from rsviz.models.architectures import build_model
    from rsviz.models.card import ModelCard

    arch = {
        "arch": "mtl_unet",
        "encoder_name": "mobilenet_v2",
        "in_channels": 3,
        "heads": {"seg": 1},
        "decoder_channels": [128, 64, 32, 16, 16],
    }
    run = tmp_path / "run"
    run.mkdir()
    save_file({k: v.contiguous() for k, v in build_model(arch).state_dict().items()}, str(run / "best.safetensors"))
    (run / "config.json").write_text(json.dumps(arch))
    recipe = {
        "name": "building-seg",
        "steps": 1,
        "encoder_name": "mobilenet_v2",
        "decoder_channels": [128, 64, 32, 16, 16],
    }
    (run / "train_config.json").write_text(json.dumps(recipe))
    (run / "summary.json").write_text(
        json.dumps({"best_val_iou": 0.5, "best_step": 1, "selected_by": "swa", "swa": {"snapshots": 4}})
    )
    ref = bc._card(
        "building-seg",
        {"seg": 1},
        {},
        recipe,
        {},
        {"instance_postprocess": {"method": "distance", "min_distance": 40}},
        tta=True,
    )
    (tmp_path / "ref").mkdir()
    ref.save(tmp_path / "ref" / "card.json")
    gt = np.zeros((20, 20), np.int32)
    gt[2:8, 2:8] = 1
    s = SimpleNamespace(
        targets={"buildings": (gt > 0).astype(np.uint8), "instances": gt}, valid=np.ones(gt.shape, bool)
    )
    calls = []

    def predictions(lm, ds, split, tta=None, **kw):
        calls.append(tta)
        return [(s, SimpleNamespace(heads={"probs": (gt > 0)[None].astype(np.float32)}))]

    monkeypatch.setattr(bc, "_predictions", predictions)
    monkeypatch.setattr(bc, "tune_postprocess", lambda *a, **k: pytest.fail("post-processing chosen on val"))
    monkeypatch.setattr(bc, "evaluate_building", lambda lm, split: {"object_f1": 1.0})
    monkeypatch.setattr(bc, "cpu_speed", lambda net: 0.1)
    d = bc.package(run, "building-seg", tmp_path / "out", choose_tta=True, settings_from=tmp_path / "ref")
    card = ModelCard.load(d / "card.json")
    assert card.input.tta is True and calls == [True] * len(bc.TUNE_SPLITS)
    assert card.postprocess.instances.method == "distance"
    assert card.postprocess.instances.min_distance == 40
    assert card.extra["instance_postprocess_val_object_f1"] == 1.0
    assert card.extra["weight_averaging"] == {"snapshots": 4} and "copied from" in card.extra["tta_note"]


def test_road_packager_copies_tta_and_graph_extraction_from_a_card(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    import experiments.packaging.semantic as sc
    from experiments.recipes.semantic import DEFAULTS
    from rsviz.models.architectures import build_model
    from rsviz.models.card import ModelCard, road_graph_of

    cfg = {**DEFAULTS["roads-pplinknet"], "out": str(tmp_path / "run")}
    run = tmp_path / "run"
    run.mkdir()
    save_file(
        {k: v.contiguous() for k, v in build_model(cfg["arch"]).state_dict().items()}, str(run / "best.safetensors")
    )
    (run / "config.json").write_text(json.dumps(cfg["arch"]))
    (run / "train_config.json").write_text(json.dumps(cfg))
    (run / "summary.json").write_text(json.dumps({"best_step": 5, "selected_by": "swa", "swa": {"snapshots": 2}}))
    graph = {"threshold": 0.3, "closing_px": 3, "min_spur": 20.0, "bridge_px": 45.0, "bridge_angle": 30.0}
    (tmp_path / "ref").mkdir()
    sc._roads_card(cfg, {}, {"road_graph": graph}, tta=True).save(tmp_path / "ref" / "card.json")
    seen = []

    def evaluate(lm, split):
        seen.append((split, lm.card.input.tta, road_graph_of(lm.card).to_dict()))
        return {"apls": 0.5, "apls_default_graph": 0.4}

    monkeypatch.setattr(sc, "evaluate_roads", evaluate)
    monkeypatch.setattr(sc, "choose_road_graph", lambda *a, **k: pytest.fail("graph chosen on val"))
    monkeypatch.setattr(sc, "cpu_speed", lambda net: 0.1)
    d = sc.package(run, tmp_path / "out", choose_tta=True, choose_graph=True, settings_from=tmp_path / "ref")
    assert seen == [("val", True, graph), ("test", True, graph)]  # val scored once, with the copied settings
    card = ModelCard.load(d / "card.json")
    assert card.input.tta is True and road_graph_of(card).to_dict() == graph
    assert card.extra["weight_averaging"] == {"snapshots": 2}
    assert card.extra["road_graph_choice"] == {"copied_from": str(tmp_path / "ref")}


def test_building_batches_carry_the_contact_zone_for_the_edge_loss():
    import numpy as np

    from experiments.recipes.building import _batch
    from rsviz.labels import contact_mask

    inst = np.zeros((64, 64), np.int32)
    inst[10:30, 10:30], inst[10:30, 30:50] = 1, 2
    chip = (
        np.full((3, 64, 64), 0.5, np.float32),
        (inst > 0).astype(np.uint8),
        np.zeros((64, 64), np.uint8),
        np.ones((64, 64), np.uint8),
        inst,
    )
    *_, c = _batch([chip], np.random.default_rng(0), 64, 4, 0.0, contact_px=5)
    assert [int(n) for n in c.sum(dim=(1, 2, 3))] == [int(contact_mask(inst, 5).sum())] * 4  # rotated, not cropped
    *_, none = _batch([chip], np.random.default_rng(0), 64, 2, 0.0)
    assert none.sum() == 0


def test_road_batches_draw_the_configured_share_from_extra_data():
    import numpy as np

    from experiments.recipes.semantic import DEFAULTS, _batch

    eth = [(np.zeros((3, 32, 32), np.float32), np.zeros((32, 32), np.int64))]
    dubai = [(np.ones((3, 32, 32), np.float32), np.ones((32, 32), np.int64))]
    cfg = {**DEFAULTS["roads-pplinknet"], "crop": 16, "batch_size": 200, "colour_jitter": 0.0}
    _, y = _batch(eth, np.random.default_rng(0), {**cfg, "dubai_road_share": 0.3}, dubai)
    share = float(y.float().mean())
    assert 0.2 < share < 0.4
    _, y = _batch(eth, np.random.default_rng(0), cfg, dubai)  # share 0 by default: ETH only
    assert int(y.sum()) == 0
