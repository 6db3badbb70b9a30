import pytest

from rsviz.app.workspace import RunCache, resolve_extent, scene_from_upload
from rsviz.errors import GridMismatchError, RasterReadError


def test_upload_with_ground_truth_on_another_grid_is_refused(scene_dir):
    with pytest.raises(GridMismatchError, match="align the grids"):
        scene_from_upload(
            "image.tif", (scene_dir / "image.tif").read_bytes(), "gt.tif", (scene_dir / "gt_shifted.tif").read_bytes()
        )


def test_upload_with_raster_and_geojson_ground_truth(scene_dir, tmp_path):
    s = scene_from_upload(
        "image.tif",
        (scene_dir / "image.tif").read_bytes(),
        "gt.tif",
        (scene_dir / "gt.tif").read_bytes(),
        workdir=tmp_path,
    )
    assert s.task == "buildings" and s.sample.targets["buildings"].sum() > 0
    g = scene_from_upload(
        "image.tif",
        (scene_dir / "image.tif").read_bytes(),
        "b.geojson",
        (scene_dir / "buildings.geojson").read_bytes(),
        workdir=tmp_path,
    )
    assert abs(int(g.sample.targets["buildings"].sum()) - int(s.sample.targets["buildings"].sum())) < 60
    with pytest.raises(RasterReadError):
        scene_from_upload("x.tif", b"not a raster", workdir=tmp_path)


def test_extent_and_cache(scene_dir, tmp_path):
    s = scene_from_upload("image.tif", (scene_dir / "image.tif").read_bytes(), workdir=tmp_path)
    e = resolve_extent(s, None)
    assert e.pixels == 96 * 160 and e.bounds is not None
    cache = RunCache(max_items=1)
    assert cache.get("x") is None and len(cache) == 0
