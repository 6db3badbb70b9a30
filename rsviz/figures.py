"""Panels and figures of a run over an extent, shared by the app (Compare, Metrics) and the report.

Arrays in, ``(H, W, 3)`` uint8 images or matplotlib Figures out; nothing here draws on screen.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from rsviz.datasets.base import ClassInfo, Sample
from rsviz.display import Panel, colormap_rgba, palette_rgba, to_rgb8
from rsviz.display import PanelKind as P
from rsviz.evaluation.tasks import task_spec
from rsviz.metrics.errormaps import binary_error_map, error_map_rgba


def composite(rgb: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Alpha-composite ``rgba`` over ``rgb``.

    Args:
        rgb: ``(H, W, 3)`` uint8 image.
        rgba: ``(H, W, 4)`` uint8 overlay; alpha 0-255.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgb.astype(np.float32) * (1 - a) + rgba[..., :3].astype(np.float32) * a).astype(np.uint8)


def panels_for(sub: Sample, heads: dict[str, np.ndarray], card, task: str) -> list[Panel]:
    """Captioned panels for one run over an extent.

    Args:
        sub: The scene cropped to the extent (image, targets, valid).
        heads: Prediction heads on the same grid.
        card: Model card (classes, colours, units).
        task: Evaluation task (``buildings``, ``roads``, ``segmentation``, ``height``, ``none``).

    Returns:
        :class:`~rsviz.display.Panel` s ((H, W, 3) uint8): input, ground truth, prediction, error map,
        edges, reconstruction and residual, height and its error, uncertainty -- as available.
    """
    rgb = to_rgb8(sub.image, valid=sub.valid)
    classes = list(card.classes) or [ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "positive", (230, 25, 75))]
    out = [(P.INPUT, "input", rgb)]
    cls = heads.get("classes")
    binary = card.heads.get("seg") is not None and card.heads["seg"].kind == "binary"
    spec = task_spec(task) if task != "none" else None
    gt = sub.targets.get(spec.target) if spec is not None and spec.prediction == "classes" else None
    transparent = (0, 255) if binary else (255,)
    if gt is not None:
        out.append(
            (
                P.GROUND_TRUTH,
                "ground truth",
                composite(
                    rgb,
                    palette_rgba(
                        gt, classes, alpha=170, transparent=transparent[:1] if binary else (), valid=sub.valid
                    ),
                ),
            )
        )
    if cls is not None:
        out.append(
            (
                P.PREDICTION,
                f"prediction ({card.name})",
                composite(rgb, palette_rgba(cls, classes, alpha=170, transparent=transparent)),
            )
        )
    if cls is not None and gt is not None:
        if binary:
            codes = binary_error_map(cls == 1, gt > 0, sub.valid & (cls != 255))
            out.append((P.ERRORS, "errors: TP green · FP red · FN blue", composite(rgb, error_map_rgba(codes))))
        else:
            wrong = (cls != gt) & sub.valid & (cls != 255)
            out.append(
                (
                    P.ERRORS,
                    "misclassified pixels (red)",
                    composite(rgb, np.dstack([wrong * 255, wrong * 30, wrong * 30, wrong * 200]).astype(np.uint8)),
                )
            )
    if "edge" in heads:
        e_gt = sub.targets.get("edges")
        base = np.zeros_like(rgb)
        if e_gt is not None:
            base[e_gt > 0] = (255, 255, 255)
        pe = heads["edge"] >= 0.5
        base[pe & (base[..., 0] == 0)] = (255, 60, 60)
        base[pe & (e_gt > 0 if e_gt is not None else False)] = (60, 255, 60)
        out.append((P.EDGES, "edges: ground truth white · predicted red · agreement green", base))
        out.append((P.EDGE_PROBABILITY, "edge probability", colormap_rgba(heads["edge"], "magma", 0, 1)[..., :3]))
    if "recon" in heads:
        r = np.clip(heads["recon"], 0, 255)
        out.append((P.RECONSTRUCTION, "reconstruction", to_rgb8(r.astype(np.uint8))))
        res = np.abs(r - sub.image[: r.shape[0]].astype(np.float32)).mean(0)
        out.append(
            (
                P.RESIDUAL,
                f"residual |recon − input| (mean {res.mean():.1f})",
                colormap_rgba(res, "inferno", 0, max(float(np.percentile(res, 99)), 1))[..., :3],
            )
        )
    if "height" in heads:
        units = card.heads["height"].units or ""
        hp = heads["height"]
        ht = sub.targets.get("height")
        vmax = (
            float(
                np.percentile(
                    np.concatenate([hp[sub.valid].ravel(), ht[sub.valid].ravel() if ht is not None else []]), 99
                )
            )
            if sub.valid.any()
            else 1.0
        )
        if ht is not None:
            out.append(
                (
                    P.HEIGHT_TRUTH,
                    f"height ground truth ({units})",
                    colormap_rgba(ht, "viridis", 0, vmax, valid=sub.valid)[..., :3],
                )
            )
        out.append(
            (P.HEIGHT, f"height prediction ({units})", colormap_rgba(hp, "viridis", 0, vmax, valid=sub.valid)[..., :3])
        )
        if ht is not None:
            err = hp - ht
            lim = max(float(np.percentile(np.abs(err[sub.valid]), 98)) if sub.valid.any() else 1.0, 1e-6)
            out.append(
                (
                    P.HEIGHT_ERROR,
                    f"height error pred − truth (±{lim:.2f} {units})",
                    colormap_rgba(err, "RdBu_r", -lim, lim, valid=sub.valid)[..., :3],
                )
            )
    if "entropy" in heads:
        out.append(
            (
                P.ENTROPY,
                "uncertainty: predictive entropy",
                colormap_rgba(heads["entropy"], "viridis", 0, None, valid=sub.valid)[..., :3],
            )
        )
    if "tta_var" in heads:
        out.append(
            (
                P.TTA_VARIANCE,
                "uncertainty: TTA variance",
                colormap_rgba(heads["tta_var"], "viridis", 0, None, valid=sub.valid)[..., :3],
            )
        )
    return [Panel(k, c, img) for k, c, img in out]


def swipe(
    left: np.ndarray, right: np.ndarray, fraction: float = 0.5, divider: tuple[int, int, int] = (255, 255, 0)
) -> np.ndarray:
    """Split view: ``left`` on the first ``fraction`` of the width, ``right`` after, a 2 px divider between.

    Args:
        left: ``(H, W, 3)`` uint8.
        right: ``(H, W, 3)`` uint8, the same size.
        fraction: Where the cut falls, 0-1 of the width (clipped).
        divider: RGB of the divider line.

    Returns:
        ``(H, W, 3)`` uint8.

    Raises:
        ValueError: The two images differ in size.
    """
    if left.shape != right.shape:
        raise ValueError(f"a swipe needs two images of one size; got {left.shape} and {right.shape}")
    w = left.shape[1]
    x = int(round(np.clip(fraction, 0, 1) * w))
    out = right.copy()
    out[:, :x] = left[:, :x]
    if 0 < x < w:
        out[:, max(x - 1, 0) : x + 1] = divider
    return out


def confusion_figure(
    cm: np.ndarray, names: list[str], normalise: bool = False, title: str = "", with_counts: bool = False
) -> Figure:
    """Confusion matrix plot (rows = ground truth, columns = prediction).

    Args:
        cm: ``(K, K)`` counts.
        names: ``K`` class names.
        normalise: Row-normalise (producer's accuracy on the diagonal).
        title: Axes title.
        with_counts: Print the pixel count under each normalised value (the report's one-figure form).

    Returns:
        A matplotlib Figure.
    """
    counts = np.asarray(cm, np.float64)
    m = counts
    if normalise:
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.nan_to_num(counts / counts.sum(1, keepdims=True))
    k = len(names)
    fig = Figure(figsize=(1.2 + 0.7 * k, 1.0 + 0.6 * k), dpi=100)
    ax = fig.add_subplot(111)
    im = ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(k), list(names), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), list(names), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title or ("row-normalised" if normalise else "counts"), fontsize=9)
    for i in range(k):
        for j in range(k):
            v = m[i, j]
            text = f"{v:.2f}" if normalise else f"{int(v)}"
            if normalise and with_counts:
                text += f"\n{int(counts[i, j]):,}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v > m.max() * 0.6 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def metrics_bar_figure(per_class: list[dict], keys: tuple[str, ...] = ("iou", "f1")) -> Figure:
    """Grouped bar chart of per-class metrics; returns a Figure."""
    fig = Figure(figsize=(6, 3), dpi=100)
    ax = fig.add_subplot(111)
    names = [c["name"] for c in per_class]
    x = np.arange(len(names))
    wdt = 0.8 / len(keys)
    for i, k in enumerate(keys):
        ax.bar(x + i * wdt, [np.nan_to_num(c.get(k, np.nan)) for c in per_class], wdt, label=k)
    ax.set_xticks(x + wdt * (len(keys) - 1) / 2, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def road_graph_figure(rgb: np.ndarray, g_gt, g_prop) -> Figure:
    """The two APLS road graphs over the image: ground truth green, prediction red, bridged gaps yellow.

    Args:
        rgb: ``(H, W, 3)`` uint8 image of the extent.
        g_gt: Ground-truth ``networkx.Graph`` (node ``xy`` in pixels of the extent).
        g_prop: Proposal graph, same coordinates; edges with ``bridge=True`` are drawn yellow.

    Returns:
        A matplotlib Figure.
    """
    from matplotlib.collections import LineCollection

    from rsviz.postprocess import graph_lines

    h, w = rgb.shape[:2]
    fig = Figure(figsize=(6, 6 * h / max(w, 1)), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(rgb)
    for g, colour, width in ((g_gt, "#2ecc40", 2.0), (g_prop, "#ff4136", 1.4)):
        lines = graph_lines(g)
        ax.add_collection(LineCollection([c for c, b in lines if not b], colors=colour, linewidths=width))
        ax.add_collection(LineCollection([c for c, b in lines if b], colors="#ffdc00", linewidths=2.5))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()
    return fig
