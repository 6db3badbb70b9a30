"""Scenes on disk: opening files with ground truth, windowed reads, the workspace record."""

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from rsviz.errors import ExtentError, GeometryTypeError, GridMismatchError, RasterReadError, UnknownNameError
from rsviz.workspace import load_scene, open_path, open_upload, resolve_extent
from rsviz.workspace import scene as scene_mod


def _tif(path, arr, nodata=None, transform=None, overviews=False):
    a = arr if arr.ndim == 3 else arr[None]
    prof = {
        "driver": "GTiff",
        "height": a.shape[1],
        "width": a.shape[2],
        "count": a.shape[0],
        "dtype": str(a.dtype),
        "crs": "EPSG:32633",
        "transform": transform or from_origin(500000, 5000000, 0.5, 0.5),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(a)
        if overviews:
            ds.build_overviews([2, 4])
    return path


def test_raster_ground_truth_and_windowed_read(scene_dir):
    s = open_path(scene_dir / "image.tif", scene_dir / "gt.tif")
    assert (s.height, s.width, s.count, s.task) == (96, 160, 3, "buildings")
    with rasterio.open(scene_dir / "gt.tif") as ds:
        gt = ds.read(1)
    w = Window(30, 10, 50, 40)
    part = s.read(w)
    assert part.image.shape == (3, 40, 50)
    assert np.array_equal(part.targets["buildings"], (gt[10:50, 30:80] > 0).astype(np.uint8))
    assert part.transform.c == pytest.approx(500000 + 30 * 0.5)
    # the same files again: the recorded scene, by the same key
    assert open_path(scene_dir / "image.tif", scene_dir / "gt.tif").key == s.key
    assert load_scene(s.key) == s


def test_geojson_ground_truth_matches_the_raster_one(scene_dir):
    r = open_path(scene_dir / "image.tif", scene_dir / "gt.tif").read()
    v = open_path(scene_dir / "image.tif", scene_dir / "buildings.geojson")
    g = v.read()
    assert set(v.targets) == {"buildings", "instances"}
    assert abs(int(g.targets["buildings"].sum()) - int(r.targets["buildings"].sum())) < 60
    assert int(g.targets["instances"].max()) == 2  # one id per rectangle


def test_points_are_not_building_footprints(scene_dir, tmp_path):
    gj = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [15.0, 45.1]}}],
    }
    p = tmp_path / "points.geojson"
    p.write_text(json.dumps(gj))
    with pytest.raises(GeometryTypeError, match="1 feature.*Point"):
        open_path(scene_dir / "image.tif", p)
    # a polygon beside the point does not let the point through as a one-pixel building
    ring = [[15.0, 45.1], [15.001, 45.1], [15.001, 45.099], [15.0, 45.1]]
    gj["features"].append({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}})
    p.write_text(json.dumps(gj))
    with pytest.raises(GeometryTypeError, match="Point"):
        open_path(scene_dir / "image.tif", p)


def test_ground_truth_on_another_grid_or_not_a_raster(scene_dir):
    with pytest.raises(GridMismatchError, match="align the grids"):
        open_path(scene_dir / "image.tif", scene_dir / "gt_shifted.tif")
    with pytest.raises(RasterReadError, match="not a raster"):
        open_path(scene_dir / "not_a_raster.tif")
    with pytest.raises(RasterReadError, match="not found"):
        open_path(scene_dir / "missing.tif")


def test_255_is_nodata_in_a_0_1_mask_and_positive_in_a_0_255_mask(scene_dir, tmp_path):
    img = np.full((3, 64, 64), 90, np.uint8)
    ip = _tif(tmp_path / "img.tif", img)
    m = np.zeros((64, 64), np.uint8)
    m[:10] = 1
    m[50:] = 255
    s = open_path(ip, _tif(tmp_path / "gt01.tif", m)).read()
    assert s.targets["buildings"][:10].all() and not s.valid[50:].any() and s.valid[:50].all()
    m2 = np.where(m == 1, 255, 0).astype(np.uint8)
    s2 = open_path(ip, _tif(tmp_path / "gt0255.tif", m2)).read()
    assert s2.targets["buildings"][:10].all() and s2.valid.all() and s2.targets["buildings"][10:].sum() == 0


