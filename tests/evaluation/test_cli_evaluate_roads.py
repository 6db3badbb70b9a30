"""``rsviz evaluate --task roads`` with road vectors: GeoJSON LineStrings and SpaceNet WKT CSV, APLS in metres."""

import json

import numpy as np
import pytest
import rasterio
from affine import Affine

from rsviz.cli import main

#: A 100 m x 100 m tile at 0.5 m in UTM 33N (EPSG:32633).
_T = Affine(0.5, 0, 500000, 0, -0.5, 5000100)


def _image(path, data=None):
    arr = np.zeros((1, 200, 200), np.uint8) if data is None else data[None]
    with rasterio.open(
        path, "w", driver="GTiff", width=200, height=200, count=1, dtype="uint8", crs="EPSG:32633", transform=_T
    ) as ds:
        ds.write(arr)
    return path


def _geojson(path, *geoms):
    feats = [{"type": "Feature", "properties": {}, "geometry": g} for g in geoms]
    obj = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "EPSG:32633"}},
        "features": feats,
    }
    path.write_text(json.dumps(obj))
    return path


def _line(*xy):
    return {"type": "LineString", "coordinates": [list(p) for p in xy]}


def _run(tmp_path, gt, pred, *extra):
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--task", "roads", "--gt", str(gt), "--pred", str(pred), "--out", str(out), *extra])
    return code, (json.loads(out.read_text()) if code == 0 else None)


def test_geojson_truth_against_a_pixel_wkt_csv(tmp_path):
    # ground truth A-B, 30 m along y = 5000050 (no midpoints: shorter than 0.75 x 50 m); the proposal is the
    # same road 3 m longer at each end, in pixels of the image: (14, 100)-(86, 100) = x 500007 .. 500043.
    # gt -> prop: A and B split the proposal's edge, A'-B' = 30 m = L: 1. prop -> gt: its ends take over A and
    # B, L = 36 m, L' = 30 m: 1 - 6/36 = 5/6. APLS = 2 (5/6) / (1 + 5/6) = 10/11.
    gt = _geojson(tmp_path / "gt.geojson", _line((500010, 5000050), (500040, 5000050)))
    csv = tmp_path / "prop.csv"
    csv.write_text('ImageId,WKT_Pix\ntile,"LINESTRING (14 100, 86 100)"\nother,LINESTRING EMPTY\n')
    code, doc = _run(tmp_path, gt, csv, "--image", str(_image(tmp_path / "tile.tif")))
    assert code == 0
    v = doc["values"]
    assert v["apls_gt_to_prop_4m"] == pytest.approx(1.0) and v["apls_prop_to_gt_4m"] == pytest.approx(5 / 6)
    assert v["apls_4m"] == pytest.approx(10 / 11)
    assert doc["params"]["metric_crs"] == "EPSG:32633" and doc["params"]["apls_buffer_m"] == 4.0
    # an image whose only rows are LINESTRING EMPTY: an empty proposal scores 0
    code, doc = _run(tmp_path, gt, csv, "--image", str(tmp_path / "tile.tif"), "--image-id", "other")
    assert code == 0 and doc["values"]["apls_4m"] == 0.0


def test_vector_truth_against_a_mask_uses_its_skeleton_graph(tmp_path):
    gt = _geojson(tmp_path / "gt.geojson", _line((500005, 5000050), (500095, 5000050)))
    mask = np.zeros((200, 200), np.uint8)
    mask[98:103, 10:190] = 1  # the same road, 2.5 m wide, on the image grid
    code, doc = _run(tmp_path, gt, _image(tmp_path / "pred.tif", mask))
    assert code == 0
    assert 0.9 < doc["values"]["apls_4m"] <= 1.0
    mask[98:103, 95:105] = 0  # a 5 m break: every path across it is missing
    code, broken = _run(tmp_path, gt, _image(tmp_path / "pred.tif", mask))
    assert code == 0 and broken["values"]["apls_4m"] < doc["values"]["apls_4m"] - 0.2


