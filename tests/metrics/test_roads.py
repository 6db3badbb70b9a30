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
def test_spacenet_vegas_rasterizer(mirror):
    """The Vegas RGB tile with its ground-truth road lines: the rasterized mask covers the roads."""
    from rsviz.labels import read_geojson_features
    from rsviz.raster import read_raster

    d = mirror / "spacenet-samples/apls/data"
    r = read_raster(d / "images/RGB-PanSharpen_AOI_2_Vegas_img0.tif")
    feats, crs = read_geojson_features(d / "gt_json_prop_wkt/ground_truth_randomized/AOI_2_Vegas_img0.geojson")
    m = rasterize_roads(feats, r.transform, r.shape, r.crs, crs)
    assert 0.02 < m.mean() < 0.3
    np.testing.assert_equal(m.dtype, np.uint8)


# --------------------------------------------------------------------------- APLS (CosmiQ's reference algorithm)
# Hand-made graphs in metres. ``spacing=1000`` keeps midpoints off edges shorter than 750 m, so the control
# points are the nodes alone unless a test says otherwise; the buffer is the SpaceNet 4 m.


def _g(*lines):
    from rsviz.metrics.roads import graph_from_polylines

    return graph_from_polylines([np.asarray(line, float) for line in lines])


def test_apls_identical_graphs_score_one_and_empty_sides_are_defined():
    from rsviz.metrics.roads import apls

    gt = _g([(0, 0), (100, 0), (200, 0)], [(100, 0), (100, 100)])  # a T junction
    r = apls(gt, gt)
    assert r.apls == pytest.approx(1.0) and r.pairs_gt > 0 and r.control_gt > 4  # nodes + midpoints every 50 m
    # an empty proposal: no path is found, APLS 0; an empty ground truth: undefined (the reference skips it)
    empty = apls(gt, _g())
    assert (empty.apls, empty.apls_gt_to_prop, empty.apls_prop_to_gt) == (0.0, 0.0, 0.0)
    assert np.isnan(apls(_g(), gt).apls)


def test_apls_inserts_control_points_into_the_nearest_edge():
    from rsviz.metrics.roads import apls

    # ground truth A(0,0)-B(100,0); the proposal P(-3,0)-Q(103,0) overshoots both ends by 3 m.
    # gt -> prop: A and B project inside the proposal's one edge (at 3 m and 103 m): it is split there, the
    #   inserted A'-B' path is 100 m = L, both ordered pairs score 0: APLS_gt->prop = 1.
    #   (Snapping to existing nodes only would put A and B on P and Q, 106 m apart.)
    # prop -> gt: P and Q lie 3 m beyond A and B (inside the 4 m buffer) and project onto the edge's ends, so
    #   they take over A and B; L = 106, L' = 100: each pair scores 6/106; APLS_prop->gt = 100/106.
    # APLS = harmonic mean = 2 * (100/106) / (1 + 100/106) = 200/206.
    r = apls(_g([(0, 0), (100, 0)]), _g([(-3, 0), (103, 0)]), spacing=1000)
    assert r.apls_gt_to_prop == pytest.approx(1.0)
    assert r.apls_prop_to_gt == pytest.approx(100 / 106)
    assert r.apls == pytest.approx(200 / 206)
    assert (r.inserted_gt, r.inserted_prop, r.pairs_gt, r.pairs_prop) == (2, 2, 2, 2)
    # 5 m off, beyond the buffer: nothing is inserted and every path is missing
    assert apls(_g([(0, 0), (100, 0)]), _g([(0, 5), (100, 5)]), spacing=1000).apls == 0.0


def test_apls_renaming_lets_one_node_carry_one_control_point():
    from rsviz.metrics.roads import apls

    gt = _g([(0, 0), (100, 0)])  # A(0,0)-B(100,0)
    # proposal: X(-3,0)-Q(100,0) (103 m) and a separate Y(-1,-2)-Z(-1,-50) (48 m); control order X, Q, Y, Z.
    prop = _g([(-3, 0), (100, 0)], [(-1, -2), (-1, -50)])
    # prop -> gt with renaming (the reference): X projects onto A's end of the edge and renames A; Q renames B;
    #   Y (2.24 m from A) also projects onto A and takes it over, so X counts as not inserted; Z is 48 m away.
    #   Pairs: X->Q (X missing) 1, Q->X (X missing) 1, Y->Z (Z missing) 1, Z->Y (Z missing) 1: APLS_prop->gt = 0,
    #   so APLS = 0.
    # gt -> prop: A lies on X-Q 3 m from X (split there), B is Q's end (renames Q): A'-B' = 100 = L, score 1.
    r = apls(gt, prop, spacing=1000)
    assert (r.apls_gt_to_prop, r.apls_prop_to_gt, r.apls) == (pytest.approx(1.0), 0.0, 0.0)
    assert r.inserted_prop == 2  # Q at B, Y at A; X lost its node to Y
    # without renaming A carries both X and Y: X->Q and Q->X score 3/103 each, Y->Z and Z->Y 1 each:
    # APLS_prop->gt = 1 - (6/103 + 2) / 4; APLS = its harmonic mean with 1.
    free = apls(gt, prop, spacing=1000, allow_renaming=False)
    p2g = 1 - (6 / 103 + 2) / 4
    assert free.apls_prop_to_gt == pytest.approx(p2g)
    assert free.apls == pytest.approx(2 * p2g / (1 + p2g))


