import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from rsviz.errors import BandCountError, ModelInputError, UnknownNameError
from rsviz.inference import InferenceCancelled, importance_map, window_starts
from rsviz.inference import predict as _predict
from rsviz.inference.engine import GSDWarning
from rsviz.models.api import get_model_card, list_models, load_model
from rsviz.raster import RasterData, read_raster
from tests import toy_models


def predict(*args, **kwargs):
    """Exact comparisons run in fp32 (the default ``auto`` may pick bf16 autocast on this CPU)."""
    kwargs.setdefault("precision", "fp32")
    return _predict(*args, **kwargs)


@pytest.fixture(scope="module")
def toys(tmp_path_factory):
    toy_models.register(tmp_path_factory.mktemp("models"))
    return load_model("toy-constant", toy_models.TEST_DEVICE), load_model("toy-pointwise", toy_models.TEST_DEVICE)


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(3, h, w), dtype=np.uint8)


def _full_forward(lm, img):
    """Whole-image forward pass, no tiling: the reference."""
    card = lm.card
    x = torch.from_numpy(img[None].astype(np.float32)) / card.input.scale
    x = (x - torch.tensor(card.input.mean).view(1, -1, 1, 1)) / torch.tensor(card.input.std).view(1, -1, 1, 1)
    with torch.no_grad():
        o = lm.net(x)
    return torch.sigmoid(o["seg"])[0, 0].numpy(), torch.sigmoid(o["edge"])[0, 0].numpy()


def test_window_starts_shift_last_window_inward():
    assert window_starts(100, 64, 0.25) == [0, 36]
    assert window_starts(64, 64, 0.5) == [0]
    assert window_starts(30, 64, 0.5) == [0]
    s = window_starts(1000, 256, 0.25)
    assert s[0] == 0 and s[-1] == 1000 - 256 and all(b - a <= 192 for a, b in zip(s, s[1:]))
    with pytest.raises(ValueError):
        window_starts(10, 4, 1.0)


def test_importance_maps_peak_in_the_centre():
    for mode in ("gaussian", "cosine"):
        w = importance_map(64, mode)
        assert w.shape == (64, 64) and w.max() == pytest.approx(1.0, abs=1e-3) and w.min() >= 1e-3
        assert w[32, 32] > w[0, 0]
    with pytest.raises(ValueError, match="valid"):
        importance_map(8, "nope")


@pytest.mark.parametrize("blend", ["gaussian", "cosine", "constant"])
def test_constant_model_blends_to_the_whole_image_output(toys, blend):
    const, _ = toys
    pred = predict(const, _image(150, 203), tile=64, overlap=0.5, blend=blend)
    expected = 1 / (1 + np.exp(-0.3))
    assert np.abs(pred.heads["probs"][0] - expected).max() < 1e-6
    assert np.abs(pred.heads["edge"] - 1 / (1 + np.exp(1.0))).max() < 1e-6
    assert np.abs(pred.heads["height"] - 2.5).max() < 1e-6


@pytest.mark.parametrize("shape", [(333, 517), (64, 64), (40, 90)])
def test_translation_equivariant_model_shows_no_seams(toys, shape):
    _, pw = toys
    img = _image(*shape, seed=1)
    pred = predict(pw, img, tile=64, overlap=0.25)
    seg, edge = _full_forward(pw, img)
    assert pred.heads["probs"].shape == (1, *shape)
    assert np.abs(pred.heads["probs"][0] - seg).max() < 1e-5
    assert np.abs(pred.heads["edge"] - edge).max() < 1e-5
    # reconstruction comes back in input units
    assert pred.heads["recon"].shape == (3, *shape)


@pytest.mark.parametrize(
    ("overlap", "blend", "panel"), [(0.25, "gaussian", 200), (0.5, "cosine", 130), (0.0, "gaussian", 64)]
)
def test_column_panels_blend_exactly_like_one_panel(toys, monkeypatch, tmp_path, overlap, blend, panel):
    """Wide rasters run in column panels; the carried seam sums make the result equal the one-panel run."""
    from rsviz.inference import engine

    _, pw = toys
    img = _image(150, 517, seed=4)
    whole = predict(pw, img, tile=64, overlap=overlap, blend=blend)
    monkeypatch.setattr(engine, "PANEL_COLS", panel)
    assert len(engine.panel_groups(window_starts(517, 64, overlap), 64, panel)) > 2
    panels = predict(pw, img, tile=64, overlap=overlap, blend=blend)
    np.testing.assert_allclose(panels.heads["probs"], whole.heads["probs"], atol=1e-6)
    np.testing.assert_allclose(panels.heads["edge"], whole.heads["edge"], atol=1e-6)
    seg, _ = _full_forward(pw, img)
    assert np.abs(panels.heads["probs"][0] - seg).max() < 1e-5
    out = tmp_path / "panels.tif"
    predict(pw, img, tile=64, overlap=overlap, blend=blend, output=out, cog=False)
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), whole.heads["classes"])