def test_large_image_without_overviews_gets_a_copy_with_overviews(tmp_path, monkeypatch):
    monkeypatch.setattr(scene_mod, "OVERVIEW_SIDE", 256)
    img = (np.arange(1600 * 1700, dtype=np.uint32).reshape(1600, 1700) % 251).astype(np.uint8)
    p = _tif(tmp_path / "big.tif", np.stack([img] * 3))
    steps = []
    s = open_path(p, progress=lambda d, t: steps.append((d, t)))
    assert steps[-1][0] == steps[-1][1] == 2 * 2 + 1 and len(steps) >= 5  # 4 blocks of 1,024 px, then overviews
    assert s.image != p and s.image.parent == scene_mod.scene_dir(s.key)
    with rasterio.open(s.image) as ds:
        assert ds.overviews(1)
        assert np.array_equal(ds.read(1, window=Window(100, 200, 50, 40)), img[200:240, 100:150])
    q = _tif(tmp_path / "big_ovr.tif", np.stack([img] * 3), overviews=True)
    assert open_path(q).image == q  # has overviews: used where it is


def test_reads_above_the_bound_are_refused_with_the_bound(scene_dir, monkeypatch):
    s = open_path(scene_dir / "image.tif")
    monkeypatch.setattr(scene_mod, "MAX_READ_PX", 1000)
    with pytest.raises(ExtentError, match="1 MPx|0 MPx|holds in memory at once"):
        s.read()
    assert s.read(Window(0, 0, 20, 20)).image.shape == (3, 20, 20)


def test_upload_is_streamed_to_the_workspace(scene_dir):
    with open(scene_dir / "image.tif", "rb") as f:
        s = open_upload("image.tif", f, "gt.tif", (scene_dir / "gt.tif").read_bytes())
    assert s.task == "buildings" and s.source == "upload:image.tif" and s.image.is_file()
    with pytest.raises(RasterReadError):
        open_upload("x.tif", b"not a raster")


def test_scene_ids_are_opaque(scene_dir):
    for bad in ("../../etc/passwd", "", "ABCDEF0123456789", "0123"):
        with pytest.raises(UnknownNameError):
            load_scene(bad)
    with pytest.raises(UnknownNameError, match="not in this workspace"):
        load_scene("0123456789abcdef")


def test_extent_of_bounds(scene_dir):
    s = open_path(scene_dir / "image.tif")
    e = resolve_extent(s, None)
    assert e.pixels == 96 * 160 and e.bounds is not None
    w, so, ea, n = e.bounds
    half = resolve_extent(s, (w, so, (w + ea) / 2, n))
    assert 70 <= int(half.window.width) <= 90 and int(half.window.height) == 96


def test_a_changed_file_is_not_reopened_under_its_old_record(scene_dir, tmp_path):
    import shutil

    p = shutil.copy(scene_dir / "image.tif", tmp_path / "img.tif")
    s = open_path(p)
    with rasterio.open(p, "r+") as ds:  # rewritten in place (same name)
        ds.write(np.zeros((3, 96, 160), np.uint8))
    with pytest.raises(UnknownNameError, match="changed since it was opened"):
        load_scene(s.key)
    assert open_path(p).key != s.key  # opening it again makes a new record


def test_the_same_upload_under_another_name(scene_dir):
    data = (scene_dir / "image.tif").read_bytes()
    a, b = open_upload("a.tif", data), open_upload("b.tif", data)
    assert a.image.is_file() and b.image.is_file() and a.name != b.name


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "cannot read GeoJSON"),
        (b"[1, 2, 3]", "not a GeoJSON FeatureCollection"),
        (b'{"type": "FeatureCollection"}', "features"),
        (
            b'{"type": "FeatureCollection", "crs": {"properties": {"name": "EPSG:999999"}}, "features": []}',
            "unknown CRS",
        ),
        (
            b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Blob", "coordinates": [1]}}]}',
            "geometry",
        ),
    ],
)
def test_bad_geojson_ground_truth_says_what_is_wrong(scene_dir, tmp_path, text, match):
    from rsviz.errors import RsvizError

    p = tmp_path / "gt.geojson"
    p.write_bytes(text)
    with pytest.raises(RsvizError, match=match):
        open_path(scene_dir / "image.tif", p)


