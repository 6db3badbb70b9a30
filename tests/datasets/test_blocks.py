"""Blocked k-fold assignment and the cut-footprint buffer (rsviz.datasets.blocks)."""

from __future__ import annotations

import numpy as np
import pytest

from rsviz.datasets.blocks import block_folds, buffered_valid, cut_footprints, cut_sides
from rsviz.errors import SplitError

GRID = [(x, y) for x in range(10, 16) for y in range(20, 28)]  # 6 x 8 cells


def test_whole_blocks_go_to_one_fold_and_folds_are_balanced():
    bf = block_folds(GRID, k=4, block=2, seed=0)
    assert set(bf.fold) == set(GRID)
    for x in range(10, 16, 2):
        for y in range(20, 28, 2):
            block = {bf.fold[(x + dx, y + dy)] for dx in (0, 1) for dy in (0, 1)}
            assert len(block) == 1, (x, y, block)
    sizes = sorted(len(bf.cells(f)) for f in range(4))
    assert sizes == [12, 12, 12, 12]  # 12 blocks of 4 cells dealt to 4 folds
    assert block_folds(GRID, k=4, seed=0).fold == bf.fold
    assert block_folds(GRID, k=4, seed=1).fold != bf.fold


def test_too_few_blocks_is_refused_with_the_numbers():
    with pytest.raises(SplitError, match=r"4 cells make 1 blocks of 2x2, fewer than k=3"):
        block_folds([(0, 0), (0, 1), (1, 0), (1, 1)], k=3)
    with pytest.raises(ValueError, match="k >= 2"):
        block_folds(GRID, k=1)
    with pytest.raises(SplitError, match="block must be >= 1"):
        block_folds(GRID, k=2, block=0)


def test_cut_sides_name_the_borders_with_another_group():
    group = {(0, 0): "test", (1, 0): "train", (0, 1): "test", (0, -1): "val"}
    assert cut_sides((0, 0), group) == ("north", "east")  # (0, -1) is north in XYZ, (1, 0) east
    assert cut_sides((0, 1), group) == ()  # its only neighbour shares the group; absent cells do not count


def test_buffer_drops_only_the_footprints_touching_a_cut_side():
    inst = np.zeros((10, 10), np.int32)
    inst[0:3, 2:5] = 1  # touches north
    inst[4:6, 4:6] = 2  # inside
    inst[5:8, 7:10] = 3  # touches east
    inst[7:10, 0:3] = 4  # touches south and west
    valid = np.ones((10, 10), bool)
    assert cut_footprints(inst, ["north", "east"]).tolist() == [1, 3]
    v, n = buffered_valid(inst, valid, ["north", "east"])
    assert n == 2
    assert not v[inst == 1].any() and not v[inst == 3].any()
    assert v[inst == 2].all() and v[inst == 4].all() and v[inst == 0].all()
    v0, n0 = buffered_valid(inst, valid, [])
    assert n0 == 0 and v0.all()
    with pytest.raises(SplitError, match="unknown side 'up'"):
        cut_footprints(inst, ["up"])