def test_panel_groups_cover_every_window_once():
    from rsviz.inference.engine import panel_groups

    cols = window_starts(5000, 512, 0.25)
    groups = panel_groups(cols, 512, 4096)
    assert [j for a, b in groups for j in range(a, b)] == list(range(len(cols)))
    assert all(cols[b - 1] + 512 - cols[a] <= 4096 for a, b in groups)
    assert panel_groups([0], 512, 100) == [(0, 1)]  # a panel always holds one window


def test_window_crossing_raster_edge_is_clipped(toys):
    _, pw = toys
    img = _image(120, 150, seed=2)
    full = predict(pw, img, tile=64)
    part = predict(pw, img, window=Window(100, 80, 100, 100), tile=64)
    assert part.shape == (40, 50)
    np.testing.assert_allclose(part.heads["probs"], full.heads["probs"][:, 80:, 100:], atol=1e-5)


def test_extent_crossing_raster_edge_from_lonlat_bounds(toys, scene_dir):
    from rsviz.geo import reproject_bounds

    _, pw = toys
    r = read_raster(scene_dir / "image.tif")
    w, s, e, n = r.bounds
    ll = reproject_bounds((w + 40, s - 20, e + 30, n - 20), r.crs, "EPSG:4326")  # hangs off the east/south
    pred = predict(pw, scene_dir / "image.tif", bounds=ll, tile=64)
    assert pred.window.col_off >= 70 and pred.window.col_off + pred.window.width == 160
    assert pred.window.row_off + pred.window.height == 96
    assert pred.crs == r.crs and pred.transform.c == pytest.approx(r.transform.c + 0.5 * pred.window.col_off)


def test_nodata_is_masked_out(toys, scene_dir):
    _, pw = toys
    pred = predict(pw, scene_dir / "image.tif", tile=64)
    assert (pred.heads["classes"][:8, :8] == 255).all()
    assert (pred.heads["probs"][:, :8, :8] == 0).all()
    assert (pred.heads["classes"][8:, 8:] != 255).all()
    assert not pred.valid[:8, :8].any()


def test_streamed_cog_validates_and_equals_in_memory(toys, tmp_path):
    from rio_cogeo.cogeo import cog_validate

    _, pw = toys
    img = _image(300, 700, seed=3)
    src = tmp_path / "in.tif"
    with rasterio.open(
        src,
        "w",
        driver="GTiff",
        height=300,
        width=700,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=rasterio.transform.from_origin(500000, 5000000, 0.5, 0.5),
        tiled=True,
        blockxsize=128,
        blockysize=128,
    ) as dst:
        dst.write(img)
    mem = predict(pw, src, tile=64, overlap=0.25)
    out = tmp_path / "out.tif"
    streamed = predict(pw, src, tile=64, overlap=0.25, output=out)
    assert streamed.heads == {} and str(out) in streamed.stats["files"]
    valid, errors, _ = cog_validate(str(out), quiet=True)
    assert valid, errors
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == mem.transform and ds.dtypes[0] == "uint8"
        a = ds.read()
    np.testing.assert_array_equal(a[0], mem.heads["classes"])
    np.testing.assert_array_equal(a[1], np.rint(mem.heads["probs"][0] * 255).astype(np.uint8))


def test_zstd_cog_holds_the_same_values_and_unknown_codec_is_refused(toys, tmp_path):
    from rio_cogeo.cogeo import cog_validate

    _, pw = toys
    img = _image(200, 260, seed=5)
    mem = predict(pw, img, tile=64)
    out = tmp_path / "z.tif"
    predict(pw, img, tile=64, output=out, compress="zstd")
    assert cog_validate(str(out), quiet=True)[0]
    with rasterio.open(out) as ds:
        assert ds.compression.name.lower() == "zstd"
        np.testing.assert_array_equal(ds.read(1), mem.heads["classes"])
    with pytest.raises(ModelInputError, match="deflate"):
        predict(pw, img, tile=64, output=tmp_path / "x.tif", compress="jpeg2000")


def test_tta_on_equivariant_model_matches_plain_and_reports_variance(toys):
    _, pw = toys
    img = _image(96, 96, seed=4)
    a = predict(pw, img, tile=64)
    b = predict(pw, img, tile=64, tta=True)
    np.testing.assert_allclose(a.heads["probs"], b.heads["probs"], atol=1e-5)
    assert b.heads["tta_var"].shape == (96, 96) and b.heads["tta_var"].max() < 1e-6
    assert "tta_var" not in a.heads and a.options["tta"] is False


