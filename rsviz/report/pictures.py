"""Pictures of a report: overview map from the app's tiles, run panels, error crops, confusion matrix.

Every function returns an image array or a Figure; :mod:`rsviz.report.render` encodes them.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Longest side of the overview map, pixels, and most tiles it may fetch.
OVERVIEW_PX = 640
MAX_TILES = 16
#: Most crops of each kind (worst false positives, worst misses) and their side, pixels.
CROPS = 6
CROP_PX = 128
#: Longest side of a run panel in the report (bigger extents are shown reduced).
PANEL_PX = 768


@dataclass(frozen=True)
class Picture:
    """A captioned ``(H, W, 3)`` uint8 image.

    Attributes:
        caption: What it shows.
        image: RGB pixels.
    """

    caption: str
    image: np.ndarray


def _merc(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Global web-mercator pixel of ``(lon, lat)`` at zoom ``z`` (256 px tiles)."""
    n = 256 * 2**z
    lat = max(min(lat, 85.0511), -85.0511)
    x = (lon + 180.0) / 360.0 * n
    y = (1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2 * n
    return x, y


def overview_map(scene: Any, extent_bounds: tuple[float, float, float, float] | None) -> Picture:
    """The whole scene with the extent outlined in yellow.

    Georeferenced scenes are drawn from the same XYZ tiles the app's map serves
    (:func:`rsviz.tiles.render.render_tile` of the imagery layer), at the deepest zoom where the scene
    fits in :data:`MAX_TILES` tiles and no deeper than its native zoom; others from :func:`~rsviz.workspace.preview`.

    Args:
        scene: A :class:`~rsviz.workspace.Scene`.
        extent_bounds: EPSG:4326 ``(west, south, east, north)`` of the extent, or None (not outlined).
    """
    from PIL import Image, ImageDraw

    from rsviz.display import to_rgb8
    from rsviz.tiles import Layer, LayerKind, render_tile
    from rsviz.tiles.render import default_rgb_bands, max_zoom_for_gsd

    b = scene.bounds_4326
    if b is None:
        from rsviz.workspace.scene import preview

        img, valid = preview(scene, OVERVIEW_PX)
        rgb = to_rgb8(img, valid=valid)
        return Picture("the scene (not georeferenced: no map)", rgb)
    w, s, e, n = b
    native = max_zoom_for_gsd(scene.gsd or 1.0, (s + n) / 2, beyond=0)
    z = native
    while z > 0:
        x0, y0 = _merc(w, n, z)
        x1, y1 = _merc(e, s, z)
        tiles = (int(x1 // 256) - int(x0 // 256) + 1) * (int(y1 // 256) - int(y0 // 256) + 1)
        if tiles <= MAX_TILES and max(x1 - x0, y1 - y0) <= 2 * OVERVIEW_PX:
            break
        z -= 1
    x0, y0 = _merc(w, n, z)
    x1, y1 = _merc(e, s, z)
    tx0, ty0, tx1, ty1 = int(x0 // 256), int(y0 // 256), int(x1 // 256), int(y1 // 256)
    layer = Layer(LayerKind.IMAGERY, scene.image, bands=tuple(default_rgb_bands(scene.image)))
    mosaic = Image.new("RGB", ((tx1 - tx0 + 1) * 256, (ty1 - ty0 + 1) * 256), (236, 236, 236))
    for ty in range(ty0, ty1 + 1):
        for tx in range(tx0, tx1 + 1):
            tile = Image.open(io.BytesIO(render_tile(layer, z, tx, ty))).convert("RGBA")
            mosaic.paste(tile, ((tx - tx0) * 256, (ty - ty0) * 256), tile)
    pad = 8
    box = (
        max(int(x0) - tx0 * 256 - pad, 0),
        max(int(y0) - ty0 * 256 - pad, 0),
        min(int(math.ceil(x1)) - tx0 * 256 + pad, mosaic.width),
        min(int(math.ceil(y1)) - ty0 * 256 + pad, mosaic.height),
    )
    crop = mosaic.crop(box)
    f = min(1.0, OVERVIEW_PX / max(crop.size))
    if f < 1.0:
        crop = crop.resize((max(1, round(crop.width * f)), max(1, round(crop.height * f))), Image.Resampling.LANCZOS)
    if extent_bounds is not None:
        ew, es, ee, en = extent_bounds
        ax0, ay0 = _merc(ew, en, z)
        ax1, ay1 = _merc(ee, es, z)

        def px(x: float, y: float) -> tuple[float, float]:
            return ((x - tx0 * 256 - box[0]) * f, (y - ty0 * 256 - box[1]) * f)

        d = ImageDraw.Draw(crop)
        d.rectangle([*px(ax0, ay0), *px(ax1, ay1)], outline=(255, 221, 0), width=3)
    return Picture(f"the scene at web-map zoom {z} (app tiles); extent outlined in yellow", np.asarray(crop))


def run_panels(sample: Any, classes_pred: np.ndarray, card: Any, task: str) -> list[Picture]:
    """Input, ground truth, prediction and the error map (TP/FP/FN for binary models) over the extent, as the
    Compare page draws them (:func:`rsviz.figures.panels_for`), reduced to at most :data:`PANEL_PX`.

    Args:
        sample: The scene read over the extent (:class:`~rsviz.datasets.base.Sample`).
        classes_pred: ``(H, W)`` predicted class ids (255 nodata).
        card: The model card.
        task: Evaluation task of the run (``none`` without ground truth).
    """
    from rsviz.display import PanelKind
    from rsviz.figures import panels_for

    kinds = (PanelKind.INPUT, PanelKind.GROUND_TRUTH, PanelKind.PREDICTION, PanelKind.ERRORS)
    panels = panels_for(sample, {"classes": classes_pred}, card, task)
    return [Picture(p.caption, _reduced(p.image, PANEL_PX)) for p in panels if p.kind in kinds]


def _reduced(img: np.ndarray, side: int) -> np.ndarray:
    """``img`` shrunk (box filter) so its longest side is at most ``side``."""
    from PIL import Image

    f = side / max(img.shape[:2])
    if f >= 1.0:
        return img
    im = Image.fromarray(img).resize(
        (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f))), Image.Resampling.BOX
    )
    return np.asarray(im)


def swipe(left: Picture, right: Picture, fraction: float = 0.5) -> Picture:
    """The Compare page's swipe, frozen (:func:`rsviz.figures.swipe`, white divider).

    Raises:
        ValueError: The two images differ in size.
    """
    from rsviz.figures import swipe as split

    return Picture(
        f"swipe: {left.caption} (left) | {right.caption} (right)",
        split(left.image, right.image, fraction, (255, 255, 255)),
    )


def error_crops(rgb: np.ndarray, match: Any) -> tuple[list[Picture], list[Picture]]:
    """The largest false positives and misses of an object matching, as small crops with their best IoU.

    Args:
        rgb: ``(H, W, 3)`` image of the extent.
        match: :class:`~rsviz.metrics.objects.ObjectMatch` in the extent's pixel coordinates.

    Returns:
        ``(false positives, misses)``: proposals outlined red and ground truth blue in each crop.
    """
    import shapely
    from PIL import Image, ImageDraw

    gts = [g for _, g, _ in match.tp] + list(match.fn)
    props = [p for p, _, _ in match.tp] + list(match.fp)

    def best_iou(poly: Any, others: list[Any]) -> float:
        best = 0.0
        for o in others:
            if poly.intersects(o):
                inter = poly.intersection(o).area
                best = max(best, inter / (poly.area + o.area - inter))
        return best

    def crop(poly: Any, what: str, iou: float) -> Picture:
        x0, y0, x1, y1 = poly.bounds
        side = max(x1 - x0, y1 - y0) * 1.4 + 16
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        c0, r0 = max(int(cx - side / 2), 0), max(int(cy - side / 2), 0)
        c1, r1 = min(int(cx + side / 2), rgb.shape[1]), min(int(cy + side / 2), rgb.shape[0])
        im = Image.fromarray(rgb[r0:r1, c0:c1].copy())
        d = ImageDraw.Draw(im)
        window = shapely.box(c0, r0, c1, r1)
        for polys, colour in ((gts, (0, 116, 217)), (props, (255, 65, 54))):
            for p in polys:
                if p.intersects(window):
                    for ring in [p.exterior] if hasattr(p, "exterior") else []:
                        d.line([(x - c0, y - r0) for x, y in ring.coords], fill=colour, width=2)
        f = CROP_PX / max(im.size)
        im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.Resampling.NEAREST)
        return Picture(f"{what}: {poly.area:.0f} px, best IoU {iou:.2f}", np.asarray(im))

    fps = sorted(match.fp, key=lambda p: -p.area)[:CROPS]
    fns = sorted(match.fn, key=lambda p: -p.area)[:CROPS]
    return (
        [crop(p, "false positive", best_iou(p, gts)) for p in fps],
        [crop(g, "miss", best_iou(g, props)) for g in fns],
    )
