"""Measures: the metric families a task is scored with, each measured per image and pooled per split.

A :class:`Measure` turns one image's :class:`EvalInput` into *statistics* (counts, sums, or a
per-image value), combines the statistics of many images the way its metric's definition
requires, and computes its figures from them:

* pixel metrics (IoU, F1, OA, kappa): one confusion matrix summed over the split's pixels;
* object F1 (SpaceNet; Van Etten et al. 2018): TP / FP / FN summed over images;
* boundary F1 (Csurka et al., BMVC 2013), relaxed road F1 (Mnih & Hinton 2010), APLS (Van Etten
  et al. 2018) and reconstruction PSNR / SSIM: per-image values, averaged over images (NaN images,
  e.g. a tile without roads, left out), as each benchmark reports them;
* height errors: sums of the error, its square and its absolute value over all pixels;
* multi-label scores (micro / macro F1, mAP): every patch's probabilities and labels, scored together.

So a figure of one image and the same figure of a split come from the same code, and a split's
figure equals the one computed on all its images at once. A new metric is one subclass here plus
its place in a :class:`~rsviz.evaluation.tasks.TaskSpec`'s ``measures``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from rsviz.evaluation.results import ClassRow, Value
from rsviz.types import ClassInfo

#: Statistics of one measure: JSON-able numbers or lists of per-image values.
Stats = dict[str, Any]


@dataclass(frozen=True)
class EvalInput:
    """Everything a measure may look at for one image or extent (arrays on one pixel grid).

    Attributes:
        pred: ``(H, W)`` predicted class ids (255 = nodata) or heights; ``(L,)`` label probabilities for scenes.
        gt: ``(H, W)`` ground truth of the task's target (or ``(L,)`` {0, 1} labels).
        valid: ``(H, W)`` bool, pixels that count (nodata and unpredicted pixels already excluded).
        classes: The class legend (binary tasks: background, positive).
        ignore_index: Ground-truth id left out of pixel metrics, or None.
        gsd: Ground sampling distance, metres per pixel, or None when unknown.
        heads: Prediction heads by name (``probs`` ``(C, H, W)``, ``edge``, ``recon``...), possibly empty.
        image: ``(bands, H, W)`` input imagery (reconstruction), or None.
        gt_instances: ``(H, W)`` int ground-truth instance ids (one per footprint), or None.
        postprocess: The card's post-processing (:class:`~rsviz.models.card.PostprocessSpec`), or None.
        keep_artifacts: Whether measures should keep non-JSON objects (object matches, graphs).
    """

    pred: np.ndarray
    gt: np.ndarray
    valid: np.ndarray
    classes: tuple[ClassInfo, ...]
    ignore_index: int | None = None
    gsd: float | None = None
    heads: Mapping[str, np.ndarray] = field(default_factory=dict)
    image: np.ndarray | None = None
    gt_instances: np.ndarray | None = None
    postprocess: Any = None
    keep_artifacts: bool = False


@dataclass(frozen=True)
class Measured:
    """What :meth:`Measure.measure` returns: the statistics and, optionally, artifacts for display."""

    stats: Stats
    artifacts: dict[str, Any] = field(default_factory=dict)


def _mean(xs: Sequence[float]) -> float:
    a = np.asarray([np.nan if x is None else x for x in xs], np.float64)
    return float(np.nanmean(a)) if a.size and np.isfinite(a).any() else float("nan")


class Measure(ABC):
    """One metric family (see the module docstring)."""

    #: Key of the measure's statistics in :attr:`~rsviz.evaluation.results.EvalResult.stats`.
    name: str = ""

    def applies(self, x: EvalInput) -> bool:
        """Whether this image can be measured (e.g. the edge measure needs an ``edge`` head)."""
        return True

    @abstractmethod
    def measure(self, x: EvalInput) -> Measured:
        """Statistics of one image."""

    def combine(self, stats: Sequence[Mapping[str, Any]]) -> Stats:
        """Pool the statistics of several images: numbers and arrays are summed, lists (per-image values)
        concatenated."""
        out: Stats = {}
        for s in stats:
            for k, v in s.items():
                if k not in out:
                    out[k] = list(v) if isinstance(v, list) else v
                elif isinstance(v, list):
                    out[k] = out[k] + v
                else:
                    out[k] = out[k] + v
        return out

    @abstractmethod
    def values(self, stats: Stats) -> dict[str, Value]:
        """Figures from (pooled) statistics, under parameterised keys."""

    def params(self) -> dict[str, Any]:
        """The parameters of the figures (reported beside them)."""
        return {}


def _px(v: float) -> str:
    return f"{v:g}".replace(".", "p")


# --------------------------------------------------------------------------- pixel


class PixelMetrics(Measure):
    """Confusion-matrix metrics (binary: of the positive class; multiclass: per class and means).

    Binary keys: ``iou``, ``precision``, ``recall``, ``f1``, ``overall_accuracy``, ``kappa``.
    Multiclass keys: ``miou`` and ``mean_f1`` (means over the classes, ``ignore_index`` excluded, NaN
    classes left out), ``overall_accuracy``, ``kappa``, ``iou_<class>``, ``f1_<class>``.
    """

    name = "pixel"

    def __init__(
        self, num_classes: int, class_names: Sequence[str], *, binary: bool, ignore_index: int | None = None
    ) -> None:
        self.num_classes, self.class_names = num_classes, list(class_names)
        self.binary, self.ignore_index = binary, ignore_index

    def measure(self, x: EvalInput) -> Measured:
        from rsviz.metrics.pixel import ConfusionMatrix

        if self.binary:
            p, t = (x.pred == 1).astype(np.uint8), (x.gt > 0).astype(np.uint8)
        else:
            p, t = x.pred, x.gt
        cm = ConfusionMatrix(self.num_classes, None if self.binary else self.ignore_index, self.class_names)
        cm.update(p, t, x.valid)
        return Measured({"confusion": cm.matrix.copy()})

    def compute(self, stats: Mapping[str, Any]) -> dict[str, Any]:
        """The :meth:`~rsviz.metrics.pixel.ConfusionMatrix.compute` dict of pooled statistics."""
        from rsviz.metrics.pixel import ConfusionMatrix

        cm = ConfusionMatrix(self.num_classes, None if self.binary else self.ignore_index, self.class_names)
        cm.matrix = np.asarray(stats["confusion"], np.int64)
        return cm.compute()

    def values(self, stats: Stats) -> dict[str, Value]:
        r = self.compute(stats)
        if self.binary:
            from rsviz.metrics.pixel import positive_class_summary

            return dict(positive_class_summary(r))
        out: dict[str, Value] = {
            "miou": r["macro"]["iou"],
            "mean_f1": r["macro"]["f1"],
            "overall_accuracy": r["overall_accuracy"],
            "kappa": r["kappa"],
        }
        out.update({f"iou_{c['name']}": c["iou"] for c in r["per_class"]})
        out.update({f"f1_{c['name']}": c["f1"] for c in r["per_class"]})
        return out

    def rows(self, stats: Stats, boundary: Mapping[int, float] | None = None) -> tuple[ClassRow, ...]:
        """Per-class rows of pooled statistics; ``boundary`` gives each class id's boundary F1."""
        b = boundary or {}
        return tuple(
            ClassRow(c["id"], c["name"], c["iou"], c["precision"], c["recall"], c["f1"], c["support"], b.get(c["id"]))
            for c in self.compute(stats)["per_class"]
        )


