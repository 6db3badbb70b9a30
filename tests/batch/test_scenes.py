"""SCENES resolution and the ground-truth pairing rule of ``rsviz batch`` (no model, no Dask)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsviz.batch import BatchInputError, BatchOptions, SceneCounts, SceneSpec, resolve_scenes, scene_hash
from rsviz.batch.counts import pool_counts
from rsviz.evaluation import evaluate, pool


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_files_folders_globs_and_duplicates(tmp_path):
    a, b = _touch(tmp_path / "s" / "a.tif"), _touch(tmp_path / "s" / "b.png")
    _touch(tmp_path / "s" / "notes.txt")
    c = _touch(tmp_path / "t" / "c.tif")
    specs = resolve_scenes([str(tmp_path / "s"), str(tmp_path / "t" / "*.tif"), str(a)])
    assert [s.name for s in specs] == ["a", "b", "c"]  # the same file twice counts once
    assert [Path(s.image) for s in specs] == [a, b, c]
    assert not any(s.scored for s in specs)
    _touch(tmp_path / "u" / "a.tif")
    with pytest.raises(BatchInputError, match="two scenes are named 'a'"):
        resolve_scenes([str(a), str(tmp_path / "u" / "a.tif")])
    with pytest.raises(BatchInputError, match="no file, folder, matching glob or catalog dataset"):
        resolve_scenes([str(tmp_path / "nothing.tif")])
    with pytest.raises(BatchInputError, match="no raster matches"):
        resolve_scenes([str(tmp_path / "*.jp2")])
    with pytest.raises(BatchInputError, match="holds no rasters"):
        resolve_scenes([str(tmp_path / "empty")] if (tmp_path / "empty").mkdir() is None else [])


def test_ground_truth_rules(tmp_path):
    a, b = _touch(tmp_path / "img" / "a.tif"), _touch(tmp_path / "img" / "b.tif")
    ga = _touch(tmp_path / "gt" / "a.tif")
    specs = resolve_scenes([str(tmp_path / "img")], gt=tmp_path / "gt")
    assert [(s.name, s.gt) for s in specs] == [("a", str(ga)), ("b", None)]  # b: predicted, not scored
    _touch(tmp_path / "gt" / "a.geojson")
    with pytest.raises(BatchInputError, match="has 2 files for scene a"):
        resolve_scenes([str(tmp_path / "img")], gt=tmp_path / "gt")
    # CSV scene,gt: paths relative to the CSV; a scene by path or by stem
    _touch(tmp_path / "labels" / "b_mask.tif")
    csv = tmp_path / "pairs.csv"
    csv.write_text("scene,gt\nimg/a.tif,gt/a.tif\nb,labels/b_mask.tif\n")
    specs = resolve_scenes([str(a), str(b)], gt=csv)
    assert [Path(s.gt).name for s in specs if s.gt] == ["a.tif", "b_mask.tif"]
    csv.write_text("scene,gt\nzz,gt/a.tif\n")
    with pytest.raises(BatchInputError, match="line 2: scene 'zz' is not one of"):
        resolve_scenes([str(a)], gt=csv)
    csv.write_text("image,label\na,gt/a.tif\n")
    with pytest.raises(BatchInputError, match="header row `scene,gt`"):
        resolve_scenes([str(a)], gt=csv)
    # one GeoJSON for every scene; one raster only for one scene
    gj = _touch(tmp_path / "osm.geojson")
    assert {s.gt for s in resolve_scenes([str(a), str(b)], gt=gj)} == {str(gj)}
    with pytest.raises(BatchInputError, match="is one raster but the batch has 2 scenes"):
        resolve_scenes([str(a), str(b)], gt=ga)
    with pytest.raises(BatchInputError, match="does not exist"):
        resolve_scenes([str(a)], gt=tmp_path / "missing")


def test_catalog_dataset_scenes(mirror):
    specs = resolve_scenes(["banepa-buildings:test"])
    assert len(specs) == 8 and all(s.dataset == "banepa-buildings" and s.scored for s in specs)
    unlabelled = resolve_scenes(["banepa-buildings:predict"])
    assert unlabelled and not any(s.scored for s in unlabelled)
    with pytest.raises(BatchInputError, match="bring their own ground truth"):
        resolve_scenes(["banepa-buildings:test"], gt=mirror)


def test_scene_hash_changes_with_what_changes_outputs(tmp_path):
    img = _touch(tmp_path / "a.tif")
    s = SceneSpec("a", str(img))
    h = scene_hash("m", "w1", s, BatchOptions())
    assert h == scene_hash("m", "w1", s, BatchOptions(batch_size=16, device="cuda"))  # same outputs
    assert h != scene_hash("m", "w2", s, BatchOptions())
    assert h != scene_hash("m", "w1", s, BatchOptions(threshold=0.6))
    img.write_bytes(b"xy")  # the file changed
    assert h != scene_hash("m", "w1", s, BatchOptions())


def test_counts_round_trip_and_pool_like_results():
    rng = np.random.default_rng(0)
    results = []
    for _ in range(3):
        gt = (rng.random((64, 64)) > 0.7).astype(np.uint8)
        pred = np.where(rng.random((64, 64)) > 0.1, gt, 1 - gt).astype(np.uint8)
        results.append(evaluate(pred, gt, "buildings", gsd=0.3))
    counts = [SceneCounts.from_json(SceneCounts.of(r).to_json()) for r in results]  # through JSON (the manifest)
    assert [c.result().values for c in counts] == [r.values for r in results]
    assert pool_counts(counts).values == pool(results).values
    assert pool_counts(counts).confusion == pool(results).confusion
