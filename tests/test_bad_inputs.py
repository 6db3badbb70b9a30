"""Bad input never costs data, a traceback or a silently wrong answer (issue #20, CLI and library).

Every case of the seeded corpus (``tests/data/bad_inputs/data.py``, built from real sample files) is
fed to the library or the command line; each must end in exactly its expected :mod:`rsviz.errors`
class (the CLI: exit status 2 and one ``error:`` line, no traceback), or succeed when it is merely odd.
No input file may change and no partial output may remain.

The property-based cases at the end (``hypothesis``, derandomised so CI sees the same examples every run) draw
raster headers and GeoJSON documents.
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


def _workspace_entries() -> set[str]:
    from rsviz.resources import workspace_dir

    ws = workspace_dir()
    return {
        str(p.relative_to(ws)) for sub in ("uploads", "scenes") if (ws / sub).is_dir() for p in (ws / sub).iterdir()
    }


UPLOAD_CASES = [c for c in BY_KIND["read"] + BY_KIND["predict"] if c.expect == "RasterReadError" and c.path.is_file()]


@needs_mirror
@pytest.mark.parametrize("case", UPLOAD_CASES, ids=_ids(UPLOAD_CASES))
def test_refused_upload_leaves_nothing_and_names_the_users_file(case):
    """An upload that cannot be opened: the error names the uploaded file (never the server's copy) and nothing
    of it stays in the workspace (no upload folder, no half-made scene)."""
    from rsviz.resources import workspace_dir
    from rsviz.workspace import open_upload

    before = _workspace_entries()
    with open(case.path, "rb") as f:
        err = _raises_exactly(case.expect, open_upload, f"my-{case.path.name}", f)
    assert f"my-{case.path.name}" in str(err)
    assert str(workspace_dir()) not in str(err)
    assert _workspace_entries() == before


# lines alone are road centre lines to the app's opener (a roads scene); everything else wrong stays wrong
FOOTPRINT_CASES = [c for c in BY_KIND["footprints"] if c.expect != "ok" and c.name != "lines_as_footprints"]


@needs_mirror
def test_lines_open_as_road_ground_truth():
    from rsviz.workspace import open_upload

    case = next(c for c in BY_KIND["footprints"] if c.name == "lines_as_footprints")
    with open(_CORPUS / "rasters" / "chip.tif", "rb") as img, open(case.path, "rb") as gt:
        s = open_upload("chip.tif", img, case.path.name, gt)
    assert s.task == "roads" and set(s.targets) == {"roads"}
    # the Metrics page's path: a road model's run on that scene is scored against the burned lines, APLS included
    from rsviz.models.api import get_model_card
    from rsviz.workspace import RunOptions, resolve_extent, run_model
    from rsviz.workspace.metrics import evaluate_run

    run, _ = run_model("roads-pplinknet", s, resolve_extent(s, None), RunOptions(tile=64, overlap=0.25, tta=False))
    res = evaluate_run(s, run, get_model_card("roads-pplinknet"))
    assert res is not None and "apls_4m" in res.values
    (tn, fp), (fn, tp) = res.confusion
    assert fn + tp > 0, "the burned lines are road pixels of the ground truth"
    assert tn + fp + fn + tp == s.height * s.width


@needs_mirror
@pytest.mark.parametrize("case", FOOTPRINT_CASES, ids=_ids(FOOTPRINT_CASES))
def test_refused_ground_truth_upload_leaves_nothing(case):
    from rsviz.workspace import open_upload

    before = _workspace_entries()
    with open(_CORPUS / "rasters" / "good.tif", "rb") as img, open(case.path, "rb") as gt:
        err = _raises_exactly(case.expect, open_upload, "good.tif", img, case.path.name, gt)
    assert case.path.name in str(err) or case.expect == "GeometryTypeError"
    assert _workspace_entries() == before


@needs_mirror
def test_a_refused_local_path_leaves_no_scene_folder(tmp_path):
    """Local path: ground truth on another grid is refused after the image was inspected; no scene folder stays."""
    from rsviz.workspace import open_path

    before = _workspace_entries()
    other = tmp_path / "gt.tif"
    with rasterio.open(_CORPUS / "rasters" / "good.tif") as ds:
        prof = {**ds.profile, "count": 1, "width": ds.width + 3}
    with rasterio.open(other, "w", **prof) as dst:
        dst.write(np.zeros((1, prof["height"], prof["width"]), np.uint8))
    _raises_exactly("GridMismatchError", open_path, _CORPUS / "rasters" / "good.tif", other)
    assert _workspace_entries() == before


def test_stale_upload_folders_are_swept(monkeypatch):
    """Temporary upload folders of a process killed mid-upload go at the next upload; fresh ones (another
    session's upload in progress) stay."""
    import time

    from rsviz.resources import workspace_dir
    from rsviz.workspace import scene as scene_mod

    up = workspace_dir() / "uploads"
    up.mkdir(parents=True, exist_ok=True)
    old, fresh = up / ".upload-old", up / ".upload-fresh"
    for d in (old, fresh):
        d.mkdir(exist_ok=True)
        (d / "part.tif").write_bytes(b"x")
    t = time.time() - scene_mod.STALE_UPLOAD_S - 60
    os.utime(old, (t, t))
    with pytest.raises(errors.RasterReadError):
        scene_mod.open_upload("x.tif", b"not a raster")
    assert not old.exists() and fresh.exists()
    shutil.rmtree(fresh)


@needs_mirror
def test_zz_no_input_changed():
    """Runs last in this file: every corpus file (all but the CLI's output folder) is byte for byte as built."""
    assert _digest(_CORPUS) == BEFORE


# --- property-based cases (hypothesis): raster headers and GeoJSON --------------------------------------------------

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

#: Reproducible in CI: a fixed sequence of examples, no deadline (a prediction takes tens of milliseconds).
PROPERTY = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

HEADERS = st.fixed_dictionaries(
    {
        "h": st.integers(1, 48),
        "w": st.integers(1, 48),
        "count": st.sampled_from([1, 2, 3, 4]),
        "dtype": st.sampled_from(["uint8", "uint16", "int16", "float32", "float64"]),
        "top": st.sampled_from([1.0, 255.0, 4095.0, 30000.0]),
        "shift": st.sampled_from([0.0, 100.0]),
        "nan": st.booleans(),
        "nodata": st.sampled_from([None, 0, 255, -9999]),
        "size": st.sampled_from([0.1, 0.5, 30.0]),
        "rotation": st.sampled_from([0.0, 15.0]),
        "crs": st.sampled_from([None, "EPSG:32645", "EPSG:4326"]),
        "seed": st.integers(0, 2**16),
    }
)
GOOD_HEADER = dict(
    h=40, w=40, count=3, dtype="uint8", top=255.0, shift=0.0, nan=False, nodata=None, size=0.5, rotation=0.0,
    crs="EPSG:32645", seed=1,
)  # fmt: skip


def _write_header(path: Path, hd: dict) -> np.ndarray:
    import warnings

    from affine import Affine

    rng = np.random.default_rng(hd["seed"])
    data = rng.uniform(0, hd["top"], (hd["count"], hd["h"], hd["w"]))
    if hd["dtype"].startswith("int"):
        data -= hd["shift"]
    data = data.astype(hd["dtype"])
    if hd["nan"] and hd["dtype"].startswith("float"):
        data[:, rng.integers(0, hd["h"], 3), rng.integers(0, hd["w"], 3)] = np.nan
    nodata = hd["nodata"]
    if nodata is not None and not np.can_cast(np.min_scalar_type(nodata), hd["dtype"]):
        nodata = None  # GDAL refuses a nodata value the dtype cannot hold; that is a writer's error, not ours
    x0, y0 = (85.3, 27.7) if hd["crs"] == "EPSG:4326" else (300000.0, 3000000.0)
    size = hd["size"] * (1e-5 if hd["crs"] == "EPSG:4326" else 1.0)
    transform = Affine(size, 0, x0, 0, -size, y0) * Affine.rotation(hd["rotation"])
    prof = dict(
        driver="GTiff", width=hd["w"], height=hd["h"], count=hd["count"], dtype=hd["dtype"], nodata=nodata,
        transform=transform,
    )  # fmt: skip
    if hd["crs"] is not None:
        prof["crs"] = hd["crs"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning for the headers without CRS
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(data)
    hd["nodata_written"] = nodata
    return data


@needs_mirror
@PROPERTY
@given(hd=HEADERS)
@example(hd=GOOD_HEADER)
def test_property_raster_headers_never_traceback_nor_misread(model, hd):
    """Any size, dtype, band count, nodata, transform and CRS: a prediction, or a project error; a prediction only
    when the values are in the card's 8-bit range, so nothing is silently divided by 255. The app's opener
    (:func:`rsviz.workspace.open_path`) gives a scene or a project error on the same file."""
    import warnings

    from rsviz.inference import predict
    from rsviz.workspace import open_path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.tif"
        data = _write_header(path, hd)
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                pred = predict(model, path, tile=32)
            except errors.RsvizError as exc:
                assert str(exc)
                pred = None
            try:
                scene = open_path(path)
                assert (scene.height, scene.width, scene.count) == (hd["h"], hd["w"], hd["count"])
            except errors.RsvizError as exc:
                assert str(exc)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "the input changed"
    if pred is None:
        return
    assert hd["count"] == 3
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data.ravel()
    if hd["nodata_written"] is not None:
        finite = finite[finite != hd["nodata_written"]]
    if finite.size:
        assert finite.min() >= 0 and finite.max() <= 255
        assert not (data.dtype.kind == "f" and 0 < finite.max() <= 1)
    assert pred.heads["classes"].shape == (hd["h"], hd["w"])


_X, _Y = 85.5, 27.6
_coord = st.tuples(st.floats(_X, _X + 3e-4), st.floats(_Y - 3e-4, _Y)).map(list)
_ring = st.lists(_coord, min_size=3, max_size=6).map(lambda r: [*r, r[0]])
GEOMETRIES = st.one_of(
    st.builds(lambda r: {"type": "Polygon", "coordinates": [r]}, _ring),
    st.builds(lambda rs: {"type": "MultiPolygon", "coordinates": [[r] for r in rs]}, st.lists(_ring, max_size=3)),
    st.builds(lambda c: {"type": "Point", "coordinates": c}, _coord),
    st.builds(lambda cs: {"type": "LineString", "coordinates": cs}, st.lists(_coord, min_size=2, max_size=4)),
    st.builds(lambda cs: {"type": "MultiPoint", "coordinates": cs}, st.lists(_coord, max_size=3)),
    st.builds(lambda t: {"type": t, "coordinates": [[1]]}, st.sampled_from(["Bogus", "Polygon", "LineString"])),
    st.builds(lambda: {"type": "Polygon", "coordinates": []}),
    st.none(),
)
FEATURES = st.lists(
    st.builds(lambda g, p: {"type": "Feature", "geometry": g, "properties": p}, GEOMETRIES, st.dictionaries(
        st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=2)),
    max_size=5,
)  # fmt: skip
DOCUMENTS = st.one_of(
    st.builds(lambda fs: {"type": "FeatureCollection", "features": fs}, FEATURES),
    st.builds(
        lambda fs, n: {"type": "FeatureCollection", "features": fs, "crs": {"properties": {"name": n}}},
        FEATURES,
        st.sampled_from(["EPSG:4326", "urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:32645", "not-a-crs", ""]),
    ),
    st.builds(lambda fs: fs, FEATURES),  # a bare array of features
    st.just({"type": "FeatureCollection"}),  # no features
    st.just({"type": "Feature", "geometry": None}),
    st.text(max_size=20),  # any JSON text
)


@PROPERTY
@given(doc=DOCUMENTS)
def test_property_geojson_never_traceback(doc):
    """Any GeoJSON-ish document: burned as footprints when every geometry is a polygon, a
    :class:`~rsviz.errors.GeometryTypeError` when some are points or lines, any other project error for a
    document that is not a FeatureCollection or has an unknown CRS; never another exception."""
    from affine import Affine

    from rsviz.labels import rasterize_instances, read_geojson_features

    grid = (Affine(1e-5, 0, _X, 0, -1e-5, _Y), (32, 32), rasterio.crs.CRS.from_epsg(4326))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "labels.geojson"
        path.write_text(json.dumps(doc))
        try:
            feats, crs = read_geojson_features(path)
        except errors.RsvizError as exc:
            assert not (isinstance(doc, dict) and isinstance(doc.get("features"), list) and "crs" not in doc)
            assert str(exc)
            return
    geoms = [f["geometry"] for f in feats]
    kinds = {g.get("type") for g in geoms if isinstance(g, dict)}
    try:
        inst = rasterize_instances(geoms, *grid, crs)
    except errors.GeometryTypeError as exc:
        assert kinds - {"Polygon", "MultiPolygon"}, f"polygons refused: {exc}"
        return
    except errors.RsvizError as exc:  # e.g. coordinates that are not a ring
        assert str(exc)
        return
    assert kinds <= {"Polygon", "MultiPolygon"}, f"{kinds} burned as footprints"
    assert inst.shape == (32, 32) and inst.dtype == np.int32