class BoundaryF1(Measure):
    """BF score (Csurka et al., BMVC 2013) at a tolerance in pixels, a mean over images.

    Binary: ``boundary_f1_<t>px`` of the positive class. Multiclass: the same key is the mean over
    classes, and each class's value goes into its per-class row.
    """

    name = "boundary"

    def __init__(self, tolerance_px: float = 2.0, *, binary: bool, class_ids: Sequence[int] = ()) -> None:
        self.tolerance_px, self.binary, self.class_ids = float(tolerance_px), binary, list(class_ids)

    @property
    def key(self) -> str:
        """``boundary_f1_2px`` for a 2 px tolerance."""
        return f"boundary_f1_{_px(self.tolerance_px)}px"

    def measure(self, x: EvalInput) -> Measured:
        from rsviz.metrics.boundary import boundary_f1

        v = x.valid
        if self.binary:
            p, t = (x.pred == 1) & v, (x.gt > 0) & v
            return Measured({"f1": [boundary_f1(p, t, self.tolerance_px, valid=v)["f1"]]})
        m = v if x.ignore_index is None else v & (x.gt != x.ignore_index)
        return Measured(
            {
                f"f1_{c}": [boundary_f1((x.pred == c) & m, (x.gt == c) & m, self.tolerance_px, valid=m)["f1"]]
                for c in self.class_ids
            }
        )

    def per_class(self, stats: Stats) -> dict[int, float]:
        """Class id -> mean boundary F1 over images (multiclass), or ``{1: ...}`` (binary)."""
        if self.binary:
            return {1: _mean(stats.get("f1", []))}
        return {c: _mean(stats.get(f"f1_{c}", [])) for c in self.class_ids}

    def values(self, stats: Stats) -> dict[str, Value]:
        if self.binary:
            return {self.key: _mean(stats.get("f1", []))}
        return {self.key: _mean(list(self.per_class(stats).values()))}

    def params(self) -> dict[str, Any]:
        return {"boundary_tolerance_px": self.tolerance_px}