def test_bad_road_vectors_give_one_error_line(tmp_path, capsys):
    img = str(_image(tmp_path / "tile.tif"))
    gt = _geojson(tmp_path / "gt.geojson", _line((500010, 5000050), (500040, 5000050)))
    poly = _geojson(tmp_path / "poly.geojson", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]})
    csv = tmp_path / "prop.csv"
    csv.write_text('ImageId,WKT_Pix\ntile,"LINESTRING (14 100, 86 100)"\n')
    nocol = tmp_path / "nocol.csv"
    nocol.write_text('ImageId,WKT\ntile,"LINESTRING (14 100, 86 100)"\n')
    broken = tmp_path / "broken.csv"
    broken.write_text('ImageId,WKT_Pix\ntile,"LINESTRING (14 100, 86"\n')
    cases = [
        ((poly, csv, "--image", img), ["poly.geojson", "feature 0", "Polygon", "LineString"]),
        ((gt, csv), ["prop.csv", "pixel coordinates", "--image"]),
        ((gt, nocol, "--image", img), ["nocol.csv", "ImageId and WKT_Pix"]),
        ((gt, broken, "--image", img), ["broken.csv line 2", "WKT_Pix"]),
    ]
    for (g, p, *extra), words in cases:
        code, _ = _run(tmp_path, g, p, *extra)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
        assert all(w in err[0] for w in words), err[0]
    code, _ = _run(tmp_path, gt, csv, "--image", img, "--model", "roads-pplinknet")
    assert code == 2 and "--task roads" in capsys.readouterr().err


@pytest.mark.realdata
def test_spacenet_vegas_sample_through_evaluate(mirror, tmp_path):
    """CosmiQ's README example 1 (SpaceNet 3 Vegas ``AOI_2_Vegas_img0``: ground-truth GeoJSON, albu's WKT
    submission in pixels of the RGB tile), scored through ``rsviz evaluate``.

    CosmiQ's ``apls.py`` itself, run on these files as its README says (in its own environment: osgeo read
    through rasterio, the image linked under the name ``gather_files`` builds, ``--prop_wkt_file`` and a
    default speed for the travel times it does not use), gives 0.7292 (0.7773 ground truth onto proposal,
    0.6867 the other way); the issue's target is 0.729 +- 0.005. The shipped
    ``output__max_snap=4m_hole=4m.txt`` says 0.736 (0.797 / 0.684); we have not traced which version of the
    code wrote it. We give 0.7291 (0.7771 / 0.6867):
    the graphs are the reference's node for node; its GeoJSON reader drops the 2.5 m link that features 7
    and 20 both contain (``graph_from_polylines(duplicates="drop")``), without which APLS was 0.823; the
    1e-4 left is its great-circle edge lengths against our UTM ones (issue #26)."""
    d = mirror / "spacenet-samples/apls/data"
    code, doc = _run(
        tmp_path,
        d / "gt_json_prop_wkt/ground_truth_randomized/AOI_2_Vegas_img0.geojson",
        d / "gt_json_prop_wkt/proposal/sn3_sample_submission_albu.csv",
        "--image",
        str(d / "images/RGB-PanSharpen_AOI_2_Vegas_img0.tif"),
    )
    assert code == 0
    v = doc["values"]
    assert doc["params"]["metric_crs"] == "EPSG:32611"  # UTM 11N, as the reference projects
    assert v["apls_4m"] == pytest.approx(0.729, abs=0.005)
    assert v["apls_gt_to_prop_4m"] == pytest.approx(0.777, abs=0.005)
    assert v["apls_prop_to_gt_4m"] == pytest.approx(0.687, abs=0.005)
    assert (v["control_points_gt"], v["control_points_prop"]) == (132, 148)  # the reference's counts


@pytest.mark.realdata
def test_spacenet_vegas_sample_through_the_library(mirror):
    """The same sample through :func:`read_road_lines` and :func:`evaluate_road_lines`: the GeoJSON ground
    truth is read with ``duplicates="drop"`` and the WKT proposal with ``"keep"``, as the reference's two
    readers do; keeping the shared segment of the ground truth instead gives the 0.823 we had before."""
    from rsviz.evaluation.road_vectors import evaluate_road_lines
    from rsviz.metrics.roads import apls, graph_from_polylines
    from rsviz.postprocess.road_graph import read_road_lines

    d = mirror / "spacenet-samples/apls/data"
    with rasterio.open(d / "images/RGB-PanSharpen_AOI_2_Vegas_img0.tif") as ds:
        transform, crs = ds.transform, ds.crs
    gt = read_road_lines(d / "gt_json_prop_wkt/ground_truth_randomized/AOI_2_Vegas_img0.geojson")
    prop = read_road_lines(
        d / "gt_json_prop_wkt/proposal/sn3_sample_submission_albu.csv", transform=transform, crs=crs, metric=gt.crs
    )
    assert (gt.duplicates, prop.duplicates) == ("drop", "keep")
    v = evaluate_road_lines(gt, prop).values
    assert v["apls_4m"] == pytest.approx(0.729, abs=0.005)
    assert v["apls_gt_to_prop_4m"] == pytest.approx(0.777, abs=0.005)
    assert v["apls_prop_to_gt_4m"] == pytest.approx(0.687, abs=0.005)
    before = apls(
        graph_from_polylines(gt.lines, duplicates="keep"), graph_from_polylines(prop.lines, duplicates="keep")
    )
    assert before.apls == pytest.approx(0.823, abs=0.005)
