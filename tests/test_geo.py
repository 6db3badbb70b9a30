import math

import pytest
from affine import Affine

from rsviz import geo


def test_zoom0_tile_is_whole_web_mercator_square():
    w, s, e, n = geo.tile_bounds_3857(0, 0, 0)
    assert (w, s, e, n) == pytest.approx(
        (-geo.WEB_MERCATOR_HALF, -geo.WEB_MERCATOR_HALF, geo.WEB_MERCATOR_HALF, geo.WEB_MERCATOR_HALF)
    )


def test_tile_bounds_lonlat_of_known_tile():
    # z1 tile (1, 0) is the north-east quadrant: lon 0..180, lat 0..85.0511
    w, s, e, n = geo.tile_bounds_lonlat(1, 0, 1)
    assert (w, s, e) == pytest.approx((0.0, 0.0, 180.0), abs=1e-9)
    assert n == pytest.approx(85.0511287798, abs=1e-6)


def test_parse_oam_tile_name_and_bad_name():
    assert geo.parse_oam_tile_name("OAM-386690-220241-19.tif") == (386690, 220241, 19)
    with pytest.raises(ValueError, match="OAM-x-y-z"):
        geo.parse_oam_tile_name("tile_1.tif")
    with pytest.raises(ValueError):
        geo.tile_bounds_3857(4, 0, 2)


def test_gsd_of_geographic_chip_matches_web_mercator_formula():
    # A zoom-19 512 px chip at latitude 27.63: 2*pi*R*cos(lat) / (256 * 2**19) / 2 per pixel
    lat = 27.634
    res_deg = 1.341104507446289e-06
    t = Affine(res_deg, 0, 85.5189, 0, -1.1881231216440136e-06, lat)
    g = geo.gsd_metres(t, "EPSG:4326", 512, 512)
    expected = 2 * math.pi * 6378137 * math.cos(math.radians(lat)) / (256 * 2**19) / 2
    assert g == pytest.approx(expected, rel=0.02)


def test_gsd_projected_and_missing_crs():
    assert geo.gsd_metres(Affine(0.5, 0, 0, 0, -0.5, 0), "EPSG:32633", 10, 10) == 0.5
    with pytest.raises(geo.CRSError, match="no CRS"):
        geo.to_crs(None)
