"""Mosaic scenes (rsviz.datasets.mosaics): grids, chip/mosaic agreement, splits, idempotent and windowed builds."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import Point, shape

from rsviz.data import catalog
from rsviz.datasets import mosaics, scenes
from rsviz.errors import DataMissingError, GridMismatchError, UnknownNameError
from rsviz.geo import WEB_MERCATOR, WGS84

EXPECTED = {  # name: (dataset, width, height, crs, chips)
    "banepa-block": ("banepa-buildings", 5632, 4096, "EPSG:3857", 64),
    "kampala-1": ("kampala-buildings", 1536, 1024, "EPSG:3857", 24),
    "kampala-2": ("kampala-buildings", 512, 512, "EPSG:3857", 4),
    "joplin-1": ("joplin-buildings", 2048, 2048, "EPSG:26915", 4),
}


def _chip(cid: str, left: float, top: float, size: int = 4, res: float = 1.0) -> mosaics._Chip:
    t = Affine(res, 0, left, 0, -res, top)
    return mosaics._Chip(
        cid,
        "test",
        Path(cid),
        cid,
        t,
        WEB_MERCATOR,
        (size, size),
        (left, top - size * res, left + size * res, top),
        False,
    )


def test_groups_join_edge_neighbours_only():
    a, b, c, d = _chip("a", 0, 4), _chip("b", 4, 4), _chip("c", 8, 0), _chip("d", 20, 4)
    groups = mosaics._groups([d, c, b, a])
    # a-b share an edge; c only touches b at a corner; d is apart
    assert [[ch.id for ch in g] for g in groups] == [["a", "b"], ["c"], ["d"]]


def test_grid_places_chips_and_refuses_fractional_offsets():
    a, b = _chip("a", 0, 4), _chip("b", 4, 0)
    t, w, h, wins = mosaics._grid("x", [a, b], WEB_MERCATOR)
    assert (w, h) == (8, 8) and t == Affine(1, 0, 0, 0, -1, 4)
    assert wins == (Window(0, 0, 4, 4), Window(4, 4, 4, 4))
    with pytest.raises(GridMismatchError, match="fraction of a pixel"):
        mosaics._grid("x", [a, _chip("c", 4.5, 4)], WEB_MERCATOR)
    with pytest.raises(GridMismatchError, match="pixel size"):
        mosaics._grid("x", [a, _chip("c", 4, 4, res=0.5, size=8)], WEB_MERCATOR)


def test_no_data_no_mosaics(tmp_path, monkeypatch):
    monkeypatch.setenv(catalog.ENV_VAR, str(tmp_path / "empty"))
    assert mosaics.mosaic_names() == []
    with pytest.raises(DataMissingError, match="rsviz data fetch banepa-buildings"):
        mosaics.build_mosaic("banepa-block")


# --- real data ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(mirror):
    """Every mosaic, built once into the test session's cache."""
    return {m.name: m for m in mosaics.build_all()}


@pytest.mark.realdata
def test_names_sizes_and_crs(built):
    assert mosaics.mosaic_names() == list(EXPECTED)
    for name, (dataset, w, h, crs, n) in EXPECTED.items():
        m = built[name]
        assert m.dataset == dataset and m.task == "buildings" and m.band_names == ("red", "green", "blue")
        assert [c.name for c in m.classes] == ["background", "building"]
        assert f"{n} chips" in m.title
        with rasterio.open(m.image) as ds:
            assert (ds.width, ds.height, ds.count) == (w, h, 3) and ds.crs == CRS.from_user_input(crs)
            assert ds.overviews(1) == list(mosaics.OVERVIEW_FACTORS)  # the map's zoomed-out views
            grid = (ds.transform, ds.crs, ds.shape)
        for key, dtype in (("buildings", "uint8"), ("instances", "int32")):
            with rasterio.open(m.targets[key]) as ds:
                assert (ds.transform, ds.crs, ds.shape) == grid and ds.dtypes[0] == dtype
                assert ds.overviews(1)
        from rio_cogeo.cogeo import cog_validate

        assert cog_validate(str(m.targets["buildings"]), quiet=True)[0]
        assert cog_validate(str(m.targets["instances"]), quiet=True)[0]


def _windows(m: mosaics.Mosaic) -> dict[str, tuple[str, Window]]:
    feats = json.loads(m.splits.read_text())["features"]
    return {f["properties"]["id"]: (f["properties"]["split"], Window(*f["properties"]["window"])) for f in feats}


