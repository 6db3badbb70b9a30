"""Pictures of a report: overview map from the app's tiles, run panels, error crops, confusion matrix.

Every function returns an image array or a Figure; :mod:`rsviz.report.render` encodes them.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

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


def _over(rgb: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgb.astype(np.float32) * (1 - a) + rgba[..., :3].astype(np.float32) * a).astype(np.uint8)


def run_panels(sample: Any, classes_pred: np.ndarray, card: Any, target: str | None) -> list[Picture]:
    """Input, ground truth, prediction and the error map (TP/FP/FN for binary models) over the extent.

    Args:
        sample: The scene read over the extent (:class:`~rsviz.datasets.base.Sample`).
        classes_pred: ``(H, W)`` predicted class ids (255 nodata).
        card: The model card.
        target: ``sample.targets`` key of the ground truth compared, or None.
    """
    from rsviz.datasets.base import ClassInfo
    from rsviz.display import palette_rgba, to_rgb8
    from rsviz.metrics.errormaps import binary_error_map, error_map_rgba

    rgb = to_rgb8(sample.image, valid=sample.valid)
    classes = list(card.classes) or [ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "positive", (230, 25, 75))]
    binary = card.heads.get("seg") is not None and card.heads["seg"].kind == "binary"
    out = [Picture("input", rgb)]
    gt = sample.targets.get(target) if target else None
    if gt is not None:
        pal = palette_rgba(gt, classes, alpha=170, transparent=(0,) if binary else (), valid=sample.valid)
        out.append(Picture("ground truth", _over(rgb, pal)))
    out.append(
        Picture(
            f"prediction ({card.name})",
            _over(rgb, palette_rgba(classes_pred, classes, alpha=170, transparent=(0, 255) if binary else (255,))),
        )
    )
    if gt is not None:
        if binary:
            codes = binary_error_map(classes_pred == 1, gt > 0, sample.valid & (classes_pred != 255))
            out.append(Picture("errors: TP green · FP red · FN blue", _over(rgb, error_map_rgba(codes))))
        else:
            wrong = (classes_pred != gt) & sample.valid & (classes_pred != 255)
            red = np.dstack([wrong * 255, wrong * 30, wrong * 30, wrong * 200]).astype(np.uint8)
            out.append(Picture("misclassified pixels (red)", _over(rgb, red)))
    return [Picture(p.caption, _reduced(p.image, PANEL_PX)) for p in out]


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
    """The Compare page's swipe, frozen: ``left`` west of ``fraction`` of the width, ``right`` east, a white divider.

    Raises:
        ValueError: The two images differ in size.
    """
    if left.image.shape != right.image.shape:
        raise ValueError(f"a swipe needs two images of one size; got {left.image.shape} and {right.image.shape}")
    out = right.image.copy()
    cut = int(round(out.shape[1] * fraction))
    out[:, :cut] = left.image[:, :cut]
    out[:, max(cut - 1, 0) : cut + 1] = 255
    return Picture(f"swipe: {left.caption} (left) | {right.caption} (right)", out)


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


def confusion_figure(confusion: Any, names: Any, title: str = "") -> Figure:
    """Row-normalised confusion matrix (rows = ground truth) with the pixel counts.

    Args:
        confusion: ``(K, K)`` counts.
        names: ``K`` class names.
        title: Figure title.
    """
    cm = np.asarray(confusion, float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(cm)
    fig = Figure(figsize=(1.2 + 0.9 * k, 1.0 + 0.8 * k), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}\n{int(cm[i, j]):,}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(k), list(names), rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(k), list(names), fontsize=7)
    ax.set_xlabel("prediction", fontsize=8)
    ax.set_ylabel("ground truth", fontsize=8)
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def road_graphs_figure(rgb: np.ndarray, graphs: Any) -> Figure:
    """The two APLS road graphs over the image: ground truth green, proposal red, bridged gaps yellow.

    Args:
        rgb: ``(H, W, 3)`` image of the extent.
        graphs: ``(ground truth, proposal)`` networkx graphs (node ``xy`` in pixels of the extent).
    """
    from matplotlib.collections import LineCollection

    from rsviz.postprocess import graph_lines

    h, w = rgb.shape[:2]
    fig = Figure(figsize=(5, 5 * h / max(w, 1)), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(rgb)
    for g, colour, width in ((graphs[0], "#2ecc40", 2.0), (graphs[1], "#ff4136", 1.4)):
        lines = graph_lines(g)
        ax.add_collection(LineCollection([c for c, b in lines if not b], colors=colour, linewidths=width))
        ax.add_collection(LineCollection([c for c, b in lines if b], colors="#ffdc00", linewidths=2.5))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()
    return fig
