"""Blocked CV folds of the labelled Banepa and Kampala chips, and the buffer of the final test blocks."""

from __future__ import annotations

import pytest

from rsviz.datasets import scenes
from rsviz.datasets.buildings import building_cv_folds, grid_cell, scoring_valid, split_groups
from rsviz.errors import SplitError


def test_folds_cover_train_and_val_chips_and_never_a_test_chip(mirror):
    folds = building_cv_folds(k=4)
    assert {c: len(f.fold) for c, f in folds.items()} == {"banepa": 40, "kampala": 24}
    for name, city in (("banepa-buildings", "banepa"), ("kampala-buildings", "kampala")):
        for ref in scenes(name, "test"):
            assert grid_cell(ref)[1] not in folds[city].fold
        for split in ("train", "val"):
            for ref in scenes(name, split):
                assert grid_cell(ref)[1] in folds[city].fold
    assert sorted(len(folds["banepa"].cells(i)) for i in range(4)) == [8, 8, 12, 12]
    assert sorted(len(folds["kampala"].cells(i)) for i in range(4)) == [4, 4, 8, 8]
    for f in folds.values():  # a 2 x 2 block of the grid is never split between folds
        blocks: dict = {}
        x0, y0 = min(x for x, _ in f.fold), min(y for _, y in f.fold)
        for (x, y), i in f.fold.items():
            blocks.setdefault(((x - x0) // 2, (y - y0) // 2), set()).add(i)
        assert all(len(v) == 1 for v in blocks.values())


def test_folds_refuse_a_zoom_whose_tiles_span_several_cells():
    with pytest.raises(SplitError, match="zoom 19"):
        building_cv_folds(zoom=19)


def test_banepa_test_buffer_drops_the_footprints_cut_by_its_train_edges(mirror):
    groups = split_groups()
    dropped = {}
    for ref in scenes("banepa-buildings", "test"):
        s = ref.load()
        v, n = scoring_valid(s, groups)
        dropped[ref.id] = n
        assert v.sum() < s.valid.sum() if n else v.sum() == s.valid.sum()
    # the block's inner chips (east column, south three) share no edge with a train chip
    assert dropped["OAM-386695-220248-19"] == 0 and dropped["OAM-386695-220247-19"] == 0
    assert dropped["OAM-386694-220245-19"] > 0  # north-west corner chip: train to its north and west
    assert sum(dropped.values()) == 31
    assert all(scoring_valid(r.load(), groups)[1] == 0 for r in scenes("kampala-buildings", "test"))