# --------------------------------------------------------------------------- buildings


def _false_positives_off_labels(match: Any) -> int:
    """False-positive instances that touch no ground-truth footprint at all (with OSM labels these are
    often buildings nobody mapped; a diagnostic of label completeness)."""
    from shapely.strtree import STRtree

    gts = [g for _, g, _ in match.tp] + list(match.fn)
    if not gts:
        return len(match.fp)
    tree = STRtree(gts)
    return sum(1 for q in match.fp if not any(q.intersects(gts[int(i)]) for i in tree.query(q)))


class ObjectF1(Measure):
    """SpaceNet object F1 at an IoU threshold: instances matched one to one, TP / FP / FN summed over images.

    Predicted instances come from the footprint probability with the card's instance
    post-processing when the prediction has a ``probs`` head, else from the 4-connected components
    of the class map; ground-truth instances are the footprints (or components). Objects under
    ``min_area_px`` pixels are dropped on both sides. Keys: ``object_f1_iou50``,
    ``object_precision_iou50``, ``object_recall_iou50``, ``object_tp``, ``object_fp``, ``object_fn``,
    ``object_fp_touching_no_label``.
    """

    name = "objects"

    def __init__(self, iou_threshold: float = 0.5, min_area_px: float = 10.0) -> None:
        self.iou_threshold, self.min_area_px = float(iou_threshold), float(min_area_px)

    @property
    def suffix(self) -> str:
        """``iou50`` for IoU 0.5."""
        return f"iou{round(self.iou_threshold * 100):d}"

    def measure(self, x: EvalInput) -> Measured:
        from rsviz.metrics.objects import object_f1

        inst = None
        if "probs" in x.heads:
            from rsviz.postprocess import instances_for

            inst = instances_for(x.heads, getattr(x.postprocess, "instances", None))
        scores, match = object_f1(
            x.pred == 1,
            x.gt > 0,
            valid=x.valid,
            iou_threshold=self.iou_threshold,
            min_area=self.min_area_px,
            pred_instances=inst,
            gt_instances=x.gt_instances,
        )
        stats = {
            "tp": int(scores["tp"]),
            "fp": int(scores["fp"]),
            "fn": int(scores["fn"]),
            "fp_touching_no_label": _false_positives_off_labels(match),
        }
        return Measured(stats, {"match": match} if x.keep_artifacts else {})

    def values(self, stats: Stats) -> dict[str, Value]:
        tp, fp, fn = stats["tp"], stats["fp"], stats["fn"]
        s = self.suffix
        return {
            f"object_f1_{s}": 2 * tp / max(2 * tp + fp + fn, 1),
            f"object_precision_{s}": tp / (tp + fp) if tp + fp else float("nan"),
            f"object_recall_{s}": tp / (tp + fn) if tp + fn else float("nan"),
            "object_tp": tp,
            "object_fp": fp,
            "object_fn": fn,
            "object_fp_touching_no_label": stats["fp_touching_no_label"],
        }

    def params(self) -> dict[str, Any]:
        return {"object_iou_threshold": self.iou_threshold, "object_min_area_px": self.min_area_px}


