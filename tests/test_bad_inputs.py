"""Bad input never costs data, a traceback or a silently wrong answer (issue #20, CLI and library).

Every case of the seeded corpus (``tests/data/bad_inputs/data.py``, built from real sample files) is
fed to the library or the command line; each must end in exactly its expected :mod:`rsviz.errors`
class (the CLI: exit status 2 and one ``error:`` line, no traceback), or succeed when it is merely odd.
No input file may change and no partial output may remain.

``hypothesis`` is not installed in the project's environment, so the property tests at the end draw their
raster headers and GeoJSON geometries from a seeded NumPy generator instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from rsviz import errors
from rsviz.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
_DATA = os.environ.get("RSVIZ_DATA_DIR")
_HAVE_MIRROR = bool(_DATA) and (Path(_DATA or ".") / "banepa-buildings").is_dir()


def _load_corpus_module():
    spec = importlib.util.spec_from_file_location("bad_inputs_data", ROOT / "tests" / "data" / "bad_inputs" / "data.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


# the corpus is built once at collection (about a second), so every case is a test of its own
_CORPUS = Path(tempfile.mkdtemp(prefix="rsviz-bad-inputs-"))
CASES = _load_corpus_module().build(_CORPUS, Path(_DATA or "."), ROOT / "weights") if _HAVE_MIRROR else []
BY_KIND = {k: [c for c in CASES if c.kind == k] for k in ("predict", "read", "footprints", "model", "cli")}
needs_mirror = pytest.mark.skipif(not _HAVE_MIRROR, reason="RSVIZ_DATA_DIR does not point at the sample data")


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and "cli" not in p.relative_to(root).parts[:1]:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


BEFORE = _digest(_CORPUS) if _HAVE_MIRROR else {}


def _ids(cases) -> list[str]:
    return [c.name for c in cases]


def _raises_exactly(expect: str, fn, *args, **kwargs):
    cls = getattr(errors, expect)
    with pytest.raises(errors.RsvizError) as info:
        fn(*args, **kwargs)
    assert info.type is cls, f"expected {expect}, got {info.type.__name__}: {info.value}"
    assert str(info.value), "an error says what is wrong"
    return info.value


def _no_scratch(folder: Path) -> None:
    left = [p.name for p in folder.rglob(".rsviz-*")] if folder.is_dir() else []
    assert not left, f"partial output left behind: {left}"


@pytest.fixture(scope="module")
def model():
    from rsviz.models.api import load_model

    return load_model("building-seg", "cpu")


@needs_mirror
def test_corpus_size():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@needs_mirror
@pytest.mark.parametrize("case", BY_KIND["predict"], ids=_ids(BY_KIND["predict"]))
def test_predict(case, model):
    from rsviz.inference import predict

    assert case.path is not None
    if case.expect == "ok":
        pred = predict(model, case.path, tile=64)
        assert pred.heads["classes"].dtype == np.uint8
        if "nodata" in case.name or "nan" in case.name:  # NaN and nodata pixels are nodata, never guessed
            with rasterio.open(case.path) as ds:
                data = ds.read()
                invalid = np.all(ds.read_masks() == 0, axis=0) | np.any(~np.isfinite(data.astype("float64")), axis=0)
            assert invalid.any()
            assert np.all(pred.heads["classes"][invalid] == 255)
    else:
        _raises_exactly(case.expect, predict, model, case.path, tile=64)


@needs_mirror
@pytest.mark.parametrize("case", BY_KIND["read"], ids=_ids(BY_KIND["read"]))
def test_read(case):
    from rsviz.raster import read_raster

    _raises_exactly(case.expect, read_raster, case.path)


@needs_mirror
@pytest.mark.parametrize("case", BY_KIND["footprints"], ids=_ids(BY_KIND["footprints"]))
def test_footprints(case):
    from rsviz.labels import rasterize_instances, rasterize_polygons, read_geojson_features

    with rasterio.open(_CORPUS / "rasters" / "chip.tif") as ds:
        grid = (ds.transform, ds.shape, ds.crs)

    def burn():
        feats, crs = read_geojson_features(case.path)
        geoms = [f["geometry"] for f in feats]
        rasterize_polygons(geoms, *grid, crs)
        return rasterize_instances(geoms, *grid, crs)

    if case.expect == "ok":
        inst = burn()
        assert inst.shape == grid[1]
        if case.name == "footprints_ok":
            assert inst.max() >= 1
    else:
        err = _raises_exactly(case.expect, burn)
        if case.expect == "GeometryTypeError":  # the message names the geometry types found
            assert any(t in str(err) for t in ("Point", "LineString", "MultiPoint"))


@pytest.fixture
def models_path(monkeypatch):
    monkeypatch.setenv("RSVIZ_MODELS_PATH", str(_CORPUS / "models"))


@needs_mirror
@pytest.mark.parametrize("case", BY_KIND["model"], ids=_ids(BY_KIND["model"]))
def test_broken_model_folder(case, models_path):
    from rsviz.models.api import load_model, model_problem

    assert model_problem(case.name) is not None
    err = _raises_exactly(case.expect, load_model, case.name, "cpu")
    assert str(case.path) in str(err) or case.name in str(err)
    assert model_problem("building-seg") is None  # the bundled models stay usable


@needs_mirror
def test_models_list_shows_broken_and_keeps_the_others(models_path, capsys):
    assert main(["models", "list"]) == 2
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    for c in BY_KIND["model"]:
        assert "BROKEN" in rows[c.name]
    assert "BROKEN" not in rows["building-seg"] and "buildings" in rows["building-seg"]
    assert err.count("\n") == 1 and err.startswith("error:")


@needs_mirror
@pytest.mark.parametrize("case", BY_KIND["cli"], ids=_ids(BY_KIND["cli"]))
def test_cli(case, capsys):
    if case.name == "output_folder_read_only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    args = build_parser().parse_args(list(case.argv))
    _raises_exactly(case.expect, args.func, args)
    capsys.readouterr()
    assert main(list(case.argv)) == 2
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    cli = _CORPUS / "cli"
    assert not (cli / "out.tif").exists() and not (cli / "e.json").exists()
    assert (cli / "existing.tif").read_bytes() == b"keep me"
    _no_scratch(cli)


@needs_mirror
def test_read_only_output_folder_even_as_root(monkeypatch, capsys):
    """Root may write anywhere, so the read-only check is shown with os.access saying no."""
    ro = _CORPUS / "cli" / "read_only"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real(p, mode, **kw))
    case = next(c for c in CASES if c.name == "output_folder_read_only")
    assert main(list(case.argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not writable" in err and str(ro) in err
    assert not any(ro.iterdir())


@needs_mirror
def test_folder_with_a_broken_raster_goes_on(tmp_path, capsys):
    inp, out = tmp_path / "in", tmp_path / "out" / "nested"
    inp.mkdir()
    for name in ("good.tif", "truncated_half.tif", "garbage.tif", "no_crs.tif"):
        shutil.copy(_CORPUS / "rasters" / name, inp / name)
    before = _digest(inp)
    assert main(["predict", "building-seg", str(inp), str(out), "--device", "cpu", "--tile", "64"]) == 2
    _, err = capsys.readouterr()
    assert "truncated_half.tif" in err and "garbage.tif" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "good.tif", "no_crs.png", "no_crs.tif"]
    assert _digest(inp) == before
    _no_scratch(out)
    # a second run refuses to replace the outputs unless --overwrite
    assert main(["predict", "building-seg", str(inp), str(out), "--device", "cpu", "--tile", "64"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@needs_mirror
def test_overwrite_replaces_an_existing_output(tmp_path):
    out = tmp_path / "p.tif"
    out.write_bytes(b"old")
    args = ["predict", "building-seg", str(_CORPUS / "rasters" / "good.tif"), str(out), "--device", "cpu"]
    assert main([*args, "--tile", "64"]) == 2 and out.read_bytes() == b"old"
    assert main([*args, "--tile", "64", "--overwrite"]) == 0
    with rasterio.open(out) as ds:
        assert ds.shape == (64, 64)
    _no_scratch(tmp_path)


@needs_mirror
def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, model, monkeypatch):
    from rsviz.inference import cogwriter, predict

    out = tmp_path / "p.tif"
    out.write_bytes(b"old")

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(cogwriter.StreamedCOG, "finish", broken)
    with pytest.raises(OSError, match="disk full"):
        predict(model, _CORPUS / "rasters" / "good.tif", tile=64, output=out)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tif"]


@needs_mirror
def test_evaluate_with_card_on_a_truncated_prediction(tmp_path, model, capsys):
    from rsviz.inference import predict

    pred = tmp_path / "pred.tif"
    predict(model, _CORPUS / "rasters" / "chip.tif", tile=256, output=pred, cog=False, compress="none")
    with rasterio.open(pred) as ds:
        prof = dict(driver="GTiff", width=ds.width, height=ds.height, count=1, dtype="uint8", crs=ds.crs)
        prof["transform"] = ds.transform
    gt = tmp_path / "gt.tif"
    with rasterio.open(gt, "w", **prof) as dst:
        dst.write(np.ones((1, prof["height"], prof["width"]), np.uint8))
    data = pred.read_bytes()
    pred.write_bytes(data[: len(data) // 2])
    argv = [
        "evaluate",
        "--model",
        "building-seg",
        "--pred",
        str(pred),
        "--gt",
        str(gt),
        "--out",
        str(tmp_path / "e.json"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "truncated" in err and "Traceback" not in err
    assert not (tmp_path / "e.json").exists()
    # a raster that is no prediction of the card is a clear error too
    argv[4] = str(_CORPUS / "rasters" / "two_bands.tif")
    assert main(argv) == 2
    assert "rsviz_bands" in capsys.readouterr().err


def _tif(path: Path, arr: np.ndarray, **kw) -> Path:
    from affine import Affine

    prof = dict(driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1, dtype=arr.dtype.name)
    prof.update(crs="EPSG:32645", transform=Affine(0.5, 0, 300000, 0, -0.5, 3000000), **kw)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(arr[None])
    return path


def test_evaluate_ground_truth_255_is_nodata_without_a_tag(tmp_path):
    pred = _tif(tmp_path / "pred.tif", np.ones((8, 8), np.uint8))
    gt_arr = np.zeros((8, 8), np.uint8)
    gt_arr[:4] = 1
    gt_arr[6:] = 255  # no nodata tag: still nodata, never a positive
    gt = _tif(tmp_path / "gt.tif", gt_arr)
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--task", "buildings", "--out", str(out)]) == 0
    text = out.read_text()
    vals = json.loads(text)
    flat = json.dumps(vals)
    iou = vals.get("values", vals).get("iou") if isinstance(vals.get("values", vals), dict) else None
    assert iou is not None, flat[:400]
    assert iou == pytest.approx(32 / 48)  # 255 counted as building would give 48 / 64


def test_value_range_check_against_the_card():
    from rsviz.inference.engine import check_value_range
    from rsviz.models.api import get_model_card

    rgb, s2 = get_model_card("building-seg"), get_model_card("s2-late")
    check_value_range(rgb, np.dtype("uint8"), (0, 255))
    check_value_range(rgb, np.dtype("float32"), (0, 200.5))
    check_value_range(s2, np.dtype("uint16"), (0, 12000))
    for card, dtype, rng, words in (
        (rgb, "uint16", (0, 4095), "0 to 4095"),
        (rgb, "float32", (0, 1), "scaled to 0-1"),
        (rgb, "int16", (-5, 100), "-5 to 100"),
        (s2, "float32", (0, 0.8), "multiply it by 10000"),
        (s2, "uint8", (0, 255), "8-bit"),
    ):
        with pytest.raises(errors.ModelInputError, match=words):
            check_value_range(card, np.dtype(dtype), rng)


def test_bounds_are_checked():
    from rsviz.raster import check_bounds

    check_bounds((0, 0, 1, 1))
    for b, words in (
        ((1, 0, 0, 1), "west"),
        ((0, 1, 1, 0), "south"),
        ((0, float("nan"), 1, 1), "NaN"),
        ((0, 0, 1), "four"),
    ):
        with pytest.raises(errors.ExtentError, match=words):
            check_bounds(b)  # type: ignore[arg-type]


@needs_mirror
def test_zz_no_input_changed():
    """Runs last in this file: every corpus file (all but the CLI's output folder) is byte for byte as built."""
    assert _digest(_CORPUS) == BEFORE


# --- seeded property tests (hypothesis is not installed in the project's environment) -----------------------------


@needs_mirror
def test_random_raster_headers_never_traceback_nor_misread(model, tmp_path):
    """Random size, dtype, band count, nodata, transform and CRS: a prediction, or a project error; a prediction
    only when the values are in the card's 8-bit range, so nothing is silently divided by 255."""
    import warnings

    from affine import Affine

    from rsviz.inference import predict

    rng = np.random.default_rng(2020)
    outcomes = {"ok": 0, "error": 0}
    for i in range(30):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        count = int(rng.choice([1, 2, 3, 3, 3, 4]))
        dtype = str(rng.choice(["uint8", "uint16", "int16", "float32", "float64"]))
        top = float(rng.choice([1.0, 255.0, 4095.0, 30000.0]))
        data = rng.uniform(0, top, (count, h, w))
        if dtype.startswith("int"):
            data -= float(rng.choice([0.0, 100.0]))
        data = data.astype(dtype)
        if dtype.startswith("float") and rng.random() < 0.5:
            data[:, rng.integers(0, h, 3), rng.integers(0, w, 3)] = np.nan
        nodata = None if rng.random() < 0.5 else 0
        size = float(rng.choice([0.1, 0.5, 30.0]))
        transform = Affine(size, 0, 300000, 0, -size, 3000000) * Affine.rotation(float(rng.choice([0, 0, 15])))
        crs = rng.choice([None, "EPSG:32645"])
        path = tmp_path / f"r{i}.tif"
        prof = dict(driver="GTiff", width=w, height=h, count=count, dtype=dtype, nodata=nodata, transform=transform)
        if crs is not None:
            prof["crs"] = str(crs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path, "w", **prof) as dst:
                dst.write(data)
            try:
                pred = predict(model, path, tile=32)
            except errors.RsvizError:
                outcomes["error"] += 1
                continue
        outcomes["ok"] += 1
        assert count == 3
        finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
        if nodata is not None:
            finite = finite[finite != nodata]
        if finite.size:
            assert finite.min() >= 0 and finite.max() <= 255
            assert not (data.dtype.kind == "f" and 0 < finite.max() <= 1)
        assert pred.heads["classes"].shape == (h, w)
    assert outcomes["ok"] and outcomes["error"]


def test_random_geojson_never_traceback():
    """Random geometry types and coordinates: burned when all are polygons, else a project error."""
    from affine import Affine

    from rsviz.labels import rasterize_instances

    rng = np.random.default_rng(2021)
    grid = (Affine(1e-5, 0, 85.5, 0, -1e-5, 27.6), (32, 32), "EPSG:4326")
    kinds = ["Polygon", "MultiPolygon", "Point", "LineString", "MultiLineString", "GeometryCollection", "Bogus"]

    def coords(kind: str) -> object:
        x, y = 85.5 + rng.uniform(0, 3e-4), 27.6 - rng.uniform(0, 3e-4)
        ring = [[x, y], [x + 5e-5, y], [x + 5e-5, y - 5e-5], [x, y - 5e-5], [x, y]]
        roll = rng.random()
        if roll < 0.1:
            return []
        if roll < 0.2:
            return "garbage"
        return {
            "Polygon": [ring],
            "MultiPolygon": [[ring]],
            "Point": [x, y],
            "LineString": ring,
            "MultiLineString": [ring],
        }.get(kind, [[1]])

    for _ in range(60):
        geoms = []
        for _ in range(int(rng.integers(0, 5))):
            kind = str(rng.choice(kinds, p=[0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.1]))
            geoms.append(None if rng.random() < 0.05 else {"type": kind, "coordinates": coords(kind)})
        polygonal = all(g is None or g["type"] in ("Polygon", "MultiPolygon") for g in geoms)
        if polygonal:
            assert rasterize_instances(geoms, *grid).shape == (32, 32)
        else:
            with pytest.raises(errors.GeometryTypeError):
                rasterize_instances(geoms, *grid)