def test_card_recommended_tta_is_the_default_and_can_be_overridden(toys):
    import dataclasses

    from rsviz.models.api import LoadedModel

    _, pw = toys
    card = dataclasses.replace(pw.card, input=dataclasses.replace(pw.card.input, tta=True))
    lm = LoadedModel(pw.name, card, pw.net, pw.device)
    img = _image(64, 64, seed=5)
    assert predict(lm, img, tile=64).options["tta"] is True
    assert "tta_var" in predict(lm, img, tile=64).heads
    off = predict(lm, img, tile=64, tta=False)
    assert off.options["tta"] is False and "tta_var" not in off.heads


def test_progress_and_cancel(toys):
    _, pw = toys
    calls = []
    predict(pw, _image(200, 200), tile=64, overlap=0.25, batch_size=3, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] == 16
    with pytest.raises(InferenceCancelled):
        predict(pw, _image(200, 200), tile=64, cancel=lambda: True)


def test_input_checks_against_the_card(toys, scene_dir):
    _, pw = toys
    with pytest.raises(BandCountError, match="expects 3 bands"):
        predict(pw, scene_dir / "one_band.tif", tile=64)
    sixteen = RasterData(np.full((3, 64, 64), 4000, np.uint16))
    with pytest.raises(ModelInputError, match="8-bit"):
        predict(pw, sixteen, tile=64)
    with pytest.raises(ModelInputError, match="multiple of 32"):
        predict(pw, _image(64, 64), tile=50)
    coarse = RasterData(_image(64, 64), transform=rasterio.transform.from_origin(0, 0, 30.0, 30.0), crs="EPSG:32633")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        predict(pw, coarse, tile=64)
    assert any(issubclass(w.category, GSDWarning) for w in rec)


def test_unknown_model_lists_valid_names(toys):
    with pytest.raises(UnknownNameError, match="valid names: .*toy-constant"):
        load_model("nope")


def test_every_registered_model_loads_and_card_matches_input_channels(toys):
    """Each model runs on the card's band count and rejects one band fewer."""
    for name in list_models():
        lm = load_model(name, "cpu")
        card = get_model_card(name)
        n = card.in_channels
        size = 120 if card.task == "scene" else 64
        with torch.no_grad():
            out = lm.net(torch.zeros(1, n, size, size))
            assert set(out) >= set(card.heads), name
            if any(isinstance(m, torch.nn.Conv2d) for m in lm.net.modules()):  # toy-constant has no weights to check
                with pytest.raises(RuntimeError):
                    lm.net(torch.zeros(1, n - 1, size, size))


