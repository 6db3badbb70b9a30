"""``rsviz batch`` on a LocalCluster of two one-thread workers over real Banepa chips (CI-sized).

One batch of 13 scenes (12 real chips with their OSM footprints, one corrupt copy) on which a worker is
restarted mid-run: every real scene completes, the corrupt one is recorded as failed, the pooled figures equal
a sequential evaluation of the same predictions, no half-written file has a final name, and a rerun resumes
from the manifest without predicting again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import rasterio

pytestmark = pytest.mark.timeout(240)

CHIPS = "banepa-buildings/data/sample/train/oam"
OSM = "banepa-buildings/data/sample/train/osm/osm_features_ac7e343eb1faacd2.geojson"
MODEL = "building-seg"


def _options():
    from rsviz.batch import BatchOptions

    return BatchOptions(tile=256)


OPTIONS = _options()


def _crop(src: Path, dst: Path, side: int = 256) -> Path:
    """The central ``side`` px of a real chip, georeferenced (a small real scene: CI time goes to the machinery)."""
    from rasterio.windows import Window

    with rasterio.open(src) as ds:
        w = Window((ds.width - side) // 2, (ds.height - side) // 2, side, side)
        prof = ds.profile | {"width": side, "height": side, "transform": ds.window_transform(w)}
        prof.pop("blockxsize", None), prof.pop("blockysize", None), prof.pop("tiled", None)
        with rasterio.open(dst, "w", **prof) as out:
            out.write(ds.read(window=w))
    return dst


@pytest.fixture(scope="module")
def scenes(mirror, tmp_path_factory):
    """12 real scenes (256 px crops of Banepa chips) and one truncated copy (a corrupt file), all scored against the
    OSM footprints."""
    from rsviz.batch import resolve_scenes

    chips = sorted((mirror / CHIPS).glob("OAM-38669[01]-*.tif"))[:12]
    assert len(chips) == 12
    folder = tmp_path_factory.mktemp("scenes")
    crops = [_crop(c, folder / c.name) for c in chips]
    bad = folder / "OAM-corrupt-chip.tif"
    data = chips[0].read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    return resolve_scenes([*map(str, crops), str(bad)], gt=mirror / OSM)


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        with Client(c) as client:
            yield client


def test_batch_on_dask_survives_a_worker_restart_and_pools_like_sequential(scenes, cluster, tmp_path):
    from rsviz.batch import run_batch
    from rsviz.evaluation import evaluate_rasters, pool, to_eval_json
    from rsviz.models.api import get_model_card

    out = tmp_path / "batch"
    restarted: dict[str, list[str]] = {}

    def on_scene(outcome):
        if restarted:
            return
        busy = {w: ks for w, ks in cluster.processing().items() if ks}
        if busy:  # a worker in the middle of a scene: kill it (its nanny starts a new one)
            w = sorted(busy)[0]
            restarted[w] = [str(k) for k in busy[w]]
            cluster.restart_workers([w], timeout=60)

    s = run_batch(MODEL, scenes, out, options=OPTIONS, scheduler=cluster, on_scene=on_scene)
    assert restarted, "no worker was busy to restart"
    assert s.workers == 2
    names = [sp.name for sp in scenes]
    assert [o.name for o in s.outcomes] == names
    bad = s.outcomes[-1]
    assert bad.status == "failed" and "OAM-corrupt-chip.tif" in bad.error  # the message names the file
    assert [o.name for o in s.failed] == ["OAM-corrupt-chip"]
    assert len(s.done) == 12 and all(o.counts is not None for o in s.done)
    assert {o.worker for o in s.done} != {"local"}

    # no partial file under a final name: every prediction is a complete COG, no scratch is left
    assert sorted(p.name for p in out.glob("*.tif")) == sorted(f"{n}.tif" for n in names[:-1])
    for p in out.glob("*.tif"):
        with rasterio.open(p) as ds:
            ds.read()  # a truncated file would fail here
    assert [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".rsviz-batch.lock"] == []
    man = json.loads((out / "manifest.json").read_text())
    assert {k: v["status"] for k, v in man["scenes"].items()} == {n: "done" for n in names[:-1]} | {
        "OAM-corrupt-chip": "failed"
    }
    summary = (out / "scenes.csv").read_text()
    assert "OAM-corrupt-chip,failed" in summary

    # pooled = sequential: the same predictions evaluated one after another and pooled
    card = get_model_card(MODEL)
    seq = {}
    for o, sp in zip(s.done, scenes):
        seq[o.name] = evaluate_rasters(card, out / o.prediction, sp.open().targets)
    ref = json.loads(json.dumps(to_eval_json(pool(list(seq.values())), seq)))
    doc = json.loads((out / "eval.json").read_text())
    assert doc["images"] == 12
    for k in ("overall", "values", "confusion_matrix", "per_scene", "params"):
        assert doc[k] == ref[k], k

    # a rerun skips every complete scene (no worker needed), tries the failed one again
    again = run_batch(MODEL, scenes, out, options=OPTIONS, workers=0)
    assert sorted(again.skipped) == sorted(names[:-1])
    assert [o.name for o in again.failed] == ["OAM-corrupt-chip"]
    assert json.loads((out / "eval.json").read_text())["overall"] == doc["overall"]


def test_cli_batch_sequential_and_errors(mirror, tmp_path, capsys):
    from rsviz.cli import main

    chips = sorted((mirror / CHIPS).glob("OAM-386695-*.tif"))[:2]
    folder = tmp_path / "chips"
    folder.mkdir()
    for c in chips:
        for f in (c, c.with_name(c.name + ".aux.xml")):  # the chips' georeferencing is in the .aux.xml
            shutil.copy(f, folder / f.name)
    out = tmp_path / "out"
    assert main(["batch", MODEL, str(folder), "--gt", str(mirror / OSM), "--out", str(out), "--workers", "0"]) == 0
    text = capsys.readouterr().out
    assert "2 of 2 scenes done" in text and "pooled: IoU" in text
    assert {"eval.json", "eval.csv", "scenes.csv", "report.html", "manifest.json"} <= {p.name for p in out.iterdir()}
    assert "Per scene" in (out / "report.html").read_text()
    # a scene without ground truth is predicted, not scored
    assert main(["batch", MODEL, str(chips[0]), "--out", str(tmp_path / "nogt"), "--workers", "0"]) == 0
    assert "0 scored" in capsys.readouterr().out
    assert main(["batch", MODEL, str(tmp_path / "missing.tif"), "--out", str(out)]) == 2
    assert "is no file, folder, matching glob or catalog dataset" in capsys.readouterr().err
    assert main(["batch", "no-such-model", str(folder), "--out", str(out)]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["batch", MODEL, str(folder), "--out", str(folder / chips[0].name)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["batch", MODEL, str(folder), "--out", str(out), "--workers", "0", "--scheduler", "tcp://x:1"]) == 2
    assert "leave them out with --scheduler" in capsys.readouterr().err


def test_a_scheduler_address_is_used_unchanged(scenes, cluster, tmp_path):
    """``--scheduler tcp://...``: the batch connects to that cluster (and leaves it running)."""
    from rsviz.batch import run_batch

    cluster.wait_for_workers(1, timeout=120)
    address = cluster.scheduler.address
    s = run_batch(MODEL, scenes[:2], tmp_path / "out", options=OPTIONS, scheduler=address)
    # the cluster's own workers ran it (how many: 1 or 2 while the worker restarted by the test above comes back)
    assert [o.status for o in s.outcomes] == ["done", "done"] and 1 <= s.workers <= 2
    assert all(o.worker.startswith("tcp://") for o in s.outcomes), [o.worker for o in s.outcomes]  # not in-process
    assert cluster.scheduler_info()["workers"]  # still up for others


def test_catalog_scenes_bring_their_ground_truth(mirror, tmp_path):
    from rsviz.batch import resolve_scenes, run_batch

    specs = resolve_scenes(["banepa-buildings:test"])[:2]
    s = run_batch(MODEL, specs, tmp_path / "out", options=OPTIONS, workers=0)
    assert len(s.per_scene) == 2 and s.overall.images == 2
    assert all(o.bounds_4326 is not None and o.run_key for o in s.done)
