"""Real-data tests over the sample mirror: loaders, alignment, splits."""

import numpy as np
import pytest
import shapely
from shapely.geometry import box, shape
from shapely.ops import transform as shp_transform

from rsviz.datasets import list_loaders, scenes
from rsviz.datasets.buildings import banepa_split
from rsviz.labels import read_geojson_features

pytestmark = pytest.mark.realdata

EXPECTED = {  # dataset: (bands, target keys)
    "banepa-buildings": (3, {"buildings", "edges", "instances"}),
    "kampala-buildings": (3, {"buildings", "edges", "instances"}),
    "joplin-buildings": (3, {"buildings", "edges", "instances"}),
    "tanzania-austin-buildings": (3, {"buildings", "edges", "instances"}),
    "dubai-landcover": (3, {"classes", "edges"}),
    "chesapeake-landcover": (4, {"classes", "edges"}),
    "eth-roads": (3, {"roads", "edges"}),
    "potsdam-height": (3, {"height"}),
    "neon-trees": (3, {"height"}),
    "alexandria-height": (1, {"height", "buildings"}),
    "bigearthnet": (12, set()),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loaders_yield_aligned_samples(mirror, name):
    refs = scenes(name)
    assert refs
    for ref in [refs[0], refs[-1]]:
        s = ref.load()
        bands, keys = EXPECTED[name]
        if s.split != "predict":
            assert set(s.targets) == keys
        assert s.image.ndim == 3 and s.image.shape[0] == bands
        for k, v in s.targets.items():
            assert v.shape == s.shape, k
        assert s.valid.shape == s.shape and s.valid.dtype == bool
        assert len(s.band_names) == bands


def test_all_catalog_datasets_have_loaders():
    from rsviz.data.catalog import list_datasets

    assert set(list_datasets()) == set(list_loaders())


def test_splits_are_fixed_and_disjoint(mirror):
    for name in ("banepa-buildings", "kampala-buildings", "dubai-landcover", "eth-roads", "potsdam-height"):
        refs = scenes(name)
        ids = {}
        for r in refs:
            ids.setdefault(r.split, set()).add(r.id)
        assert {"train", "test"} <= set(ids), name
        assert not (ids["train"] & ids["test"])
    counts = {s: len(scenes("banepa-buildings", s)) for s in ("train", "val", "test", "predict")}
    assert counts == {"train": 34, "val": 6, "test": 8, "predict": 16}
    assert banepa_split(386695, 220248) == "test" and banepa_split(386690, 220241) == "train"


def test_kampala_test_cluster_is_spatially_separate(mirror):
    from rsviz.geo import parse_oam_tile_name

    test_x = [parse_oam_tile_name(r.id)[0] for r in scenes("kampala-buildings", "test")]
    train_x = [parse_oam_tile_name(r.id)[0] for r in scenes("kampala-buildings", "train")]
    assert max(test_x) + 5 < min(train_x)  # >= 5 tiles (~190 m at z20) between the clusters


@pytest.mark.parametrize("idx", [0, 7, 21])
def test_banepa_building_fraction_matches_clipped_polygon_area(mirror, idx):
    """The rasterized mask's building fraction agrees within 2 % with shapely's clipped polygon area."""
    from pyproj import Transformer

    ref = scenes("banepa-buildings", "train")[idx]
    s = ref.load()
    feats, _ = read_geojson_features(
        mirror / "banepa-buildings/data/sample/train/osm/osm_features_ac7e343eb1faacd2.geojson"
    )
    # equal-area computation in the local UTM zone (45N)
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32645", always_xy=True).transform
    w, s_, e, n = (
        s.transform.c,
        s.transform.f + s.transform.e * s.shape[0],
        s.transform.c + s.transform.a * s.shape[1],
        s.transform.f,
    )
    chip = shp_transform(to_utm, box(w, s_, e, n))
    polys = shapely.union_all([shp_transform(to_utm, shape(f["geometry"])).buffer(0) for f in feats])
    fraction = polys.intersection(chip).area / chip.area
    raster_fraction = float(s.targets["buildings"].mean())
    assert raster_fraction == pytest.approx(fraction, abs=0.02)


def test_bigearthnet_patch_resolutions_and_labels(mirror):
    s = scenes("bigearthnet")[0].load()
    assert s.extra["10m"].shape == (4, 120, 120)
    assert s.extra["20m"].shape == (6, 60, 60)
    assert s.extra["60m"].shape == (2, 20, 20)
    assert s.image.shape == (12, 120, 120)
    assert s.extra["labels19"].sum() >= 1 and s.extra["labels19"].shape == (19,)
    assert s.gsd == pytest.approx(10.0)


def test_dubai_masks_of_every_tile_folder_map_to_known_classes(mirror):
    """Tile folders differ in mask encoding (RGB vs paletted PNG); every one must map to classes."""
    seen = {}
    for r in scenes("dubai-landcover"):
        tile = r.id.split("-")[0]
        if tile not in seen:
            s = r.load()
            seen[tile] = s
            assert s.targets["classes"].shape == s.shape
            assert s.targets["classes"].max() <= 5
            counts = np.bincount(s.targets["classes"].ravel(), minlength=6)
            assert (counts > 0).sum() >= 2, (tile, counts)
    assert len(seen) == 8


@pytest.mark.parametrize("name", ["banepa-buildings", "kampala-buildings", "eth-roads"])
def test_load_image_reads_the_pixels_without_the_labels(mirror, name):
    ref = scenes(name, "val")[0]
    full, image = ref.load(), ref.load_image()
    assert full.targets and image.targets == {}
    np.testing.assert_array_equal(image.image, full.image)
    assert image.transform == full.transform and image.crs == full.crs


def test_eth_tiles_carry_the_measured_gsd(mirror):
    from rsviz.datasets.roads import ETH_GSD_M

    s = scenes("eth-roads", "test")[0].load()
    assert s.crs is None and s.gsd == ETH_GSD_M == 0.372
