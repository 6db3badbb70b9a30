"""The engine's parts on their own: sliding window over toy predictors, the Sink protocol, the threaded COG sink."""

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from rsviz.inference import InferenceCancelled, engine
from rsviz.inference import predict as _predict
from rsviz.inference.sinks import MemorySink, Sink, SinkResult
from rsviz.inference.sliding_window import WindowGeometry, sliding_window_inference
from rsviz.models.api import load_model
from tests import toy_models


@pytest.fixture(scope="module")
def pointwise(tmp_path_factory):
    toy_models.register(tmp_path_factory.mktemp("models"))
    return load_model("toy-pointwise", toy_models.TEST_DEVICE)


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(3, h, w), dtype=np.uint8)


@pytest.mark.parametrize(
    ("overlap", "blend", "panel"), [(0.25, "gaussian", 100), (0.5, "cosine", 70), (0.0, "constant", 32)]
)
def test_identity_and_1x1_conv_predictors_reproduce_the_input_across_panel_seams(overlap, blend, panel):
    img = _image(75, 211, seed=1)
    geom = WindowGeometry.of(75, 211, 32, overlap, panel)
    assert len(geom.panels) > 2
    ident = sliding_window_inference(
        img, lambda b: b.float(), 3, 32, overlap, blend=blend, panel_cols=panel, batch_size=3
    )
    np.testing.assert_allclose(ident.numpy(), img.astype(np.float32), atol=1e-4)
    assert (np.rint(ident.numpy()) == img).all()
    conv = torch.nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        ref = conv(torch.from_numpy(img[None].astype(np.float32)))[0]
        out = sliding_window_inference(img, lambda b: conv(b.float()), 2, 32, overlap, blend=blend, panel_cols=panel)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-4)


class RecordingSink:
    """A toy sink that counts how often each pixel is written and what was called."""

    def __init__(self, h, w):
        self.count = np.zeros((h, w), int)
        self.probs = np.zeros((h, w), np.float32)
        self.calls = []

    def channels_out(self, window):
        return None

    def write(self, window, heads, valid):
        r, c, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        self.count[r : r + h, c : c + w] += 1
        self.probs[r : r + h, c : c + w] = heads["probs"][0]
        assert valid.shape == (h, w)
        self.calls.append("write")

    def close(self):
        self.calls.append("close")
        return SinkResult()

    def abort(self):
        self.calls.append("abort")


def _run_with(monkeypatch, pw, img, sink, **kw):
    monkeypatch.setattr(engine, "MemorySink", lambda h, w, layout: sink)
    return _predict(pw, img, tile=64, precision="fp32", **kw)


def test_recording_sink_gets_every_pixel_exactly_once_and_abort_on_cancel(pointwise, monkeypatch):
    img = _image(150, 517, seed=2)
    whole = _predict(pointwise, img, tile=64, precision="fp32")
    monkeypatch.setattr(engine, "PANEL_COLS", 130)
    monkeypatch.setattr(engine, "FINALIZE_COLS", 50)
    sink = RecordingSink(150, 517)
    assert isinstance(sink, Sink) and isinstance(MemorySink(1, 1, [("seg", 1)]), Sink)
    _run_with(monkeypatch, pointwise, img, sink, overlap=0.25)
    assert (sink.count == 1).all()
    np.testing.assert_allclose(sink.probs, whole.heads["probs"][0], atol=1e-6)
    assert sink.calls[-2:] == ["close", "abort"] or sink.calls[-1] == "close"
    cancelled = RecordingSink(150, 517)
    calls = iter(range(10**6))
    with pytest.raises(InferenceCancelled):
        _run_with(monkeypatch, pointwise, img, cancelled, cancel=lambda: next(calls) > 12)
    assert cancelled.calls[-1] == "abort" and "close" not in cancelled.calls
    assert (cancelled.count <= 1).all()


def test_threaded_cog_sink_equals_memory_sink_and_cancel_leaves_nothing(pointwise, monkeypatch, tmp_path):
    from rio_cogeo.cogeo import cog_validate

    img = _image(300, 700, seed=3)
    transform = rasterio.transform.from_origin(500000, 5000000, 0.5, 0.5)
    src = tmp_path / "in.tif"
    with rasterio.open(
        src,
        "w",
        driver="GTiff",
        height=300,
        width=700,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=transform,
        tiled=True,
        blockxsize=128,
        blockysize=128,
    ) as dst:
        dst.write(img)
    monkeypatch.setattr(engine, "PANEL_COLS", 200)
    monkeypatch.setattr(engine, "FINALIZE_COLS", 64)  # many small blocks through the writer queue
    mem = _predict(pointwise, src, tile=64, precision="fp32")
    out = tmp_path / "out" / "o.tif"
    out.parent.mkdir()
    _predict(pointwise, src, tile=64, precision="fp32", output=out)
    assert cog_validate(str(out), quiet=True)[0]
    with rasterio.open(out) as ds:
        a = ds.read()
        assert ds.overviews(1)
        ov = ds.read(1, out_shape=(ds.height // 2, ds.width // 2))
    np.testing.assert_array_equal(a[0], mem.heads["classes"])
    np.testing.assert_array_equal(a[1], np.rint(mem.heads["probs"][0] * 255).astype(np.uint8))
    np.testing.assert_array_equal(a[3], np.rint(mem.heads["edge"] * 255).astype(np.uint8))
    np.testing.assert_array_equal(ov, mem.heads["classes"][::2, ::2][: ov.shape[0], : ov.shape[1]])
    with rasterio.open(out) as ds:
        assert ds.read(window=Window(0, 0, 10, 10)).shape == (a.shape[0], 10, 10)
    cancelled = tmp_path / "cancel"
    cancelled.mkdir()
    calls = iter(range(10**6))
    with pytest.raises(InferenceCancelled):
        _predict(pointwise, src, tile=64, output=cancelled / "c.tif", cancel=lambda: next(calls) > 20)
    assert list(cancelled.iterdir()) == []