class EdgeHeadBoundaryF1(Measure):
    """BF score of the edge head (probability >= 0.5) against the footprint boundaries, a mean over images."""

    name = "edge_head"

    def __init__(self, tolerance_px: float = 2.0) -> None:
        self.tolerance_px = float(tolerance_px)

    def applies(self, x: EvalInput) -> bool:
        return "edge" in x.heads

    def measure(self, x: EvalInput) -> Measured:
        from rsviz.metrics.boundary import boundary_f1

        gt = x.gt > 0  # the footprints; their boundaries are what the edge head should find
        return Measured(
            {"f1": [boundary_f1(x.heads["edge"] >= 0.5, gt, self.tolerance_px, valid=x.valid, is_boundary=True)["f1"]]}
        )

    def values(self, stats: Stats) -> dict[str, Value]:
        return {f"edge_head_boundary_f1_{_px(self.tolerance_px)}px": _mean(stats["f1"])}


class Reconstruction(Measure):
    """PSNR (dB), SSIM and MAE of the reconstruction head against the input, means over images."""

    name = "reconstruction"

    def applies(self, x: EvalInput) -> bool:
        return "recon" in x.heads and x.image is not None

    def measure(self, x: EvalInput) -> Measured:
        from rsviz.metrics.reconstruction import reconstruction_metrics

        r = x.heads["recon"]
        assert x.image is not None
        m = reconstruction_metrics(r, x.image[: r.shape[0]])
        return Measured({k: [float(v)] for k, v in m.items()})

    def values(self, stats: Stats) -> dict[str, Value]:
        return {f"recon_{k}": _mean(v) for k, v in stats.items()}


# --------------------------------------------------------------------------- roads


class RelaxedF1(Measure):
    """Relaxed road precision / recall / F1 within ``rho`` pixels (Mnih & Hinton 2010), means over images."""

    name = "relaxed"

    def __init__(self, rho_px: float = 3.0) -> None:
        self.rho_px = float(rho_px)

    def measure(self, x: EvalInput) -> Measured:
        from rsviz.metrics.roads import relaxed_precision_recall

        r = relaxed_precision_recall(x.pred == 1, x.gt > 0, self.rho_px, valid=x.valid)
        return Measured({k: [float(r[k])] for k in ("precision", "recall", "f1")})

    def values(self, stats: Stats) -> dict[str, Value]:
        s = _px(self.rho_px)
        return {f"relaxed_{k}_{s}px": _mean(stats[k]) for k in ("precision", "recall", "f1")}

    def params(self) -> dict[str, Any]:
        return {"relaxed_rho_px": self.rho_px}