def _refs(m: mosaics.Mosaic):
    ids = set(_windows(m))
    return [r for r in scenes(m.dataset) if r.id in ids]  # Kampala: zoom 20, the loader's default


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(EXPECTED))
def test_chip_windows_equal_the_chip_loaders(built, name):
    """Pixels, valid mask and both targets of every chip, read from the mosaic, are the loader's exactly."""
    m = built[name]
    wins = _windows(m)
    refs = _refs(m)
    assert len(refs) == len(wins) == EXPECTED[name][4]
    with (
        rasterio.open(m.image) as im,
        rasterio.open(m.targets["buildings"]) as bd,
        rasterio.open(m.targets["instances"]) as ins,
    ):
        for ref in refs:
            split, win = wins[ref.id]
            s = ref.load()
            assert split == s.split
            assert (win.height, win.width) == s.shape
            np.testing.assert_array_equal(im.read(window=win), s.image, err_msg=ref.id)
            np.testing.assert_array_equal(im.read_masks(1, window=win) > 0, s.valid, err_msg=ref.id)
            b, i = bd.read(1, window=win), ins.read(1, window=win)
            if s.split == "predict":  # unlabelled: nodata
                assert (b == mosaics.BUILDINGS_NODATA).all() and (i == mosaics.INSTANCES_NODATA).all()
            else:
                np.testing.assert_array_equal(b, s.targets["buildings"], err_msg=ref.id)
                np.testing.assert_array_equal(i, s.targets["instances"], err_msg=ref.id)
            # the chip's window is in the right place on the mosaic grid (Banepa: chip in EPSG:4326, mosaic 3857)
            west, south, east, north = rasterio.warp.transform_bounds(im.crs, s.crs, *im.window_bounds(win))
            cw, cs, ce, cn = rasterio.transform.array_bounds(*s.shape, s.transform)
            px = abs(s.transform.a)
            assert max(abs(west - cw), abs(east - ce), abs(south - cs), abs(north - cn)) < 1e-3 * px, ref.id


@pytest.mark.realdata
def test_gaps_are_nodata_and_masked(built):
    m = built["banepa-block"]
    covered = np.zeros((4096, 5632), bool)
    for _, w in _windows(m).values():
        covered[w.toslices()] = True
    assert covered.mean() == pytest.approx(64 / 88)
    with rasterio.open(m.image) as im, rasterio.open(m.targets["buildings"]) as bd:
        assert not (im.read_masks(1)[~covered] > 0).any()
        b = bd.read(1)
        assert (b[~covered] == mosaics.BUILDINGS_NODATA).all()
        assert set(np.unique(b[covered])) == {0, 1, mosaics.BUILDINGS_NODATA}  # 255: the predict chips


@pytest.mark.realdata
def test_footprint_across_a_chip_border_is_one_instance(built):
    """A footprint that lies on two labelled chips has one id, on both chips' windows."""
    m = built["banepa-block"]
    fp = mosaics._Footprints(
        catalog.local_path(m.dataset, "data/sample/train/osm/osm_features_ac7e343eb1faacd2.geojson")
    )
    feats = json.loads(m.splits.read_text())["features"]
    chips = [
        (shape(f["geometry"]), Window(*f["properties"]["window"]))
        for f in feats
        if f["properties"]["split"] != "predict"
    ]
    with rasterio.open(m.targets["instances"]) as ins:
        inst = ins.read(1)
    crossing = 0
    for k, g in enumerate(fp.geoms):
        poly = shape(g)
        on = [w for outline, w in chips if outline.intersection(poly).area > 0.2 * poly.area]
        if len(on) < 2:
            continue
        crossing += 1
        for w in on:  # the footprint's id (its loader id) is burned on each chip it covers
            assert ((inst[w.toslices()] == k + 1).sum()) > 0
    assert crossing >= 5
    # where footprint pixels meet across a vertical chip border, the ids agree
    for col in range(512, 3072, 512):
        left, right = inst[:, col - 1], inst[:, col]
        both = (left > 0) & (right > 0)
        assert both.any() and (left[both] == right[both]).mean() > 0.95


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(EXPECTED))
def test_splits_geojson_one_polygon_per_chip(built, name):
    m = built[name]
    obj = json.loads(m.splits.read_text())
    refs = {r.id: r for r in _refs(m)}
    assert len(obj["features"]) == EXPECTED[name][4] == len(refs)
    with rasterio.open(m.image) as im:
        for f in obj["features"]:
            p = f["properties"]
            assert p["dataset"] == m.dataset and p["split"] == refs[p["id"]].split
            poly = shape(f["geometry"])
            assert poly.geom_type == "Polygon" and poly.is_valid
            # the chip's centre on the mosaic grid, in lon/lat, is inside its outline
            col, row, w, h = p["window"]
            cx, cy = im.xy(row + h // 2, col + w // 2)
            lon, lat = rasterio.warp.transform(im.crs, WGS84, [cx], [cy])
            assert poly.contains(Point(lon[0], lat[0]))
            assert -180 <= poly.bounds[0] <= 180 and -90 <= poly.bounds[1] <= 90  # EPSG:4326 degrees
    if name == "banepa-block":
        counts = {}
        for f in obj["features"]:
            counts[f["properties"]["split"]] = counts.get(f["properties"]["split"], 0) + 1
        assert counts == {"train": 34, "val": 6, "test": 8, "predict": 16}


@pytest.mark.realdata
def test_second_build_is_a_no_op(built):
    m = built["banepa-block"]
    files = [m.image, Path(str(m.image) + ".ovr"), *m.targets.values(), m.splits]
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
    t = time.perf_counter()
    again = mosaics.build_mosaic("banepa-block")
    assert time.perf_counter() - t < 1.0
    assert again == m
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files} == before


