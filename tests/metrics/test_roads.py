import numpy as np
import pytest
from affine import Affine

from rsviz.labels import rasterize_roads, road_class


def _line(x0, y0, x1, y1, **props):
    return {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": "LineString", "coordinates": [[x0, y0], [x1, y1]]},
    }


def test_road_class_from_osm_or_spacenet_tags():
    assert road_class({"highway": "primary_link"}) == "primary"
    assert road_class({"road_type": "5"}) == "residential"
    assert road_class({}) == "unclassified"


def test_buffer_width_follows_road_class():
    # 200 m x 200 m grid at 0.5 m in UTM 33N; a 100 m residential (half-width 3 m) and a motorway (7 m)
    t = Affine(0.5, 0, 500000, 0, -0.5, 5000200)
    res = rasterize_roads(
        [_line(500050, 5000150, 500150, 5000150, highway="residential")], t, (400, 400), "EPSG:32633", "EPSG:32633"
    )
    mot = rasterize_roads(
        [_line(500050, 5000050, 500150, 5000050, highway="motorway")], t, (400, 400), "EPSG:32633", "EPSG:32633"
    )
    assert res.sum() * 0.25 == pytest.approx(100 * 6, rel=0.03)  # length x 2 x half-width, flat caps
    assert mot.sum() * 0.25 == pytest.approx(100 * 14, rel=0.03)
    const = rasterize_roads(
        [_line(500050, 5000150, 500150, 5000150, highway="motorway")],
        t,
        (400, 400),
        "EPSG:32633",
        "EPSG:32633",
        constant_half_width_m=2.0,
    )
    assert const.sum() * 0.25 == pytest.approx(100 * 4, rel=0.03)


@pytest.mark.realdata
def test_spacenet_vegas_rasterizer_and_apls(mirror):
    """The Vegas RGB tile with its ground-truth road lines: the rasterized mask covers the roads;
    APLS of the sample proposal (pixel WKT) against the ground truth is in (0, 1)."""
    import csv

    import shapely.wkt

    from rsviz.labels import read_geojson_features
    from rsviz.metrics import apls
    from rsviz.postprocess import graph_from_lines
    from rsviz.raster import read_raster

    d = mirror / "spacenet-samples/apls/data"
    r = read_raster(d / "images/RGB-PanSharpen_AOI_2_Vegas_img0.tif")
    feats, crs = read_geojson_features(d / "gt_json_prop_wkt/ground_truth_randomized/AOI_2_Vegas_img0.geojson")
    m = rasterize_roads(feats, r.transform, r.shape, r.crs, crs)
    assert 0.02 < m.mean() < 0.3
    inv = ~r.transform
    gt_lines = [
        shapely.geometry.LineString([inv * c[:2] for c in f["geometry"]["coordinates"]])
        for f in feats
        if f["geometry"]["type"] == "LineString"
    ]
    with open(d / "gt_json_prop_wkt/proposal/sn3_sample_submission_albu.csv") as fh:
        prop = [shapely.wkt.loads(row["WKT_Pix"]) for row in csv.DictReader(fh) if row["ImageId"] == "AOI_2_Vegas_img0"]
    g_gt, g_prop = graph_from_lines(gt_lines, spacing=50), graph_from_lines(prop, spacing=50)
    # buffer 13 px = 4 m at 0.3 m GSD (APLS's usual snapping distance)
    assert apls(g_gt, g_gt, buffer=13)["apls"] == pytest.approx(1.0)
    score = apls(g_gt, g_prop, buffer=13)["apls"]
    assert 0.6 < score < 0.95  # measured 0.749 for this proposal
    np.testing.assert_equal(m.dtype, np.uint8)


def test_apls_buffer_is_the_spacenet_4_m_in_pixels_of_the_gsd():
    from rsviz.evaluation import evaluate
    from rsviz.metrics.roads import spacenet_buffer_px

    assert spacenet_buffer_px(0.372) == pytest.approx(10.75, abs=0.01) and spacenet_buffer_px(1.0) == 4.0
    for bad in (0.0, -0.3, float("nan"), None):
        with pytest.raises(ValueError, match="GSD"):
            spacenet_buffer_px(bad)
    gt = np.zeros((120, 120), np.uint8)
    gt[58:62, 5:115] = 1  # a straight road
    pred = np.roll(gt, 6, axis=0)  # found 6 px off: 3 m at 0.5 m GSD, inside SpaceNet's 4 m
    strict = evaluate(pred, gt, "roads")
    spec = evaluate(pred, gt, "roads", gsd=0.5)
    assert "apls_4m" not in strict.values and strict.params["apls_buffers_px"] == {"apls_4px": 4.0, "apls_8px": 8.0}
    assert spec.params["apls_buffers_px"]["apls_4m"] == 8.0
    assert strict["apls_4px"] == 0.0 and spec["apls_4m"] > 0.9
