"""Runs on disk, background jobs, and the rule that nothing reads a whole scene."""

import numpy as np
import pytest
import rasterio
import rasterio.io
import rasterio.vrt
from rasterio.transform import from_origin
from rasterio.windows import Window

from rsviz.errors import BandCountError, UnknownNameError
from rsviz.workspace import JOBS, JobState, RunOptions, load_run, open_path, resolve_extent, run_model
from rsviz.workspace.jobs import JobQueue
from rsviz.workspace.metrics import evaluate_run
from tests import toy_models


@pytest.fixture(scope="module", autouse=True)
def toys(tmp_path_factory):
    toy_models.register(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def big_scene(tmp_path_factory):
    """A 4,096 x 4,096 px RGB GeoTIFF with overviews and a 0/1 building mask on its grid."""
    d = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    prof = dict(
        driver="GTiff",
        height=4096,
        width=4096,
        crs="EPSG:32633",
        transform=from_origin(500000, 5000000, 0.3, 0.3),
        tiled=True,
        blockxsize=512,
        blockysize=512,
    )
    with (
        rasterio.open(d / "image.tif", "w", count=3, dtype="uint8", **prof) as img,
        rasterio.open(d / "gt.tif", "w", count=1, dtype="uint8", **prof) as gt,
    ):
        for r in range(0, 4096, 512):
            for c in range(0, 4096, 512):
                w = Window(c, r, 512, 512)
                img.write(rng.integers(0, 255, (3, 512, 512), dtype=np.uint8), window=w)
                gt.write((rng.random((1, 512, 512)) > 0.7).astype(np.uint8), window=w)
        img.build_overviews([2, 4, 8, 16])
        gt.build_overviews([2, 4, 8, 16])
    return d


def test_nothing_reads_a_whole_scene(big_scene, monkeypatch):
    """Open, tile, run and score a 16.8 MPx scene through readers that refuse any read over a quarter of it
    (the workspace's block: 2,048 x 2,048 px)."""
    from rsviz.app.layers import run_layers, scene_layers
    from rsviz.models.api import get_model_card
    from rsviz.tiles import REGISTRY, render_tile
    from rsviz.tiles.readers import close_thread_readers
    from rsviz.workspace.scene import BLOCK

    close_thread_readers()
    bound, seen = BLOCK * BLOCK, []

    def guard(orig):
        def read(self, *args, **kw):
            if "image.tif" in str(self.name) or "gt" in str(self.name) or "prediction" in str(self.name):
                shape = kw.get("out_shape")
                win = kw.get("window")
                if shape is not None:
                    px = int(np.prod(shape[-2:]))
                elif win is not None:
                    px = int(win.width * win.height) if hasattr(win, "width") else int(np.prod([b - a for a, b in win]))
                else:
                    px = self.width * self.height
                seen.append(px)
                assert px <= bound, f"{self.name}: read of {px} px"
            return orig(self, *args, **kw)

        return read

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", guard(rasterio.io.DatasetReader.read))
    monkeypatch.setattr(rasterio.vrt.WarpedVRT, "read", guard(rasterio.vrt.WarpedVRT.read))
    s = open_path(big_scene / "image.tif", big_scene / "gt.tif")
    layers = scene_layers(s)
    for lyr in layers:
        for z, x, y in ((14, 8718, 5853), (17, 69745, 46831), (12, 2179, 1463)):
            assert render_tile(REGISTRY.get(lyr.id), z, x, y)[:4] == b"\x89PNG"
    w, so, e, n = s.bounds_4326
    ext = resolve_extent(s, (w + (e - w) * 0.4, so + (n - so) * 0.4, w + (e - w) * 0.5, so + (n - so) * 0.5))
    assert 0 < ext.pixels < bound
    run, cached = run_model("toy-pointwise", s, ext, RunOptions(tile=256, overlap=0.25, device="cpu"))
    assert not cached
    card = get_model_card("toy-pointwise")
    for lyr in run_layers(s, run, card):
        render_tile(REGISTRY.get(lyr.id), 17, 69745, 46831)
    res = evaluate_run(s, run, card)
    assert res is not None and 0 <= res["iou"] <= 1
    assert seen and max(seen) <= bound


def test_a_run_is_reopened_from_the_workspace(scene_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RSVIZ_WORKSPACE", str(tmp_path / "workspace"))  # an empty workspace of its own
    s = open_path(scene_dir / "image.tif", scene_dir / "gt.tif")
    ext = resolve_extent(s, None)
    opts = RunOptions(tile=96, overlap=0.0, device="cpu")
    r1, c1 = run_model("toy-pointwise", s, ext, opts)
    r2, c2 = run_model("toy-pointwise", s, ext, opts)
    assert (c1, c2) == (False, True) and r1.key == r2.key
    again = load_run(r1.key)  # as after a restart: from the record on disk
    assert again.path == r1.path and again.extent.key() == ext.key()
    assert np.array_equal(again.prediction.heads["classes"], r1.prediction.heads["classes"])
    assert r1.prediction.heads["classes"].shape == (96, 160)
    other, c3 = run_model("toy-pointwise", s, ext, RunOptions(tile=96, overlap=0.25, device="cpu"))
    assert not c3 and other.key != r1.key


def test_jobs_report_progress_errors_and_cancellation(scene_dir):
    s = open_path(scene_dir / "image.tif")
    ext = resolve_extent(s, None)
    q = JobQueue()
    job = q.submit("toy-constant", s, ext, RunOptions(tile=32, overlap=0.5, device="cpu"))
    assert q.submit("toy-constant", s, ext, RunOptions(tile=32, overlap=0.5, device="cpu")) is job
    q.wait(job.key)
    assert job.state is JobState.DONE and job.total > 1 and job.done == job.total and job.result is not None
    again = q.submit("toy-constant", s, ext, RunOptions(tile=32, overlap=0.5, device="cpu"))
    assert again.state is JobState.DONE and again.from_workspace and again.result is job.result
    one = open_path(scene_dir / "one_band.tif")
    bad = q.submit("toy-pointwise", one, resolve_extent(one, None), RunOptions(device="cpu"))
    q.wait(bad.key)
    assert bad.state is JobState.FAILED and "expects 3 bands" in bad.error
    c = q.submit("toy-constant", s, ext, RunOptions(tile=32, overlap=0.75, device="cpu"))
    c.cancel()
    q.wait(c.key)
    assert c.state is JobState.CANCELLED
    with pytest.raises(UnknownNameError, match="not in this workspace"):  # a cancelled run leaves nothing
        load_run(c.key)
    assert JOBS is not q


def test_band_mismatch_is_the_library_error(scene_dir):
    one = open_path(scene_dir / "one_band.tif")
    with pytest.raises(BandCountError):
        run_model("toy-pointwise", one, resolve_extent(one, None), RunOptions(device="cpu"))


def test_windowed_metrics_equal_the_in_memory_ones(scene_dir):
    from rsviz.evaluation import evaluate_sample
    from rsviz.models.api import get_model_card

    s = open_path(scene_dir / "image.tif", scene_dir / "gt.tif")
    ext = resolve_extent(s, None)
    run, _ = run_model("toy-pointwise", s, ext, RunOptions(tile=96, overlap=0.0, device="cpu"))
    card = get_model_card("toy-pointwise")
    whole = evaluate_sample(card, run.prediction.heads, s.read(ext.window))
    blocks = evaluate_run(s, run, card, block=32)  # 15 blocks over 96 x 160 px
    assert whole.values.keys() == blocks.values.keys() and "object_f1_iou50" in whole.values
    for k, v in whole.values.items():
        assert blocks.values[k] == pytest.approx(v, nan_ok=True, rel=1e-12), k
