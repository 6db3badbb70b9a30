"""STAC Machine Learning Model (MLM) descriptors of rsviz models, written and read with ``stac-model``.

Follows the MLM extension as ``stac-model`` 0.7.0 implements it (schema
``https://stac-extensions.github.io/mlm/v1.6.0/schema.json``). What a :class:`~rsviz.models.card.ModelCard`
says maps onto MLM fields as follows:

* ``input.bands`` -> ``mlm:input[0].bands``; tile size and band count -> ``mlm:input[0].input.shape``
  ``[-1, bands, tile, tile]`` (``dim_order`` batch, bands, height, width; ``data_type`` the raw dtype);
* the normalisation ``(raw / scale - mean) / std`` -> one ``z-score`` ``value_scaling`` per band with
  ``mean * scale`` and ``std * scale`` (the same map on raw values);
* each dense head -> one ``mlm:output`` (``semantic-segmentation`` for binary / multiclass heads,
  ``regression`` otherwise) with ``result.shape`` ``[-1, channels, tile, tile]``; the ``seg`` head carries the
  card's classes as ``classification:classes`` with ``color_hint`` (hex RGB without ``#``);
* a multi-label head -> one ``classification`` / ``scene-classification`` output with ``result.shape``
  ``[-1, labels]`` and the labels as classes;
* GSD range, overlap and each head's kind and units (``reconstruction`` and ``regression`` are both MLM
  ``regression``), which MLM has no field for, go to the item properties ``rsviz:gsd_range_m``,
  ``rsviz:overlap``, ``rsviz:heads`` and ``rsviz:task``; everything else (metrics, training data, post-processing) stays in ``card.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsviz.errors import ModelFolderError
from rsviz.models.card import ModelCard

#: File name of the MLM item in a model folder.
MLM_FILE = "mlm.json"
_DENSE = ("binary", "multiclass", "regression", "reconstruction")


@dataclass(frozen=True)
class MLMClass:
    """One output class: ``value`` (class id), ``name``, ``color`` (RGB 0-255) or None."""

    value: int
    name: str
    color: tuple[int, int, int] | None


@dataclass(frozen=True)
class MLMSummary:
    """What rsviz reads from an MLM item.

    Attributes:
        name: ``mlm:name``.
        architecture: ``mlm:architecture``.
        framework: ``mlm:framework``.
        tasks: ``mlm:tasks``.
        bands: Input band names, in model order.
        input_shape: ``mlm:input[0].input.shape`` (``-1`` = any).
        data_type: Input data type.
        value_scaling: ``(mean, stddev)`` per band of z-score scaling in raw units, or ``()``.
        outputs: ``(name, channels)`` per output.
        classes: Classes of the first output that has any.
        gsd_range_m: ``rsviz:gsd_range_m`` or None.
        tile_size: Height of the input shape when fixed, else None.
    """

    name: str
    architecture: str
    framework: str
    tasks: tuple[str, ...]
    bands: tuple[str, ...]
    input_shape: tuple[int, ...]
    data_type: str
    value_scaling: tuple[tuple[float, float], ...]
    outputs: tuple[tuple[str, int], ...]
    classes: tuple[MLMClass, ...] = field(default_factory=tuple)
    gsd_range_m: tuple[float, float] | None = None
    tile_size: int | None = None


def _task(kind: str) -> str:
    return "semantic-segmentation" if kind in ("binary", "multiclass") else "regression"


def card_to_mlm(card: ModelCard, weights: str, framework: str = "PyTorch", framework_version: str = "") -> Any:
    """Build an MLM STAC item (``pystac.Item``) for a model card.

    Args:
        card: The card.
        weights: Relative href of the weights file (``model.safetensors``, ``model.onnx``...).
        framework: ``mlm:framework`` (``PyTorch`` or ``ONNX``).
        framework_version: ``mlm:framework_version`` (default: the installed torch / onnxruntime).

    Returns:
        The ``pystac.Item`` with the MLM extension applied (``ItemMLModelExtension.item``).
    """
    import pystac
    import torch
    from stac_model.input import InputStructure, ModelInput
    from stac_model.output import MLMClassification, ModelOutput, ModelResult
    from stac_model.schema import MLModelExtension, MLModelProperties

    inp = card.input
    tile = inp.tile_size
    scaling = [
        {"type": "z-score", "mean": m * inp.scale, "stddev": s * inp.scale}
        for m, s in zip(inp.mean, inp.std, strict=True)
    ]
    model_input = ModelInput(
        name="image",
        bands=list(inp.bands),
        input=InputStructure(
            shape=[-1, len(inp.bands), tile, tile], dim_order=["batch", "bands", "height", "width"], data_type=inp.dtype
        ),
        value_scaling=scaling,
    )
    outputs = []
    for k, h in card.heads.items():
        classes = None
        if (k == "seg" or h.kind == "multilabel") and card.classes:
            classes = [MLMClassification(value=c.id, name=c.name, color_hint=c.hex.lstrip("#")) for c in card.classes]
        if h.kind == "multilabel":  # image level: one sigmoid score per label
            tasks, shape, dims = {"classification", "scene-classification"}, [-1, h.channels], ["batch", "class"]
        elif h.kind in _DENSE:
            tasks, shape = {_task(h.kind)}, [-1, h.channels, tile, tile]
            dims = ["batch", "channel", "height", "width"]
        else:
            continue
        outputs.append(
            ModelOutput(
                name=k,
                tasks=tasks,
                result=ModelResult(shape=shape, dim_order=dims, data_type="float32"),
                classes=classes,
                description=h.description or None,
            )
        )
    tasks = {t for o in outputs for t in o.tasks}
    version = framework_version or torch.__version__.split("+")[0]
    props = MLModelProperties(
        name=card.name,
        architecture=card.architecture,
        tasks=tasks,
        framework=framework,
        framework_version=version,
        input=[model_input],
        output=outputs,
        pretrained=True,
        pretrained_source=", ".join(str(t.get("dataset")) for t in card.training_data) or None,
    )
    lo, hi = inp.gsd_range_m
    item = pystac.Item(
        id=card.name,
        geometry=None,
        bbox=None,
        datetime=None,
        properties={
            "start_datetime": "1900-01-01T00:00:00Z",
            "end_datetime": "9999-01-01T00:00:00Z",
            "description": card.title,
            "rsviz:gsd_range_m": [lo, hi],
            "rsviz:overlap": inp.overlap,
            "rsviz:heads": {k: {"kind": h.kind, "units": h.units} for k, h in card.heads.items()},
            "rsviz:task": card.task,
        },
    )
    item.add_asset(
        "weights",
        pystac.Asset(
            href=weights,
            roles=["mlm:model", "mlm:weights", "data"],
            extra_fields={"mlm:artifact_type": artifact_type(weights)},
        ),
    )
    ext = MLModelExtension.ext(item, add_if_missing=True)
    ext.apply(props)
    add_classification_extension(item)
    return item


def add_classification_extension(item: Any) -> None:
    """List the STAC Classification extension in ``stac_extensions`` when an output uses its
    ``classification:classes`` field (a STAC item lists every extension whose fields it uses)."""
    from pystac.extensions.classification import ClassificationExtension

    outs = item.properties.get("mlm:output") or []
    uri = ClassificationExtension.get_schema_uri()
    if any("classification:classes" in o for o in outs) and uri not in item.stac_extensions:
        item.stac_extensions.append(uri)


#: ``mlm:artifact_type`` written for each runtime of :data:`rsviz.models.runtimes.RUNTIMES`.
RUNTIME_ARTIFACTS = {"onnx": "onnx", "torchscript": "torch.jit.save", "export": "torch.export.save"}


def artifact_type(weights: str) -> str:
    """``mlm:artifact_type`` of a weights file by its extension, as the runtimes take them
    (:data:`rsviz.models.runtimes.RUNTIMES`: ``onnx``, ``torch.jit.save``, ``torch.export.save``), else
    ``safetensors``."""
    from rsviz.models.runtimes import RUNTIMES

    suffix = Path(weights).suffix.lower()
    return next((RUNTIME_ARTIFACTS[rt] for rt, exts in RUNTIMES.items() if suffix in exts), "safetensors")


def write_mlm(card: ModelCard, directory: str | os.PathLike[str], weights: str = "model.safetensors") -> Path:
    """Write ``mlm.json`` for ``card`` into ``directory`` (weights asset ``weights``, a relative href); returns
    its path."""
    fw = "ONNX" if weights.endswith(".onnx") else "PyTorch"
    item = card_to_mlm(card, weights, framework=fw)
    p = Path(directory) / MLM_FILE
    p.write_text(json.dumps(item.to_dict(include_self_link=False), indent=2) + "\n", encoding="utf-8")
    return p


def _rgb(hexstr: str) -> tuple[int, int, int]:
    return int(hexstr[0:2], 16), int(hexstr[2:4], 16), int(hexstr[4:6], 16)


def _loc(err: Any) -> str:
    out = ""
    for part in err.get("loc", ()):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_mlm(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Any]:
    """Read an MLM item and validate its ``mlm:`` fields (``stac-model``'s ``MLModelProperties``).

    Returns:
        ``(item, properties)``: the item as a JSON dict, and the validated ``MLModelProperties``.

    Raises:
        ModelFolderError: Not JSON, not an item, or an invalid MLM field: the message names the field
            (``mlm:input[0].bands``...) and quotes the bad value.
    """
    from pydantic import ValidationError
    from stac_model.schema import MLModelProperties

    p = Path(path)
    try:
        item = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{p} cannot be read as JSON ({exc}); write the MLM item again") from exc
    props = item.get("properties") if isinstance(item, dict) else None
    if not isinstance(props, dict):
        raise ModelFolderError(f"{p} is not a STAC item (no 'properties' object)")
    mlm = {k.removeprefix("mlm:"): v for k, v in props.items() if k.startswith("mlm:")}
    try:
        m = MLModelProperties.model_validate(mlm)
    except ValidationError as exc:
        probs = "; ".join(f"mlm:{_loc(e)}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()[:5])
        raise ModelFolderError(f"{p}: invalid MLM descriptor: {probs}") from exc
    return item, m


def read_mlm(path: str | os.PathLike[str]) -> MLMSummary:
    """Read and validate an MLM item (:func:`load_mlm`) and summarise what rsviz uses of it.

    Raises:
        ModelFolderError: As :func:`load_mlm`.
    """
    return summarise_mlm(*load_mlm(path))


def summarise_mlm(item: dict[str, Any], m: Any) -> MLMSummary:
    """:class:`MLMSummary` of an item and its validated ``MLModelProperties`` (:func:`load_mlm`)."""
    props = item["properties"]
    inp = m.input[0]
    shape = tuple(int(s) for s in inp.input.shape)
    scaling = tuple(
        (float(v.mean), float(v.stddev)) for v in (inp.value_scaling or []) if getattr(v, "type", "") == "z-score"
    )
    classes: tuple[MLMClass, ...] = ()
    for o in m.output:
        if o.classes:
            classes = tuple(
                MLMClass(
                    int(c.value),
                    str(c.name),
                    _rgb(str(c.color_hint)) if c.color_hint else None,
                )
                for c in o.classes
            )
            break
    gsd = props.get("rsviz:gsd_range_m")
    h = shape[2] if len(shape) == 4 and shape[2] > 0 else None
    return MLMSummary(
        name=m.name,
        architecture=m.architecture,
        framework=str(m.framework),
        tasks=tuple(sorted(str(t) for t in m.tasks)),
        bands=tuple(str(b) if isinstance(b, str) else str(getattr(b, "name", b)) for b in inp.bands),
        input_shape=shape,
        data_type=str(inp.input.data_type),
        value_scaling=scaling,
        outputs=tuple((o.name, int(o.result.shape[1])) for o in m.output),
        classes=classes,
        gsd_range_m=(float(gsd[0]), float(gsd[1])) if isinstance(gsd, list) and len(gsd) == 2 else None,
        tile_size=h,
    )
