"""Predictions made elsewhere as runs (rsviz.workspace.external), on a real Banepa chip.

The "elsewhere" pipeline is the bundled building model itself, its class ids written out as a plain GeoTIFF:
so the imported run must score what the model's own run scores, on the native grid exactly and after a round
trip through another CRS within 0.01 IoU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.realdata
CHIP = "OAM-386695-220246-19"


@pytest.fixture(scope="module")
def model_run(mirror):
    """The building-seg run over the chip (no TTA) and its evaluation."""
    from rsviz.datasets import scenes
    from rsviz.workspace import RunOptions, open_sample, resolve_extent, run_model
    from rsviz.workspace.metrics import evaluate_run

    scene = open_sample(next(r for r in scenes("banepa-buildings") if r.id == CHIP))
    run, _ = run_model("building-seg", scene, resolve_extent(scene, None), RunOptions(tta=False, device="cpu"))
    return scene, run, evaluate_run(scene, run, run.card)


def _write(path, data, scene, **kw):
    prof = {
        "driver": "GTiff",
        "height": data.shape[-2],
        "width": data.shape[-1],
        "count": 1 if data.ndim == 2 else data.shape[0],
        "dtype": str(data.dtype),
        "crs": scene.crs,
        "transform": scene.transform,
    } | kw
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(data if data.ndim == 3 else data[None])
    return path


def _classes(run):
    with rasterio.open(run.path) as ds:
        return ds.read(1)


def test_a_class_raster_on_the_scene_grid_scores_like_the_model_run(model_run, tmp_path):
    from rsviz.workspace import runs_of
    from rsviz.workspace.external import import_prediction
    from rsviz.workspace.metrics import evaluate_run

    scene, run, res = model_run
    src = _write(tmp_path / "theirs.tif", _classes(run), scene, nodata=255)
    ext = import_prediction(scene, src, name="their model")
    assert ext.warnings == () and not ext.from_workspace
    r = ext.run
    assert r.model == "external:their model" and r.external and not run.external
    assert r.card.task == "buildings" and [c.name for c in r.card.classes] == ["background", "building"]
    np.testing.assert_array_equal(_classes(r), _classes(run))
    got = evaluate_run(scene, r, r.card)
    assert got.values["iou"] == pytest.approx(res.values["iou"], abs=1e-12)
    assert got.values["f1"] == pytest.approx(res.values["f1"], abs=1e-12)
    assert {x.key for x in runs_of(scene.key)} >= {r.key, run.key}
    again = import_prediction(scene, src, name="their model")  # same file, same table: reopened, not rewritten
    assert again.from_workspace and again.run.key == r.key


def test_an_extent_of_the_scene_gets_the_window_of_the_prediction(model_run, tmp_path):
    from rasterio.windows import Window

    from rsviz.errors import ModelInputError
    from rsviz.workspace import Extent
    from rsviz.workspace.external import import_prediction

    scene, run, _ = model_run
    cls = _classes(run)
    src = _write(tmp_path / "theirs.tif", cls, scene, nodata=255)
    ext = Extent(Window(100, 200, 300, 150), None)
    r = import_prediction(scene, src, extent=ext).run
    assert r.extent.key() == "100,200,300,150"
    np.testing.assert_array_equal(_classes(r), cls[200:350, 100:400])
    with rasterio.open(r.path) as ds:
        assert ds.transform == scene.transform * rasterio.Affine.translation(100, 200)
    holes = cls.copy()
    holes[200:350, 100:400] = 255
    with pytest.raises(ModelInputError, match="holds no pixel inside this extent"):
        import_prediction(scene, _write(tmp_path / "holes.tif", holes, scene, nodata=255), extent=ext)


def test_a_prediction_in_another_crs_is_warped_back_within_001_iou(model_run, tmp_path):
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    from rsviz.workspace.external import import_prediction
    from rsviz.workspace.metrics import evaluate_run

    scene, run, res = model_run
    cls = _classes(run)
    dst_crs = "EPSG:32645"  # UTM 45N, Banepa's zone; the chip itself is in EPSG:4326
    west, south, east, north = rasterio.transform.array_bounds(scene.height, scene.width, scene.transform)
    t, w, h = calculate_default_transform(scene.crs, dst_crs, scene.width, scene.height, west, south, east, north)
    out = np.full((h, w), 255, np.uint8)
    reproject(
        cls,
        out,
        src_transform=scene.transform,
        src_crs=scene.crs,
        dst_transform=t,
        dst_crs=dst_crs,
        resampling=Resampling.nearest,
        src_nodata=255,
        dst_nodata=255,
    )
    src = _write(tmp_path / "utm.tif", out, scene, crs=dst_crs, transform=t, nodata=255)
    ext = import_prediction(scene, src)
    assert len(ext.warnings) == 1 and "EPSG:32645" in ext.warnings[0] and "nearest neighbour" in ext.warnings[0]
    r = ext.run
    assert (r.extent.window.width, r.extent.window.height) == (scene.width, scene.height)
    got = evaluate_run(scene, r, r.card)
    assert abs(got.values["iou"] - res.values["iou"]) < 0.01
    assert got.values["iou"] != res.values["iou"]  # it did go through another grid


def test_probabilities_and_0_255_masks_are_read_as_class_ids(model_run, tmp_path):
    from rsviz.inference.export import read_prediction
    from rsviz.workspace.external import class_table_from_model, import_prediction

    scene, run, _ = model_run
    p = read_prediction(run.path).heads["probs"][0].astype(np.float32)
    ext = import_prediction(scene, _write(tmp_path / "prob.tif", p, scene), class_table_from_model("building-seg"))
    ours, theirs = _classes(run), _classes(ext.run)
    assert (ours == theirs).mean() > 0.999
    mask = np.where(_classes(run) == 1, 255, 0).astype(np.uint8)
    ext = import_prediction(scene, _write(tmp_path / "mask.tif", mask, scene))
    assert "0/255 mask" in ext.warnings[0]
    np.testing.assert_array_equal(_classes(ext.run), np.where(ours == 255, 0, ours))


def _runs_folder_entries():
    from rsviz.workspace.runs import _runs_root

    return set(p.name for p in _runs_root().iterdir())


def test_bad_predictions_are_refused_naming_what_to_fix_and_leave_nothing(model_run, tmp_path):
    from rsviz.errors import GridMismatchError, ModelInputError
    from rsviz.workspace.external import class_table_from_json, import_prediction

    scene, run, _ = model_run
    before = _runs_folder_entries()
    cls = _classes(run).copy()
    cls[:4, :4] = 7
    with pytest.raises(
        ModelInputError, match=r"class ids \[7\] are not in the class table \(0 background, 1 building\)"
    ):
        import_prediction(scene, _write(tmp_path / "seven.tif", cls, scene, nodata=255))
    with pytest.raises(ModelInputError, match=r"probabilities must lie in \[0, 1\]; this raster holds 0 to 3"):
        import_prediction(
            scene, _write(tmp_path / "p.tif", np.linspace(0, 3, 512 * 512, dtype=np.float32).reshape(512, 512), scene)
        )
    with pytest.raises(ModelInputError, match="3 integer bands"):
        import_prediction(scene, _write(tmp_path / "rgb.tif", np.zeros((3, 512, 512), np.uint8), scene))
    with pytest.raises(GridMismatchError, match="not on the scene's grid"):
        import_prediction(
            scene,
            _write(
                tmp_path / "nocrs.tif",
                np.zeros((100, 80), np.uint8),
                scene,
                crs=None,
                transform=rasterio.Affine.identity(),
            ),
        )
    far = rasterio.transform.from_origin(10.0, 50.0, 1e-5, 1e-5)  # Germany, not Banepa
    with pytest.raises(GridMismatchError, match="does not overlap"):
        import_prediction(scene, _write(tmp_path / "far.tif", np.zeros((64, 64), np.uint8), scene, transform=far))
    assert _runs_folder_entries() == before
    with pytest.raises(ModelInputError, match=r"classes\[1\]\.color must be \[r, g, b\]"):
        class_table_from_json(json.dumps({"classes": [{"id": 0, "name": "a"}, {"id": 1, "name": "b", "color": "red"}]}))
    with pytest.raises(ModelInputError, match='needs "id" and "name"'):
        class_table_from_json('{"classes": [{"name": "a"}]}')
    with pytest.raises(ModelInputError, match="is not JSON"):
        class_table_from_json(b"\x89PNG")
    with pytest.raises(ModelInputError, match="classes 0 \\(background\\) and 1"):
        class_table_from_json('{"task": "roads", "classes": [{"id": 0, "name": "bg"}, {"id": 2, "name": "road"}]}')


def test_class_tables_from_json_and_from_the_rasters_colour_table(model_run, tmp_path):
    from rsviz.workspace.external import class_table_from_colormap, class_table_from_json, import_prediction

    scene, run, _ = model_run
    t = class_table_from_json('{"classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "building"}]}')
    assert t.task == "buildings" and t.binary and t.classes[1].color == (230, 25, 75)
    lc = class_table_from_json(
        '{"classes": [{"id": 0, "name": "water", "color": [0,0,255]}, {"id": 3, "name": "tree", "color": [0,128,0]},'
        ' {"id": 5, "name": "road", "color": [128,128,128]}], "ignore_index": 0}'
    )
    assert lc.task == "landcover" and lc.ignore_index == 0 and [c.id for c in lc.classes] == [0, 3, 5]
    src = _write(tmp_path / "cmap.tif", _classes(run), scene, nodata=255)
    with rasterio.open(src, "r+") as ds:
        ds.write_colormap(1, {0: (20, 20, 20, 255), 1: (255, 0, 0, 255)})
        ds.update_tags(class_names="ground,house")
    ct = class_table_from_colormap(src)
    assert ct is not None and [(c.id, c.name, c.color) for c in ct.classes] == [
        (0, "ground", (20, 20, 20)),
        (1, "house", (255, 0, 0)),
    ]
    r = import_prediction(scene, src).run  # no table given: the colour table is used
    assert [c.name for c in r.card.classes] == ["ground", "house"]
    assert class_table_from_colormap(_write(tmp_path / "plain.tif", _classes(run), scene)) is None


def test_two_external_runs_go_into_one_report(model_run, tmp_path):
    from scipy import ndimage

    from rsviz.report import build_report, report_html
    from rsviz.workspace.external import import_prediction

    scene, run, _ = model_run
    cls = _classes(run)
    a = import_prediction(scene, _write(tmp_path / "a.tif", cls, scene, nodata=255), name="A").run
    eroded = np.where(cls == 255, 255, ndimage.binary_erosion(cls == 1, iterations=2)).astype(np.uint8)
    b = import_prediction(scene, _write(tmp_path / "b.tif", eroded, scene, nodata=255), name="B").run
    rep = build_report(scene, [a, b])
    html = report_html(rep)
    assert "external:A" in html and "external:B" in html and "source_sha256" in html and "asked: tile" not in html
    ia, ib = (s.result.values["iou"] for s in rep.runs)
    assert ia != ib and rep.difference["iou"][0] == pytest.approx(ib - ia)
