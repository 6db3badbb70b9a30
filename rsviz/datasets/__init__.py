"""Dataset loaders turning catalog datasets into aligned :class:`Sample` s.

``scenes(name)`` lists a dataset's scenes lazily; ``SceneRef.load()`` reads one.
Split rules are documented in each loader module.
"""

from __future__ import annotations

from typing import Callable

from rsviz.datasets.base import SPLITS, ClassInfo, Sample, SceneRef
from rsviz.errors import unknown_name


def _registry() -> dict[str, Callable[[], list[SceneRef]]]:
    from rsviz.datasets import bigearthnet, buildings, height, landcover, roads

    return {
        "banepa-buildings": buildings.banepa_scenes,
        "kampala-buildings": buildings.kampala_scenes,
        "joplin-buildings": buildings.joplin_scenes,
        "tanzania-austin-buildings": buildings.tanzania_austin_scenes,
        "spacenet-samples": roads.spacenet_scenes,
        "dubai-landcover": landcover.dubai_scenes,
        "chesapeake-landcover": landcover.chesapeake_scenes,
        "eth-roads": roads.eth_scenes,
        "potsdam-height": height.potsdam_scenes,
        "neon-trees": height.neon_scenes,
        "alexandria-height": height.alexandria_scenes,
        "bigearthnet": bigearthnet.bigearthnet_scenes,
    }


def list_loaders() -> list[str]:
    """Datasets that have a loader."""
    return sorted(_registry())


def scenes(name: str, split: str | None = None) -> list[SceneRef]:
    """Scenes of a dataset, optionally of one split.

    Raises:
        UnknownNameError: Unknown dataset or split, listing the valid names.
    """
    reg = _registry()
    if name not in reg:
        raise unknown_name("dataset", name, list(reg))
    if split is not None and split not in SPLITS:
        raise unknown_name("split", split, list(SPLITS))
    out = reg[name]()
    return [s for s in out if split is None or s.split == split]


__all__ = ["ClassInfo", "Sample", "SceneRef", "SPLITS", "scenes", "list_loaders"]
