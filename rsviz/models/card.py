"""Model cards: machine-readable metadata that travels with bundled weights.

A bundled model lives in ``weights/<name>/`` (segmentation_models.pytorch
``save_pretrained`` layout)::

    config.json         architecture config (``{"arch": ..., **kwargs}``)
    model.safetensors   weights (fp16 or fp32)
    card.json           this card
    README.md           short human-readable card
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rsviz.datasets.base import ClassInfo


@dataclass
class InputSpec:
    """What the model expects as input.

    Attributes:
        bands: Band names in input order (e.g. ``["red", "green", "blue"]``).
        dtype: Source dtype the statistics refer to (``"uint8"``, ``"uint16"``...).
        scale: Divisor applied first (255 for 8-bit imagery, 10000 for S2 L2A reflectance).
        mean: Per-band mean subtracted after scaling.
        std: Per-band std divided after centring.
        gsd_range_m: ``[min, max]`` ground sampling distance seen in training, metres.
        tile_size: Default sliding-window tile, pixels (multiple of 32).
        overlap: Default tile overlap fraction in ``[0, 1)``.
        tta: Whether test-time augmentation is on by default (chosen on validation data; the card's
            metrics are measured with this setting).
        context_px: Context margin the card's metrics are measured with, pixels: each evaluated image
            that has georeferenced neighbours is predicted inside a mosaic with this much of their
            imagery around it (:mod:`rsviz.inference.context`); 0 predicts each image alone.
    """

    bands: list[str]
    dtype: str = "uint8"
    scale: float = 255.0
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    gsd_range_m: list[float] = field(default_factory=lambda: [0.05, 1.0])
    tile_size: int = 512
    overlap: float = 0.25
    tta: bool = False
    context_px: int = 0


@dataclass
class HeadSpec:
    """One output head.

    Attributes:
        kind: ``binary`` (sigmoid), ``multiclass`` (softmax), ``multilabel`` (sigmoid per
            label, image level), ``regression`` or ``reconstruction``.
        channels: Output channels.
        units: Units of a regression head (``"m"``, ``"relative"``) or ``""``.
        description: What the head predicts.
    """

    kind: str
    channels: int = 1
    units: str = ""
    description: str = ""


@dataclass
class ModelCard:
    """Machine-readable model card.

    Attributes:
        name: Registry name (folder name).
        title: Human title.
        task: ``buildings``, ``landcover``, ``roads``, ``height`` or ``scene``.
        architecture: Human description of the network.
        paper: Citation of the method reproduced.
        heads: Head name -> :class:`HeadSpec`; ``seg`` is the primary head.
        input: :class:`InputSpec`.
        classes: Classes of the ``seg`` head with names and colours (id = channel for
            multiclass; for binary heads id 1 is the positive class).
        ignore_index: Class id excluded from metrics, or None.
        training_data: ``[{"dataset", "splits", "licence", "attribution"}]``.
        recipe: Training recipe (config as run).
        metrics: Measured metrics per split, e.g. ``{"banepa-test": {"iou": 0.71}}``.
        extra: Anything else (learned task weights, speed, baseline comparison).
        licence: Licence of the weights.
    """

    name: str
    title: str
    task: str
    architecture: str
    paper: str
    heads: dict[str, HeadSpec]
    input: InputSpec
    classes: list[ClassInfo] = field(default_factory=list)
    ignore_index: int | None = None
    training_data: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    licence: str = "CC-BY-4.0"

    @property
    def in_channels(self) -> int:
        """Number of input bands."""
        return len(self.input.bands)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        d = asdict(self)
        d["classes"] = [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Build a card from its JSON dict (unknown keys raise TypeError naming them)."""
        d = dict(d)
        d["heads"] = {k: HeadSpec(**v) for k, v in d["heads"].items()}
        d["input"] = InputSpec(**d["input"])
        d["classes"] = [ClassInfo(int(c["id"]), c["name"], tuple(c["color"])) for c in d.get("classes", [])]
        return cls(**d)

    def save(self, path: str | Path) -> None:
        """Write ``card.json``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """Read ``card.json``."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


#: Building-instance post-processing used when a card states none (see rsviz.metrics.objects.split_instances).
DEFAULT_POSTPROCESS = {"method": "auto", "threshold": 0.5, "edge_threshold": 0.5, "min_seed_px": 8, "min_distance": 10,
                      "min_instance_px": 0, "merge_below": 0.0, "keep_edge_instances": False}


def postprocess_of(card: ModelCard) -> dict:
    """The card's instance post-processing parameters (``extra.instance_postprocess``) or the defaults."""
    return {**DEFAULT_POSTPROCESS, **(card.extra.get("instance_postprocess") or {})}


#: Road-graph extraction for APLS when a card states none (``extra.road_graph``; see
#: rsviz.metrics.roads.road_graph_apls): road where probability >= ``threshold``, closing radius
#: ``closing_px``, spurs under ``min_spur`` px pruned, no gap bridging.
ROAD_GRAPH_DEFAULTS = {"threshold": 0.5, "closing_px": 2, "min_spur": 20.0, "bridge_px": 0.0, "bridge_angle": 30.0}


def road_graph_of(card: ModelCard) -> dict:
    """The card's road-graph parameters (``extra.road_graph``) or the defaults."""
    return {**ROAD_GRAPH_DEFAULTS, **(card.extra.get("road_graph") or {})}