def test_apls_missing_path_scores_one_per_pair():
    from rsviz.metrics.roads import apls

    # ground truth: A(0,0)-B(100,0)-C(200,0) with a side road B-D(100,100); nodes A, B, C, D.
    # proposal: the straight A-C road only.
    # gt -> prop: A and C rename the proposal's ends, B splits it at 100 m, D is 100 m away: not inserted.
    #   12 ordered pairs: the 6 among A, B, C match exactly (0); D->A, D->B, D->C (D not inserted) and
    #   A->D, B->D, C->D (no path to D) score 1: APLS_gt->prop = 1 - 6/12 = 0.5.
    # prop -> gt: A and C rename the ground truth's A and C; A-C is 200 m in both: APLS_prop->gt = 1.
    # APLS = 2 * 0.5 * 1 / 1.5 = 2/3.
    gt = _g([(0, 0), (100, 0), (200, 0)], [(100, 0), (100, 100)])
    r = apls(gt, _g([(0, 0), (200, 0)]), spacing=1000)
    assert (r.pairs_gt, r.apls_gt_to_prop, r.apls_prop_to_gt) == (12, pytest.approx(0.5), pytest.approx(1.0))
    assert r.apls == pytest.approx(2 / 3)


def test_apls_disconnected_proposal_with_midpoints():
    from rsviz.metrics.roads import apls

    # ground truth A(0,0)-C(200,0), 200 m: midpoints every 50 m at 50, 100, 150 (M50, M100, M150).
    # proposal: A(0,0)-P(90,0) and Q(110,0)-C(200,0), a 20 m gap; each 90 m piece gets one midpoint (45, 155).
    # gt -> prop: A, C rename the proposal's ends, M50 and M150 split the pieces, M100 is 10 m from both: not
    #   inserted. 20 ordered pairs: 4 from M100 and 4 to it score 1; A-M50 and M150-C (both ways) match (0);
    #   the 8 pairs across the gap have no path (1): APLS_gt->prop = 1 - 16/20 = 0.2.
    # prop -> gt: all 6 control points lie on the ground truth; the 12 pairs within each piece match: 1.
    # APLS = 2 * 0.2 / 1.2 = 1/3.
    r = apls(_g([(0, 0), (200, 0)]), _g([(0, 0), (90, 0)], [(110, 0), (200, 0)]))
    assert (r.control_gt, r.control_prop) == (5, 6)
    assert (r.pairs_gt, r.pairs_prop) == (20, 12)
    assert r.apls_gt_to_prop == pytest.approx(0.2) and r.apls_prop_to_gt == pytest.approx(1.0)
    assert r.apls == pytest.approx(1 / 3)


def test_apls_segment_shared_by_two_lines_is_dropped_as_the_reference_geojson_reader_does():
    from rsviz.metrics.roads import apls, graph_from_polylines

    # two lines share the 3 m segment B(100,0)-C(103,0), in opposite directions: A-B-C and C-B-E(100,100).
    lines = [np.array([(0, 0), (100, 0), (103, 0)], float), np.array([(103, 0), (100, 0), (100, 100)], float)]
    # the reference's GeoJSON reader (create_graphGeoJson, simplify_graph, create_edge_linestrings) loses
    # both copies of B-C and keeps B as a node with two edges; run on these two lines (as lon/lat in UTM 11N)
    # it gives nodes A, B, E and edges A-B, B-E. Its WKT reader keeps one copy: edges A-B, B-C, B-E.
    dropped, kept = graph_from_polylines(lines), graph_from_polylines(lines, duplicates="keep")
    assert (dropped.number_of_edges(), kept.number_of_edges()) == (2, 3)
    # gt (dropped: control points A, B, E; C is left alone and removed) against prop (kept: A, B, C, E).
    # gt -> prop: A, B, E rename the proposal's nodes; A-B 100, B-E 100, A-E 200 match: APLS_gt->prop = 1.
    # prop -> gt, inserted in order A, B, C, E: A, B, E rename the same nodes of gt; C (3 m beyond B along
    #   the missing link) projects onto B and takes it over, so B counts as not inserted. 12 ordered pairs:
    #   B->A, B->C, B->E and A->B, C->B, E->B score 1; A->E, E->A match (0); A->C, C->A, C->E, E->C have
    #   L = 103, L' = 100 (C sits on B): 3/103 each. APLS_prop->gt = 1 - (6 + 12/103) / 12 = 101/206.
    # APLS = 2 (101/206) / (1 + 101/206) = 202/307.
    r = apls(dropped, kept, spacing=1000)
    assert (r.control_gt, r.control_prop, r.pairs_gt, r.pairs_prop) == (3, 4, 6, 12)
    assert r.apls_gt_to_prop == pytest.approx(1.0) and r.apls_prop_to_gt == pytest.approx(101 / 206)
    assert r.apls == pytest.approx(202 / 307)
    assert apls(kept, kept, spacing=1000).apls == pytest.approx(1.0)
    with pytest.raises(ValueError, match="duplicates"):
        graph_from_polylines(lines, duplicates="merge")  # type: ignore[arg-type]


def test_apls_min_path_length_and_pixel_scale():
    from rsviz.metrics.roads import apls

    # proposal 3 m beyond the ground truth's ends as in the insertion test, in pixels of a 0.5 m grid:
    # scale=0.5 scores it in metres (the 4 m buffer is 8 px): the same 200/206.
    gt_px, prop_px = _g([(0, 0), (200, 0)]), _g([(-6, 0), (206, 0)])
    assert apls(gt_px, prop_px, scale=0.5, spacing=1000).apls == pytest.approx(200 / 206)
    # paths shorter than min_path_length are not scored: with 150 m nothing is left, and no pair scores 0
    r = apls(_g([(0, 0), (100, 0)]), _g([(-3, 0), (103, 0)]), spacing=1000, min_path_length=150)
    assert (r.pairs_gt, r.pairs_prop, r.apls) == (0, 0, 0.0)


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
