"""GeoJSON export of predictions: building instances, class regions, ground areas in m²."""

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from rsviz.datasets.base import ClassInfo
from rsviz.datasets.buildings import BUILDING_CLASSES
from rsviz.errors import CRSError
from rsviz.inference import Prediction
from rsviz.inference.export import prediction_polygons_geojson
from rsviz.models.card import HeadSpec, InputSpec, ModelCard


def _building_card(**extra):
    return ModelCard(
        "toy-b",
        "toy",
        "buildings",
        "toy",
        "none",
        heads={"seg": HeadSpec("binary"), "edge": HeadSpec("binary")},
        input=InputSpec(bands=["red", "green", "blue"]),
        classes=list(BUILDING_CLASSES),
        extra=extra,
    )


def _two_touching_buildings(transform, crs):
    prob = np.zeros((40, 60), np.float32)
    prob[5:25, 5:55] = 0.9  # one blob: two buildings sharing a wall at column 30
    edge = np.zeros_like(prob)
    edge[5:25, 29:31] = 0.9
    heads = {"probs": prob[None], "edge": edge, "classes": (prob >= 0.5).astype(np.uint8)}
    return Prediction(heads, transform, crs, np.ones(prob.shape, bool), Window(0, 0, 60, 40), "toy-b")


def test_buildings_export_one_polygon_per_instance_with_ground_area():
    utm = _two_touching_buildings(Affine(0.5, 0, 500000, 0, -0.5, 5000000), CRS.from_epsg(32633))
    fc = prediction_polygons_geojson(utm, _building_card())
    props = sorted((f["properties"] for f in fc["features"]), key=lambda p: p["instance_id"])
    assert len(props) == 2 and {p["class"] for p in props} == {"building"}
    assert sum(p["area_m2"] for p in props) == pytest.approx(20 * 50 * 0.25, rel=0.01)  # 0.5 m pixels
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    assert 14 < lon < 16 and 45 < lat < 46  # EPSG:4326 output (UTM 33N)
    # the same footprints on a geographic grid at the equator: the areas are still square metres
    geo = _two_touching_buildings(Affine(1e-5, 0, 10.0, 0, -1e-5, 0.0002), CRS.from_epsg(4326))
    area = sum(f["properties"]["area_m2"] for f in prediction_polygons_geojson(geo, _building_card())["features"])
    assert area == pytest.approx(1000 * 1.11319 * 1.10574, rel=0.01)
    # components instead of the edge split: one merged polygon
    merged = prediction_polygons_geojson(utm, _building_card(instance_postprocess={"method": "components"}))
    assert len(merged["features"]) == 1


def test_multiclass_export_one_polygon_per_region_and_no_crs_is_refused():
    classes = [ClassInfo(0, "land", (0, 0, 0)), ClassInfo(1, "road", (255, 0, 0)), ClassInfo(2, "water", (0, 0, 255))]
    card = ModelCard(
        "toy-m",
        "toy",
        "landcover",
        "toy",
        "none",
        heads={"seg": HeadSpec("multiclass", 3)},
        input=InputSpec(bands=["red", "green", "blue"]),
        classes=classes,
    )
    cls = np.zeros((20, 20), np.uint8)
    cls[:, 8:10] = 1
    cls[15:, 15:] = 2
    cls[0:2, 0:2] = 255  # nodata
    pred = Prediction(
        {"classes": cls},
        Affine(1, 0, 500000, 0, -1, 5000000),
        CRS.from_epsg(32633),
        cls != 255,
        Window(0, 0, 20, 20),
        "toy-m",
    )
    feats = prediction_polygons_geojson(pred, card)["features"]
    by_class = {}
    for f in feats:
        by_class.setdefault(f["properties"]["class"], []).append(f["properties"]["area_m2"])
    assert sorted(by_class) == ["land", "road", "water"] and len(by_class["land"]) == 2
    assert by_class["water"] == [pytest.approx(25.0, rel=0.01)] and by_class["road"] == [pytest.approx(40.0, rel=0.01)]
    pred.crs = None
    with pytest.raises(CRSError, match="CRS"):
        prediction_polygons_geojson(pred, card)
