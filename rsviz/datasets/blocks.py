"""Spatially blocked cross-validation of chip grids, and the buffer that keeps cut footprints out of scoring.

Chips of a labelled set (XYZ tiles such as Banepa's zoom-19 chips) are grouped into square blocks of
``block x block`` neighbouring chips; whole blocks go to folds, so a held-out chip's neighbours are mostly
held out with it (Roberts et al., *Cross-validation strategies for data with temporal, spatial,
hierarchical, or phylogenetic structure*, Ecography 2017). A footprint cut by the edge between a held-out
chip and a chip of another fold (or of the training set) has its other part in the training data; such
footprints are dropped from scoring (:func:`buffered_valid`), which is the buffer of blocked CV at the
scale of one footprint.

Cells are ``(x, y)`` integer positions on one grid (XYZ tile columns and rows at one zoom); ``y`` grows
southward as in XYZ, so "north" is ``y - 1``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from rsviz.errors import SplitError

Cell = tuple[int, int]

#: side name -> (dx, dy) of the neighbouring cell on that side (XYZ: y grows southward)
SIDES: dict[str, Cell] = {"north": (0, -1), "south": (0, 1), "west": (-1, 0), "east": (1, 0)}


@dataclass(frozen=True)
class BlockFolds:
    """Fold of every cell of a blocked k-fold split.

    Attributes:
        fold: ``cell -> fold index`` in ``[0, k)``.
        block: Block side in cells.
        k: Number of folds.
        seed: Seed of the block-to-fold assignment.
    """

    fold: Mapping[Cell, int]
    block: int
    k: int
    seed: int

    def cells(self, fold: int) -> list[Cell]:
        """The cells of ``fold``, sorted."""
        return sorted(c for c, f in self.fold.items() if f == fold)


def block_folds(cells: Iterable[Cell], k: int, block: int = 2, seed: int = 0) -> BlockFolds:
    """Assign cells to ``k`` folds by square blocks of neighbouring cells.

    Blocks are aligned on the smallest ``x`` and ``y`` of ``cells`` (block ``((x - x0) // block,
    (y - y0) // block)``), shuffled with ``seed`` and dealt to folds in turn, so fold sizes differ by at
    most one block.

    Args:
        cells: ``(x, y)`` grid positions (e.g. XYZ tile indices at one zoom), no duplicates.
        k: Number of folds, >= 2 and at most the number of blocks.
        block: Block side in cells, >= 1.
        seed: Seed of the shuffle.

    Returns:
        The :class:`BlockFolds`.

    Raises:
        SplitError: If ``k`` or ``block`` is out of range, or the cells hold fewer than ``k`` blocks.
    """
    cells = sorted(set(cells))
    if block < 1:
        raise SplitError(f"block must be >= 1 cell, got {block}")
    if k < 2:
        raise SplitError(f"k-fold cross-validation needs k >= 2 folds, got k={k}")
    if not cells:
        raise SplitError("no cells to split into folds")
    x0, y0 = min(c[0] for c in cells), min(c[1] for c in cells)
    of = {c: ((c[0] - x0) // block, (c[1] - y0) // block) for c in cells}
    blocks = sorted(set(of.values()))
    if len(blocks) < k:
        raise SplitError(
            f"{len(cells)} cells make {len(blocks)} blocks of {block}x{block}, fewer than k={k} folds; "
            "use a smaller block or fewer folds"
        )
    order = np.random.default_rng(seed).permutation(len(blocks))
    fold_of_block = {blocks[int(b)]: i % k for i, b in enumerate(order)}
    return BlockFolds({c: fold_of_block[of[c]] for c in cells}, block, k, seed)


def cut_sides(cell: Cell, group: Mapping[Cell, Hashable]) -> tuple[str, ...]:
    """The sides of ``cell`` that border a cell of another group.

    Args:
        cell: ``(x, y)`` of the scored cell; it must be in ``group``.
        group: ``cell -> group`` of every labelled cell (fold index, or a role such as ``"test"`` /
            ``"train"``). Cells not in the mapping (unlabelled, or outside the set) are not neighbours.

    Returns:
        Side names of :data:`SIDES` (``north``, ``south``, ``west``, ``east``), in that order.

    Raises:
        KeyError: If ``cell`` is not in ``group``.
    """
    g = group[cell]
    out = []
    for side, (dx, dy) in SIDES.items():
        n = (cell[0] + dx, cell[1] + dy)
        if n in group and group[n] != g:
            out.append(side)
    return tuple(out)


def cut_footprints(instances: np.ndarray, sides: Iterable[str]) -> np.ndarray:
    """Ids of the footprints that touch the image border on ``sides``.

    Args:
        instances: ``(H, W)`` integer instance ids, 0 = background; row 0 is the north edge.
        sides: Side names of :data:`SIDES`.

    Returns:
        Sorted unique ids (int64), possibly empty.

    Raises:
        SplitError: If a side name is not one of :data:`SIDES`.
    """
    inst = np.asarray(instances)
    edge = {"north": inst[0], "south": inst[-1], "west": inst[:, 0], "east": inst[:, -1]}
    picked = []
    for s in sides:
        if s not in edge:
            raise SplitError(f"unknown side {s!r}; valid sides: {', '.join(SIDES)}")
        picked.append(edge[s])
    if not picked:
        return np.zeros(0, np.int64)
    ids = np.unique(np.concatenate(picked)).astype(np.int64)
    return ids[ids > 0]


def buffered_valid(instances: np.ndarray, valid: np.ndarray, sides: Iterable[str]) -> tuple[np.ndarray, int]:
    """``valid`` with the footprints cut by the image border on ``sides`` removed from scoring.

    The pixels of every footprint that touches one of those borders become invalid, so the footprint is
    neither a hit nor a miss, and the part of a prediction lying on it is not scored (pixel and object metrics
    alike). A prediction that spills past such a footprint still scores its remaining pixels, which may count
    as a false positive (of pixels, or of objects when the remnant is large enough).

    Args:
        instances: ``(H, W)`` integer ground-truth instance ids, 0 = background.
        valid: ``(H, W)`` bool, pixels that count before the buffer.
        sides: Borders shared with a chip of another fold (:func:`cut_sides`).

    Returns:
        ``(valid, n_dropped)``: the new ``(H, W)`` bool mask and the number of footprints dropped.

    Raises:
        SplitError: If the shapes differ or a side name is unknown.
    """
    inst = np.asarray(instances)
    v = np.asarray(valid, bool)
    if inst.shape != v.shape:
        raise SplitError(f"instances {inst.shape} and valid {v.shape} must have the same shape")
    ids = cut_footprints(inst, sides)
    if ids.size == 0:
        return v.copy(), 0
    return v & ~np.isin(inst, ids), int(ids.size)


__all__ = ["SIDES", "BlockFolds", "Cell", "block_folds", "buffered_valid", "cut_footprints", "cut_sides"]