@pytest.mark.realdata
def test_unknown_name_lists_valid_names(built):
    with pytest.raises(UnknownNameError, match="banepa-block.*joplin-1"):
        mosaics.build_mosaic("banepa")


def _linked_copy(mirror: Path, dataset: str, dst: Path) -> Path:
    """``dst/<dataset>`` mirroring the real files as symlinks (cheap), for tests that change one input."""
    for p in (mirror / dataset).rglob("*"):
        if p.is_file():
            q = dst / p.relative_to(mirror)
            q.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(p, q)
    return dst


@pytest.mark.realdata
def test_changed_input_rebuilds(mirror, tmp_path, monkeypatch):
    data = _linked_copy(mirror, "kampala-buildings", tmp_path / "data")
    monkeypatch.setenv(catalog.ENV_VAR, str(data))
    monkeypatch.setenv("RSVIZ_CACHE_DIR", str(tmp_path / "cache"))
    first = mosaics.build_mosaic("kampala-2")
    manifest = first.image.parent / "manifest.json"
    m0 = manifest.stat().st_mtime_ns
    assert mosaics.build_mosaic("kampala-2") == first and manifest.stat().st_mtime_ns == m0  # reused
    # drop every footprint: the labels file changes, so the mosaic is rebuilt with no buildings
    labels = data / "kampala-buildings" / mosaics.KAMPALA_FOOTPRINTS
    obj = json.loads(labels.read_text())
    labels.unlink()
    labels.write_text(json.dumps({**obj, "features": []}))
    again = mosaics.build_mosaic("kampala-2")
    assert manifest.stat().st_mtime_ns != m0
    with rasterio.open(again.targets["buildings"]) as ds:
        assert set(np.unique(ds.read(1))) == {0}
    assert not list((tmp_path / "cache" / "mosaics").glob(".*"))  # no temporary or old folders left
    # force rebuilds although nothing changed
    m1 = manifest.stat().st_mtime_ns
    mosaics.build_mosaic("kampala-2", force=True)
    assert manifest.stat().st_mtime_ns != m1


@pytest.mark.realdata
def test_targets_are_written_by_windows(mirror, tmp_path, monkeypatch):
    """No whole-mosaic array: every write and every burn is one chip window (or a 512 px fill block)."""
    monkeypatch.setenv("RSVIZ_CACHE_DIR", str(tmp_path / "cache"))
    writes, burns = [], []
    real_write = rasterio.io.DatasetWriter.write

    def write(self, arr, indexes=None, window=None, **kw):
        writes.append((self.name, np.asarray(arr).shape, window))
        return real_write(self, arr, indexes, window=window, **kw)

    real_rasterize = mosaics.rasterize

    def burn(shapes, out_shape, **kw):
        burns.append(out_shape)
        return real_rasterize(shapes, out_shape=out_shape, **kw)

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", write)
    monkeypatch.setattr(mosaics, "rasterize", burn)
    progress = []
    m = mosaics.build_mosaic("kampala-1", progress=lambda d, t: progress.append((d, t)))
    target_writes = [w for w in writes if w[0].endswith(".tmp.tif")]
    assert target_writes and all(w[2] is not None for w in target_writes)
    assert max(np.prod(w[1]) for w in target_writes) <= 512 * 512 < 1536 * 1024
    assert burns and max(np.prod(b) for b in burns) == 256 * 256  # one zoom-20 tile each
    assert progress[-1] == (progress[-1][1], progress[-1][1]) and len(progress) >= 24
    with rasterio.open(m.targets["buildings"]) as ds:
        assert (ds.read(1) != mosaics.BUILDINGS_NODATA).all()  # the cluster is fully covered


@pytest.mark.realdata
def test_cli_lists_and_builds(mirror, tmp_path, monkeypatch, capsys):
    from rsviz.cli import main

    monkeypatch.setenv("RSVIZ_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["data", "mosaics"]) == 0
    out = capsys.readouterr().out
    assert "banepa-block" in out and "5632x4096" in out and "joplin-1" in out
    assert main(["data", "mosaics", "--build", "kampala-2"]) == 0
    assert (tmp_path / "cache" / "mosaics" / "kampala-2" / "manifest.json").exists()
    capsys.readouterr()
    assert main(["data", "mosaics", "kampala-2"]) == 0
    assert "yes" in capsys.readouterr().out
    assert main(["data", "mosaics", "--build", "nope"]) == 2
    assert "valid names: banepa-block" in capsys.readouterr().err