def test_a_class_raster_s_own_nodata_does_not_count(tmp_path):
    img = _tif(tmp_path / "img.tif", np.full((3, 32, 32), 80, np.uint8))
    cls = np.full((32, 32), 2, np.uint8)
    cls[:8] = 0
    cls[8:16] = 3
    s = open_path(img, _tif(tmp_path / "cls.tif", cls, nodata=0))
    part = s.read()
    assert s.task == "landcover" and not part.valid[:8].any() and part.valid[8:].all()


def test_local_paths_can_be_limited_to_folders(scene_dir, tmp_path, monkeypatch):
    from rsviz.workspace.scene import check_local_path

    monkeypatch.setenv("RSVIZ_LOCAL_PATHS", str(tmp_path))
    with pytest.raises(RasterReadError, match="outside the folders"):
        check_local_path(scene_dir / "image.tif")
    with pytest.raises(RasterReadError, match="outside the folders"):
        check_local_path(tmp_path / ".." / "elsewhere.tif")
    assert check_local_path(tmp_path / "x.tif") == (tmp_path / "x.tif").resolve()
    # a link inside an allowed folder to a file outside it is judged by its target
    (tmp_path / "link.tif").symlink_to(scene_dir / "image.tif")
    with pytest.raises(RasterReadError, match="RSVIZ_LOCAL_PATHS"):
        check_local_path(tmp_path / "link.tif")
    monkeypatch.setenv("RSVIZ_LOCAL_PATHS", "/")  # explicitly: anything this process can read
    assert check_local_path(scene_dir / "image.tif")


def test_local_paths_default_to_caches_workspace_and_home(tmp_path, monkeypatch):
    from rsviz.resources import workspace_dir
    from rsviz.workspace.scene import check_local_path, local_path_roots

    monkeypatch.delenv("RSVIZ_LOCAL_PATHS", raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("RSVIZ_DATA_DIR", str(data))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    roots = local_path_roots()
    assert data.resolve() in roots and workspace_dir().resolve() in roots and (tmp_path / "home").resolve() in roots
    assert check_local_path(data / "scene.tif") == (data / "scene.tif").resolve()
    assert check_local_path(tmp_path / "home" / "ortho.tif")
    with pytest.raises(RasterReadError, match="outside the folders"):
        check_local_path("/etc/passwd")


@pytest.mark.realdata
def test_road_centre_lines_as_ground_truth(mirror):
    """A GeoJSON of road centre lines (SpaceNet Vegas) opens as a roads scene: the lines are burned ROAD_HALF_WIDTH_M
    to each side, so the mask's area is about length x 4 m and every line vertex inside the image is road."""
    import rasterio
    from pyproj import Transformer
    from shapely.geometry import box, shape
    from shapely.ops import transform as shp_transform

    from rsviz.labels import read_geojson_features
    from rsviz.workspace.scene import ROAD_HALF_WIDTH_M

    d = mirror / "spacenet-samples/apls/data"
    img = d / "images/RGB-PanSharpen_AOI_2_Vegas_img0.tif"
    gt = d / "gt_json_prop_wkt/ground_truth_randomized/AOI_2_Vegas_img0.geojson"
    s = open_path(img, gt)
    assert s.task == "roads" and set(s.targets) == {"roads"}
    with rasterio.open(s.targets["roads"]) as ds:
        mask = ds.read(1)
        t, crs = ds.transform, ds.crs
    feats, src = read_geojson_features(gt)
    to = Transformer.from_crs(src, crs, always_xy=True).transform
    lines = [shp_transform(to, shape(f["geometry"])) for f in feats]
    inside = [(int(r), int(c)) for g in lines for x, y in g.coords for c, r in [~t * (x, y)]]
    inside = [(r, c) for r, c in inside if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]]
    assert inside and all(mask[r, c] == 1 for r, c in inside)
    frame = box(*rasterio.transform.array_bounds(*mask.shape, t))
    length_px = sum(g.intersection(frame).length for g in lines) / abs(t.a)  # Vegas' GeoTIFF is in degrees
    expected = length_px * (2 * ROAD_HALF_WIDTH_M / s.gsd)
    assert 0.7 * expected < (mask == 1).sum() < 1.3 * expected
