"""Training recipes, by name (``python -m rsviz train NAME --config FILE``)."""

from __future__ import annotations

from typing import Callable


def _building_mtl(config: str | None):
    from rsviz.train.building import train

    return train(config, None)


def _building_seg(config: str | None):
    from rsviz.train.building import train

    return train(config, {"name": "building-seg", "heads": {"seg": 1}, "out": "runs/building-seg"} if config is None else None)


RECIPES: dict[str, Callable[[str | None], object]] = {
    "building-mtl": _building_mtl,
    "building-seg": _building_seg,
}