class APLS(Measure):
    """APLS of the road graphs (Van Etten et al. 2018; CosmiQ's reference algorithm), a mean over images.

    The proposal graph is extracted from the road probability (``probs`` head) with the card's
    road-graph settings, or from the class map with the defaults; both graphs are mask skeletons
    (:func:`rsviz.postprocess.road_graphs`) scored by :func:`rsviz.metrics.roads.apls` with the
    reference's parameters (control points at nodes and every 50, insertion within the buffer, paths of
    at least 0.001 both ways, harmonic mean).

    Keys: ``apls_4m`` is the SpaceNet definition, the graphs in metres (pixels times the image's GSD) with
    the 4 m buffer (:data:`rsviz.metrics.roads.SPACENET_BUFFER_M`), present when the GSD is known, with its
    two directions ``apls_gt_to_prop_4m`` and ``apls_prop_to_gt_4m``; ``apls_4px`` and ``apls_8px`` score
    the same graphs in pixels (every distance of the metric, buffer included, read as pixels).
    """

    name = "apls"

    def __init__(self, gsd: float | None, buffers_px: Sequence[float] = (4.0, 8.0)) -> None:
        from rsviz.metrics.roads import SPACENET_BUFFER_M

        #: ``(key, buffer in graph units, metres per pixel the graphs are scaled by)``.
        self.runs: list[tuple[str, float, float]] = [(f"apls_{_px(b)}px", float(b), 1.0) for b in buffers_px]
        if gsd:
            self.runs.append(("apls_4m", SPACENET_BUFFER_M, float(gsd)))

    @property
    def buffers(self) -> list[tuple[str, float]]:
        """``(key, buffer in pixels)`` of every figure."""
        return [(k, b / s) for k, b, s in self.runs]

    def score(self, graphs: tuple[Any, Any]) -> Stats:
        """Per-image statistics of one ``(ground truth, proposal)`` pair of pixel graphs."""
        from rsviz.metrics.roads import apls

        stats: Stats = {}
        for k, b, s in self.runs:
            r = apls(*graphs, buffer=b, scale=s)
            stats[k] = [float(r.apls)]
            if s != 1.0:
                sfx = k.removeprefix("apls_")
                stats[f"apls_gt_to_prop_{sfx}"] = [float(r.apls_gt_to_prop)]
                stats[f"apls_prop_to_gt_{sfx}"] = [float(r.apls_prop_to_gt)]
        return stats

    def measure(self, x: EvalInput) -> Measured:
        from rsviz.postprocess import road_graphs

        t = (x.gt > 0) & x.valid
        if "probs" in x.heads:
            prob, settings = x.heads["probs"][-1], getattr(x.postprocess, "road_graph", None)
        else:
            prob, settings = (x.pred == 1).astype(np.float32), None
        graphs = road_graphs(np.where(x.valid, prob, 0.0), t, settings or {})
        return Measured(self.score(graphs), {"graphs": graphs} if x.keep_artifacts else {})

    def values(self, stats: Stats) -> dict[str, Value]:
        return {k: _mean(v) for k, v in stats.items()}

    def params(self) -> dict[str, Any]:
        from rsviz.metrics.roads import APLS_DEFAULTS

        return {
            "apls_buffers_px": {k: round(b, 3) for k, b in self.buffers},
            "apls_reference": {k: v for k, v in APLS_DEFAULTS.items() if k != "buffer"},
        }


# --------------------------------------------------------------------------- height, scenes


class HeightErrors(Measure):
    """RMSE, MAE, bias and delta < 1.25 (Eigen et al. 2014) over all valid pixels of the split.

    Keys: ``rmse``, ``mae``, ``bias`` (in the height units), ``delta_1.25`` (share of pixels where both
    heights exceed ``eps`` with ratio < 1.25), ``pixels``.
    """

    name = "height"

    def __init__(self, eps: float = 1e-3) -> None:
        self.eps = eps

    def measure(self, x: EvalInput) -> Measured:
        from rsviz.metrics.height import height_error_sums

        return Measured(dict(height_error_sums(x.pred, x.gt, x.valid, self.eps)))

    def values(self, stats: Stats) -> dict[str, Value]:
        from rsviz.metrics.height import height_metrics_from_sums

        return dict(height_metrics_from_sums(stats))


class MultiLabel(Measure):
    """Micro / macro F1 at a threshold and mAP of image-level label probabilities, over all patches."""

    name = "multilabel"

    def __init__(self, label_names: Sequence[str], threshold: float = 0.5) -> None:
        self.label_names, self.threshold = list(label_names), float(threshold)

    def measure(self, x: EvalInput) -> Measured:
        return Measured(
            {
                "probs": [np.asarray(x.pred, np.float32).ravel().tolist()],
                "labels": [np.asarray(x.gt).astype(int).ravel().tolist()],
            }
        )

    def compute(self, stats: Mapping[str, Any]) -> dict[str, Any]:
        """The :func:`~rsviz.metrics.multilabel.multilabel_metrics` dict of pooled statistics."""
        from rsviz.metrics.multilabel import multilabel_metrics

        return multilabel_metrics(
            np.asarray(stats["probs"], np.float32), np.asarray(stats["labels"]), self.label_names, self.threshold
        )

    def values(self, stats: Stats) -> dict[str, Value]:
        r = self.compute(stats)
        return {
            "micro_f1": float(r["micro_f1"]),
            "macro_f1": float(r["macro_f1"]),
            "map": float(r["map"]),
            "patches": len(stats["probs"]),
        }

    def params(self) -> dict[str, Any]:
        return {"multilabel_threshold": self.threshold}