def test_cli_predict_writes_class_ids_on_input_grid(toys, scene_dir, tmp_path):
    import os

    from rsviz.models.api import model_dir

    env = {**os.environ, "RSVIZ_MODELS_PATH": str(model_dir("toy-pointwise").parent)}
    code = (
        "import sys; from tests import toy_models; from rsviz.models import architectures as a; "
        "a.ARCHITECTURES['toy_pointwise']=toy_models.PointwiseNet; from rsviz.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "pred.tif"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "predict",
            "toy-pointwise",
            str(scene_dir / "image.tif"),
            str(out),
            "--tile",
            "64",
            "--device",
            "cpu",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    with rasterio.open(out) as ds, rasterio.open(scene_dir / "image.tif") as src:
        assert ds.transform == src.transform and ds.crs == src.crs and ds.shape == src.shape
        assert "class id" in ds.descriptions[0]
        assert set(np.unique(ds.read(1))) <= {0, 1, 255}
    bad = subprocess.run(
        [sys.executable, "-m", "rsviz", "predict", "nope", "a.tif", "b.tif"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "valid names" in bad.stderr and "Traceback" not in bad.stderr


def test_import_user_deeplabv3plus_checkpoint_openearthmap(tmp_path):
    """A user's own smp DeepLabV3+ with OpenEarthMap's 8 classes imports through the registry API."""
    import segmentation_models_pytorch as smp

    from rsviz.datasets.landcover import OPENEARTHMAP_CLASSES
    from rsviz.models.api import import_checkpoint, register_model_dir
    from rsviz.models.card import HeadSpec, InputSpec, ModelCard

    torch.manual_seed(0)
    net = smp.DeepLabV3Plus("resnet18", encoder_weights=None, in_channels=3, classes=8)
    ckpt = tmp_path / "oem.pth"
    torch.save({"state_dict": net.state_dict()}, ckpt)
    classes = [c.__class__(i, c.name, c.color) for i, c in enumerate(OPENEARTHMAP_CLASSES)]
    card = ModelCard(
        "oem-deeplab",
        "OpenEarthMap DeepLabV3+ (user)",
        "landcover",
        "DeepLabV3+ resnet18",
        "Xia et al., OpenEarthMap, WACV 2023",
        heads={"seg": HeadSpec("multiclass", 8)},
        input=InputSpec(bands=["red", "green", "blue"], tile_size=256),
        classes=classes,
    )
    cfg = {"arch": "smp", "smp_arch": "DeepLabV3Plus", "encoder_name": "resnet18", "in_channels": 3, "classes": 8}
    root = tmp_path / "models"
    import_checkpoint(ckpt, card, cfg, root / "oem-deeplab")
    register_model_dir(root)
    assert "oem-deeplab" in list_models()
    lm = load_model("oem-deeplab", "cpu")
    assert [c.name for c in lm.card.classes][:2] == ["bareland", "rangeland"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        np.testing.assert_allclose(lm.net(x)["seg"].numpy(), net.eval()(x).numpy(), atol=1e-5)
    pred = predict(lm, _image(100, 130), tile=64)
    assert pred.heads["probs"].shape == (8, 100, 130) and pred.heads["classes"].max() < 8
    # a pickled object that is not a plain state dict is refused (never unpickled)
    bad = tmp_path / "bad.pth"
    torch.save({"model": net}, bad)
    from rsviz.errors import RsvizError

    with pytest.raises(RsvizError, match="plain state dict"):
        import_checkpoint(bad, card, cfg, root / "bad")


def test_auto_precision_agrees_with_fp32(toys):
    from rsviz.inference.engine import resolve_precision

    _, pw = toys
    img = _image(128, 128, seed=5)
    a = predict(pw, img, tile=64, precision="fp32")
    b = _predict(pw, img, tile=64)  # auto
    assert b.options["precision"] in ("float32", "bfloat16")
    assert np.abs(a.heads["probs"] - b.heads["probs"]).max() < 0.05
    assert (a.heads["classes"] == b.heads["classes"]).mean() > 0.98
    assert resolve_precision("fp32", torch.device("cpu")) is None
    with pytest.raises(ModelInputError):
        resolve_precision("fp16", torch.device("cpu"))


def test_int8_weight_storage_round_trips_within_half_a_step(toys, tmp_path):
    """Large conv weights may ship as per-channel int8; they load back as fp32 within scale / 2."""
    from safetensors.torch import load_file

    from rsviz.models.api import dequantize_state, save_pretrained
    from rsviz.models.architectures import build_model

    cfg = {"arch": "pplinknet", "encoder_name": "resnet18", "in_channels": 3, "classes": 1}
    net = build_model(cfg)
    card = get_model_card("toy-pointwise")
    d = save_pretrained(net, cfg, card, tmp_path / "q", half=True, int8_min_numel=1_000_000)
    raw = load_file(str(d / "model.safetensors"))
    assert raw["ppm.project.0.weight.__int8"].dtype == torch.int8
    assert "ppm.project.0.weight" not in raw and raw["encoder.conv1.weight"].dtype == torch.float16
    back = dequantize_state(raw)
    w = net.state_dict()["ppm.project.0.weight"]
    step = w.abs().reshape(w.shape[0], -1).amax(1) / 127
    assert ((back["ppm.project.0.weight"] - w).abs().reshape(w.shape[0], -1).amax(1) <= step / 2 + 1e-6).all()
    build_model(cfg).load_state_dict(back)  # every key present, right shapes
    assert (d / "model.safetensors").stat().st_size < 0.75 * sum(v.numel() * 2 for v in net.state_dict().values())


def test_cancelled_stream_leaves_no_scratch_files(toys, tmp_path):
    _, pw = toys
    with pytest.raises(InferenceCancelled):
        predict(pw, _image(200, 200), tile=64, output=tmp_path / "out.tif", cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("overlap", [1.0, -0.1, float("nan")])
def test_overlap_outside_0_1_is_refused_with_the_value(toys, overlap):
    with pytest.raises(ModelInputError, match="overlap must be a fraction in \\[0, 1\\)"):
        predict(toys[1], np.zeros((3, 64, 64), np.uint8), overlap=overlap)


def test_cli_refuses_to_write_the_prediction_over_its_input(scene_dir, tmp_path):
    import shutil

    from rsviz.cli import main

    img = shutil.copy(scene_dir / "image.tif", tmp_path / "chip.tif")
    before = Path(img).read_bytes()
    assert main(["predict", "building-mtl", str(img), str(img), "--device", "cpu"]) == 2
    assert main(["predict", "building-mtl", str(tmp_path), str(tmp_path), "--device", "cpu"]) == 2
    assert Path(img).read_bytes() == before
