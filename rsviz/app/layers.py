"""The map layers of a scene and of its runs, registered with the tile server by opaque id.

Each layer is a :class:`rsviz.tiles.Layer` over a file of the workspace (the scene's image, its ground
truth, a run's prediction COG): registering it in :data:`rsviz.tiles.REGISTRY` is what lets the tile
route serve it; a URL never names a file. :class:`MapLayer` adds what the map needs to show it (name,
opacity, whether it is a class layer drawn ``pixelated``, its legend).
"""

from __future__ import annotations

from dataclasses import dataclass

from rsviz.tiles import REGISTRY, Layer, LayerKind, default_rgb_bands, layer_info
from rsviz.types import ClassInfo
from rsviz.workspace import RunResult, Scene

#: Opacity (0-255) of class colours drawn over imagery.
CLASS_ALPHA = 150


@dataclass(frozen=True)
class MapLayer:
    """A registered tile layer and how to show it.

    Attributes:
        name: Label in the layer control and the compare pickers.
        id: The tile registry id.
        kind: The :class:`~rsviz.tiles.LayerKind`.
        opacity: Initial opacity, 0-1.
        show: Initially visible.
        pixelated: Class ids: drawn without smoothing when zoomed past native resolution.
        legend: Classes shown in a legend, if any.
        group: ``scene`` or the run's model name.
    """

    name: str
    id: str
    kind: LayerKind
    opacity: float = 1.0
    show: bool = True
    pixelated: bool = False
    legend: tuple[ClassInfo, ...] = ()
    group: str = "scene"


def _colormap(classes: tuple[ClassInfo, ...], binary: bool) -> tuple[tuple[int, tuple[int, int, int, int]], ...]:
    """Class id -> RGBA: binary legends colour the positive class only; multiclass all classes."""
    shown = [c for c in classes if not (binary and c.id == 0)]
    return tuple((c.id, (*c.color, CLASS_ALPHA)) for c in shown)


def _binary(classes: tuple[ClassInfo, ...]) -> bool:
    return len(classes) <= 2


def imagery_layer(scene: Scene, bands: tuple[int, ...] | None = None) -> MapLayer:
    """The scene's imagery: RGB (or grey) bands, uint8 as is, other types with the tile renderer's 2-98 %
    per-band stretch from the overviews, computed once per layer (Sentinel-2's 12 bands: B04, B03, B02 by
    default)."""
    lyr = Layer(LayerKind.IMAGERY, scene.image, bands=tuple(bands or default_rgb_bands(scene.image)))
    return MapLayer("imagery", REGISTRY.register(lyr), LayerKind.IMAGERY)


def ground_truth_layers(scene: Scene) -> list[MapLayer]:
    """Ground truth: class targets coloured with the scene legend, heights with viridis."""
    out = []
    for target in ("buildings", "roads", "classes"):
        p = scene.targets.get(target)
        if p is None or (target == "roads" and scene.targets.get("buildings") == p):
            continue
        binary = target != "classes"
        lyr = Layer(LayerKind.CLASSES, p, colormap=_colormap(scene.classes, binary))
        out.append(
            MapLayer(
                f"ground truth: {target}", REGISTRY.register(lyr), LayerKind.CLASSES, 0.8, True, True, scene.classes
            )
        )
    if "height" in scene.targets:
        p = scene.targets["height"]
        lyr = Layer(LayerKind.CONTINUOUS, p, rescale=((0.0, _height_max(scene)),), cmap="viridis")
        out.append(
            MapLayer(
                f"ground truth: height ({scene.height_units or 'units'})",
                REGISTRY.register(lyr),
                LayerKind.CONTINUOUS,
                0.8,
            )
        )
    return out


def _height_max(scene: Scene) -> float:
    return 1.0 if scene.height_units == "relative" else 30.0


def scene_layers(scene: Scene) -> list[MapLayer]:
    """Imagery and ground-truth layers of a georeferenced scene."""
    return [imagery_layer(scene), *ground_truth_layers(scene)]


