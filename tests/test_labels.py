import numpy as np
import pytest

from rsviz.labels import colour_mask_to_ids, edges_from_mask, rasterize_polygons, read_geojson_features, threshold_mask
from rsviz.raster import read_raster


def test_rasterized_geojson_equals_fixture_mask(scene_dir):
    img = read_raster(scene_dir / "image.tif")
    gt = read_raster(scene_dir / "gt.tif").array[0]
    feats, crs = read_geojson_features(scene_dir / "buildings.geojson")
    m = rasterize_polygons([f["geometry"] for f in feats], img.transform, img.shape, img.crs, crs)
    # the polygons went through EPSG:4326 and back: at most the boundary pixels may differ
    assert m.dtype == np.uint8
    assert (m != gt).sum() <= 0.02 * gt.sum()


def test_rasterize_requires_crs():
    from affine import Affine

    from rsviz.errors import CRSError

    with pytest.raises(CRSError):
        rasterize_polygons([{"type": "Point", "coordinates": [0, 0]}], Affine.identity(), (4, 4), None)


def test_edges_width_and_position():
    m = np.zeros((20, 20), np.uint8)
    m[5:15, 5:15] = 1
    e1 = edges_from_mask(m, width=1)
    assert e1.sum() == 36  # inner boundary ring of a 10x10 square
    assert e1[5, 5:15].all() and not e1[6:14, 6:14].any()
    e3 = edges_from_mask(m, width=3)
    assert e3[4, 6] == 1 and e3[6, 6] == 1 and e3[7, 7] == 0
    with pytest.raises(ValueError):
        edges_from_mask(m, width=2)


def test_colour_mask_to_ids_nearest_colour():
    rgb = np.zeros((3, 2, 2), np.uint8)
    rgb[:, 0, 0] = (60, 16, 152)
    rgb[:, 0, 1] = (254, 221, 58)
    rgb[:, 1, 0] = (155, 155, 155)
    rgb[:, 1, 1] = (62, 18, 150)  # jpeg-ish noise around class 0
    ids = colour_mask_to_ids(rgb, [(60, 16, 152), (254, 221, 58), (155, 155, 155)])
    np.testing.assert_array_equal(ids, [[0, 1], [2, 0]])


def test_threshold_mask():
    np.testing.assert_array_equal(threshold_mask(np.array([[0, 127, 128, 255]], np.uint8)), [[0, 0, 1, 1]])


def test_contact_mask_marks_where_two_footprints_meet_only():
    from rsviz.labels import contact_mask

    inst = np.zeros((20, 30), np.int32)
    inst[2:8, 2:8] = 1
    inst[2:8, 8:14] = 2  # shares a wall with 1
    inst[12:18, 2:8] = 3  # 4 px below 1: beyond a 5 px window
    inst[2:8, 24:28] = 7  # alone
    c = contact_mask(inst, 5)
    assert c[4, 7] and c[4, 8]  # both sides of the shared wall
    assert c[:, :6].sum() == 0 and c[:, 11:].sum() == 0  # outer walls, the far building, the lone one
    assert c.sum() == 10 * 4  # rows 0-9 (2 px beyond the wall's ends), cols 6-9
    assert contact_mask(inst, 11)[9, 4]  # an 11 px window reaches across the 4 px gap to 3
    with pytest.raises(ValueError, match="odd"):
        contact_mask(inst, 4)


def test_pixels_of_no_class_colour_can_be_unmatched_instead_of_the_nearest_class():
    """Black pixels of a Dubai-style mask are no class: with ``unmatched`` they get that id, not building's."""
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (60, 16, 152)  # building
    rgb[0, 1] = (62, 18, 150)  # building, off by 2 (PNG/JPEG artefacts)
    colours = [(60, 16, 152), (132, 41, 246), (155, 155, 155)]
    assert colour_mask_to_ids(rgb, colours)[1, 0] == 0  # nearest: building
    ids = colour_mask_to_ids(rgb, colours, unmatched=2)
    assert ids[0, 0] == 0 and ids[0, 1] == 0 and (ids.ravel()[2:] == 2).all()
    assert colour_mask_to_ids(rgb, colours, unmatched=255, max_distance=1)[0, 1] == 255
