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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rsviz.errors import ModelFolderError
from rsviz.postprocess.instances import InstanceSettings
from rsviz.postprocess.road_graph import RoadGraphSettings
from rsviz.types import ClassInfo, HeadKind, Task


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


@dataclass(frozen=True)
class PostprocessSpec:
    """Post-processing a card's figures are measured with (chosen on val), typed.

    Attributes:
        instances: Building-instance splitting (:class:`~rsviz.postprocess.InstanceSettings`), or None.
        road_graph: APLS proposal-graph extraction (:class:`~rsviz.postprocess.RoadGraphSettings`), or None.
    """

    instances: InstanceSettings | None = None
    road_graph: RoadGraphSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; absent settings are left out."""
        out: dict[str, Any] = {}
        if self.instances is not None:
            out["instances"] = self.instances.to_dict()
        if self.road_graph is not None:
            out["road_graph"] = self.road_graph.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PostprocessSpec:
        """From the card's ``postprocess`` dict.

        Raises:
            ValueError: Unknown keys (the message names them and the valid ones).
        """
        d = dict(d or {})
        bad = sorted(set(d) - {"instances", "road_graph"})
        if bad:
            raise ValueError(f"unknown postprocess key(s) {bad} in card.json; valid: instances, road_graph")
        return cls(
            InstanceSettings.from_dict(d["instances"]) if d.get("instances") is not None else None,
            RoadGraphSettings.from_dict(d["road_graph"]) if d.get("road_graph") is not None else None,
        )


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
        extra: Anything else (learned task weights, speed, baseline comparison); nothing that changes
            what the model outputs or how it is scored.
        licence: Licence of the weights.
        postprocess: Typed post-processing the card's figures use (:class:`PostprocessSpec`).
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
    postprocess: PostprocessSpec = field(default_factory=PostprocessSpec)

    def __post_init__(self) -> None:
        # settings that older cards (and callers) keep in ``extra`` move to the typed ``postprocess``
        self.extra = dict(self.extra)  # the caller's dict is left as it is
        moved = {
            new: self.extra.pop(old)
            for old, new in (("instance_postprocess", "instances"), ("road_graph", "road_graph"))
            if old in self.extra
        }
        if moved:
            # heterogeneous: InstanceSettings for ``instances``, RoadGraphSettings for ``road_graph``
            changes: dict[str, Any] = {
                k: (InstanceSettings if k == "instances" else RoadGraphSettings).from_dict(v)
                if isinstance(v, dict)
                else v
                for k, v in moved.items()
                if v is not None
            }
            self.postprocess = replace(self.postprocess, **changes)

    @property
    def task_kind(self) -> Task:
        """:attr:`task` as a :class:`~rsviz.types.Task`."""
        return Task.parse(self.task)

    def head_kind(self, head: str = "seg") -> HeadKind | None:
        """Kind of head ``head`` as a :class:`~rsviz.types.HeadKind`, or None when the card has no such head."""
        h = self.heads.get(head)
        return HeadKind(h.kind) if h is not None else None

    @property
    def in_channels(self) -> int:
        """Number of input bands."""
        return len(self.input.bands)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        d = asdict(self)
        d["classes"] = [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes]
        d["postprocess"] = self.postprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Build a card from its JSON dict (unknown keys raise TypeError naming them).

        Cards written before :class:`PostprocessSpec` kept the settings in ``extra.instance_postprocess``
        and ``extra.road_graph``; they are read from there.
        """
        d = dict(d)
        d["postprocess"] = PostprocessSpec.from_dict(d.get("postprocess"))
        d["heads"] = {k: HeadSpec(**v) for k, v in d["heads"].items()}
        d["input"] = InputSpec(**d["input"])
        d["classes"] = [ClassInfo(int(c["id"]), c["name"], tuple(c["color"])) for c in d.get("classes", [])]
        return cls(**d)

    def save(self, path: str | Path) -> None:
        """Write ``card.json``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """Read ``card.json``.

        Raises:
            ModelFolderError: The file is unreadable, not JSON (e.g. cut off), or lacks or misnames keys;
                the message names the file.
        """
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFolderError(
                f"model card {path} cannot be read ({exc}); restore the model folder's card.json"
            ) from exc
        if not isinstance(d, dict):
            raise ModelFolderError(f"model card {path} is a JSON {type(d).__name__}, not an object")
        try:
            return cls.from_dict(d)
        except KeyError as exc:
            raise ModelFolderError(f"model card {path} lacks the key {exc}; restore the card.json") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelFolderError(f"model card {path} is invalid ({exc}); fix or restore the card.json") from exc


def postprocess_of(card: ModelCard) -> InstanceSettings:
    """The card's building-instance post-processing, or the defaults when it states none."""
    return card.postprocess.instances or InstanceSettings()


def road_graph_of(card: ModelCard) -> RoadGraphSettings:
    """The card's APLS road-graph extraction, or the defaults when it states none."""
    return card.postprocess.road_graph or RoadGraphSettings()