def run_layers(scene: Scene, run: RunResult, card) -> list[MapLayer]:
    """Layers of one run: prediction (card colours), TP/FP/FN errors against the ground truth,
    probability / entropy / edge / reconstruction residual / height and height error as the model has them."""
    from rsviz.evaluation import target_spec

    g = run.model
    classes = tuple(card.classes)
    binary = _binary(classes)
    bands = list(run.bands)
    out = [
        MapLayer(
            f"{g}: prediction",
            REGISTRY.register(Layer(LayerKind.CLASSES, run.path, colormap=_colormap(classes, binary))),
            LayerKind.CLASSES,
            0.8,
            False,  # off at first: over the ground truth, in the same colours, it would hide it
            True,
            classes,
            g,
        )
    ]
    spec = target_spec(card, scene.targets)
    if spec is not None and spec.prediction == "classes" and spec.target in scene.targets:
        lyr = Layer(
            LayerKind.ERRORS,
            run.path,
            reference=scene.targets[spec.target],
            binary=spec.binary,
            positive=(1,),
            ignore=(255,),
        )
        out.append(
            MapLayer(
                f"{g}: errors (TP green, FP red, FN blue)" if spec.binary else f"{g}: errors (red: wrong class)",
                REGISTRY.register(lyr),
                LayerKind.ERRORS,
                0.8,
                False,
                True,
                (),
                g,
            )
        )
    for i, n in enumerate(bands, 1):
        if n.startswith("prob:") and (not binary or i == 2):
            lyr = Layer(LayerKind.CONTINUOUS, run.path, bands=(i,), rescale=((0.0, 255.0),), cmap="viridis")
            out.append(
                MapLayer(
                    f"{g}: probability of {n[5:]}",
                    REGISTRY.register(lyr),
                    LayerKind.CONTINUOUS,
                    0.8,
                    False,
                    False,
                    (),
                    g,
                )
            )
        elif n in ("entropy", "edge", "tta_var"):
            label = {"entropy": "uncertainty (entropy)", "edge": "edge probability", "tta_var": "TTA variance"}[n]
            lyr = Layer(
                LayerKind.CONTINUOUS,
                run.path,
                bands=(i,),
                rescale=((0.0, 255.0),),
                cmap="magma" if n != "edge" else "gray",
            )
            out.append(
                MapLayer(f"{g}: {label}", REGISTRY.register(lyr), LayerKind.CONTINUOUS, 0.8, False, False, (), g)
            )
    recon = [i for i, n in enumerate(bands, 1) if n.startswith("recon:")]
    if recon:
        lyr = Layer(
            LayerKind.DIFFERENCE,
            run.path,
            bands=(recon[0],),
            reference=scene.image,
            reference_band=1,
            rescale=((-64.0, 64.0),),
            cmap="rdbu",
        )
        out.append(
            MapLayer(
                f"{g}: reconstruction residual ({bands[recon[0] - 1][6:]})",
                REGISTRY.register(lyr),
                LayerKind.DIFFERENCE,
                0.8,
                False,
                False,
                (),
                g,
            )
        )
    hp = run.height_path
    if hp is not None:
        top = _height_max(scene)
        out.append(
            MapLayer(
                f"{g}: height",
                REGISTRY.register(Layer(LayerKind.CONTINUOUS, hp, rescale=((0.0, top),), cmap="viridis")),
                LayerKind.CONTINUOUS,
                0.8,
                False,
                False,
                (),
                g,
            )
        )
        if "height" in scene.targets:
            lyr = Layer(
                LayerKind.DIFFERENCE, hp, reference=scene.targets["height"], rescale=((-top / 3, top / 3),), cmap="rdbu"
            )
            out.append(
                MapLayer(
                    f"{g}: height error (prediction - truth)",
                    REGISTRY.register(lyr),
                    LayerKind.DIFFERENCE,
                    0.8,
                    False,
                    False,
                    (),
                    g,
                )
            )
    return out


def max_zoom(layer: MapLayer) -> tuple[int, int]:
    """``(native_zoom, max_zoom)`` of a registered layer."""
    info = layer_info(REGISTRY.get(layer.id))
    return info.native_zoom, info.maxzoom


__all__ = ["MapLayer", "ground_truth_layers", "imagery_layer", "max_zoom", "run_layers", "scene_layers"]
