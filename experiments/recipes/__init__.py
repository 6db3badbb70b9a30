"""Training recipes, by name (``python -m rsviz train NAME --config FILE``)."""

from __future__ import annotations

from typing import Callable


def _building_mtl(config: str | None):
    from experiments.recipes.building import train

    return train(config, None)


def _building_seg(config: str | None):
    from experiments.recipes.building import train

    return train(
        config, {"name": "building-seg", "heads": {"seg": 1}, "out": "runs/building-seg"} if config is None else None
    )


def _building_mim(config: str | None):
    from experiments.recipes.pretrain import train

    return train(config, None)


def _s2(variant: str):
    def run(config: str | None):
        from experiments.recipes.s2 import train

        return train(config, None if config else {"variant": variant, "out": f"runs/s2-{variant}"})

    return run


def _height(config: str | None):
    from experiments.recipes.height import train

    return train(config, None)


def _semantic(recipe: str):
    def run(config: str | None):
        from experiments.recipes.semantic import train

        return train(recipe, config)

    return run


RECIPES: dict[str, Callable[[str | None], object]] = {
    "building-mtl": _building_mtl,
    "building-seg": _building_seg,
    "building-mim": _building_mim,  # self-supervised pretraining (masked-image reconstruction), an init
    "s2-resize": _s2("resize"),
    "s2-intermediate": _s2("intermediate"),
    "s2-late": _s2("late"),
    "height-mtl": _height,
    "landcover-deeplabv3plus": _semantic("landcover-deeplabv3plus"),
    "roads-pplinknet": _semantic("roads-pplinknet"),
}
