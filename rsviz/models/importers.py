"""Model folders from other tools' descriptors: an MLM item alone, Deepness ONNX metadata, torchgeo ``meta``.

rsviz loads a model folder from ``card.json`` + ``config.json`` + weights (:mod:`rsviz.models.api`). A model
made elsewhere usually comes with another descriptor; this module turns each into a card and a config:

* **STAC MLM** (``mlm.json``, the STAC Machine Learning Model extension, as ``stac-model`` 0.7.0 validates
  it): :func:`card_from_mlm` reads bands, the value scaling, the input shape (tile size), the outputs (one head
  each; the first segmentation output becomes ``seg``), classes with their ``color_hint``, the weights asset
  (``mlm:artifact_type`` or the file extension names the runtime) and, where present, ``gsd`` or
  ``rsviz:gsd_range_m`` and ``rsviz:overlap``. A folder holding only ``mlm.json`` and an ONNX, TorchScript or
  ``.pt2`` file therefore loads and registers (:func:`rsviz.models.store.add_model` writes the card beside it).
* **Deepness** (the QGIS plugin; metadata in the ONNX file's ``metadata_props``, keys ``model_type``,
  ``class_names``, ``resolution`` in cm/px, ``tiles_size``, ``tiles_overlap`` in %, ``seg_thresh``,
  ``standardization_mean`` / ``standardization_std``): :func:`read_deepness` and :func:`mlm_from_deepness`.
  Deepness feeds 8-bit RGB divided by 255 (then standardised when those keys are set) and its segmentors output
  probabilities (softmax or sigmoid inside the graph); the folder's ``config.json`` says so
  (``probability_heads``), and :class:`rsviz.models.runtimes.RuntimeNet` turns them back into logits.
* **torchgeo** (``WeightsEnum.meta``: ``model``, ``encoder``, ``in_chans``, ``num_classes``, ``bands``,
  ``classes``, ``resolution`` in m, ``input_shape``, ``dataset``, ``publication``, ``license``; the normalisation
  is the weights' ``transforms``, passed here as ``mean`` / ``std`` in raw units): :func:`import_torchgeo` builds
  the smp model and checks the state dict fits (``torch.load(weights_only=True)``).

Value scaling maps onto :class:`~rsviz.models.card.InputSpec`'s ``(raw / scale - mean) / std`` exactly for the
MLM types ``z-score``, ``min-max``, ``scale`` and ``offset`` (one entry per band or one for all); ``clip`` and
``processing`` have no such form and are refused, naming the field.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rsviz.errors import ModelFolderError
from rsviz.models.card import HeadSpec, InputSpec, ModelCard
from rsviz.models.mlm import MLM_FILE, add_classification_extension, write_mlm
from rsviz.types import ClassInfo, Task

#: Divisor applied before mean/std for a raw data type (what rsviz's cards use), else 1.
DTYPE_SCALE = {"uint8": 255.0, "uint16": 10000.0}
#: GSD range given to a model whose descriptor states none, metres: wide enough that inputs are never resampled.
ANY_GSD = (0.01, 10000.0)
#: MLM ``mlm:artifact_type`` -> rsviz runtime.
ARTIFACT_RUNTIMES = {
    "onnx": "onnx",
    "torch.jit.script": "torchscript",
    "torch.jit.trace": "torchscript",
    "torch.jit.save": "torchscript",
    "torch.export.save": "export",
    "torch.export.export": "export",
    "torch.export": "export",
    "safetensors": "pytorch",
}
_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
_SEG_TASKS = {"semantic-segmentation", "segmentation", "instance-segmentation", "panoptic-segmentation"}
_SCENE_TASKS = {"classification", "scene-classification"}


def _colour(i: int) -> tuple[int, int, int]:
    return (0, 0, 0) if i == 0 else _PALETTE[(i - 1) % len(_PALETTE)]


def _scaling(entries: Sequence[Any], bands: int, dtype: str) -> tuple[float, list[float], list[float]]:
    """MLM value scaling -> ``(scale, mean, std)`` of :class:`InputSpec` (exact for the four linear types)."""
    scale = DTYPE_SCALE.get(dtype, 1.0)
    if not entries:
        return 1.0, [0.0] * bands, [1.0] * bands
    if len(entries) not in (1, bands):
        raise ModelFolderError(
            f"mlm:input[0].value_scaling has {len(entries)} entries for {bands} bands; give one per band or one"
        )
    mean, std = [], []
    for i, e in enumerate(entries if len(entries) == bands else list(entries) * bands):
        kind = str(getattr(e, "type", ""))
        if kind == "z-score":
            m, s = float(e.mean), float(e.stddev)
        elif kind == "min-max":
            m, s = float(e.minimum), float(e.maximum) - float(e.minimum)
        elif kind == "scale":
            m, s = 0.0, float(e.value)
        elif kind == "offset":
            m, s = float(e.value), 1.0
        else:
            raise ModelFolderError(
                f"mlm:input[0].value_scaling[{i % len(entries)}].type is {kind!r}: rsviz applies z-score, min-max, "
                "scale and offset; write the scaling as one of those"
            )
        if s == 0:
            raise ModelFolderError(f"mlm:input[0].value_scaling[{i % len(entries)}] divides by zero (got {e!r})")
        mean.append(m / scale)
        std.append(s / scale)
    return scale, mean, std


def _weights_asset(item: Mapping[str, Any], folder: Path) -> tuple[str, Path]:
    """``(runtime, file)`` of the item's ``mlm:model`` asset, which must lie in ``folder``."""
    from rsviz.models.runtimes import runtime_for

    assets = item.get("assets") or {}
    found = [(k, a) for k, a in assets.items() if isinstance(a, dict) and "mlm:model" in (a.get("roles") or [])]
    if not found:
        raise ModelFolderError(
            f"{folder / MLM_FILE} has no asset with the role 'mlm:model'; add one whose href is the weights file"
        )
    key, asset = found[0]
    href = str(asset.get("href", ""))
    p = Path(href)
    if "://" in href or p.is_absolute() or not (folder / p).resolve().is_relative_to(folder.resolve()):
        raise ModelFolderError(
            f"assets.{key}.href is {href!r}: it must be a file inside the model folder (a relative path)"
        )
    path = folder / p
    if not path.is_file():
        raise ModelFolderError(f"assets.{key}.href names {href!r}, which is not in {folder}; copy it there")
    art = str(asset.get("mlm:artifact_type", "")).strip()
    runtime = ARTIFACT_RUNTIMES.get(art) if art else None
    if runtime is None:
        runtime = "pytorch" if path.suffix == ".safetensors" else runtime_for(path)
    return runtime, path


@dataclass(frozen=True)
class MLMModel:
    """A card and a config derived from an MLM item (:func:`card_from_mlm`).

    Attributes:
        card: The model card (no metrics: none are measured yet).
        config: ``config.json`` content (``runtime``, ``file``, ``heads``, ``probability_heads``) or, for a
            safetensors file, the folder's own ``config.json``.
    """

    card: ModelCard
    config: dict[str, Any]


def _task(heads: Mapping[str, HeadSpec], classes: Sequence[ClassInfo], text: str) -> str:
    kinds = {h.kind for h in heads.values()}
    if "multilabel" in kinds:
        return "scene"
    if heads.get("seg") is None and "regression" in kinds:
        return "height"
    seg = heads.get("seg")
    if seg is not None and seg.kind == "multiclass":
        return "landcover"
    words = (text + " " + " ".join(c.name for c in classes)).lower()
    return "roads" if "road" in words else "buildings"


def card_from_mlm(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    task: str | None = None,
    config: dict[str, Any] | None = None,
) -> MLMModel:
    """Build the card and config of a model folder whose descriptor is its MLM item.

    Args:
        path: The ``mlm.json`` file; the weights asset must be in its folder.
        name: Registry name (default: ``mlm:name``).
        task: rsviz task (``buildings``, ``roads``, ``landcover``, ``height``, ``scene``); default: inferred from
            the outputs (several classes: landcover; one: buildings, or roads when a class or the name says so).
        config: Extra ``config.json`` keys (e.g. ``probability_heads``).

    Returns:
        :class:`MLMModel`.

    Raises:
        ModelFolderError: An invalid item (the message names the MLM field), a scaling rsviz cannot apply, a
            weights asset outside the folder or missing, or safetensors weights with no ``config.json``.
    """
    from rsviz.models.mlm import load_mlm, summarise_mlm

    p = Path(path)
    item, m = load_mlm(p)  # validates; raises naming the field
    summary = summarise_mlm(item, m)
    props = item["properties"]
    inp = m.input[0]
    bands = list(summary.bands)
    shape = summary.input_shape
    if not bands:
        if len(shape) == 4 and shape[1] > 0:
            bands = [f"band{i + 1}" for i in range(shape[1])]
        else:
            raise ModelFolderError(f"{p}: mlm:input[0] names no bands and its shape {list(shape)} gives no count")
    if len(shape) == 4 and shape[1] > 0 and shape[1] != len(bands):
        raise ModelFolderError(
            f"{p}: mlm:input[0].input.shape has {shape[1]} bands but mlm:input[0].bands lists {len(bands)}"
        )
    dtype = summary.data_type if summary.data_type in ("uint8", "uint16", "int16", "float32") else "float32"
    scale, mean, std = _scaling(list(inp.value_scaling or []), len(bands), dtype)
    heads: dict[str, HeadSpec] = {}
    classes: list[ClassInfo] = []
    order: list[str] = []
    for i, o in enumerate(m.output):
        tasks = {str(t) for t in o.tasks}
        rshape = [int(s) for s in o.result.shape]
        channels = rshape[1] if len(rshape) >= 2 and rshape[1] > 0 else len(o.classes or []) or 1
        if tasks & _SCENE_TASKS and len(rshape) == 2:
            kind, key = "multilabel", "labels"
        elif tasks & _SEG_TASKS:
            kind, key = ("binary" if channels == 1 else "multiclass"), ("seg" if "seg" not in heads else o.name)
        elif "regression" in tasks:
            kind, key = "regression", o.name
        else:
            raise ModelFolderError(
                f"{p}: mlm:output[{i}].tasks is {sorted(tasks)}; rsviz runs semantic-segmentation, regression "
                "and (multi-label) classification outputs"
            )
        if key in heads:
            raise ModelFolderError(f"{p}: two outputs map to the head {key!r}; name mlm:output[{i}].name uniquely")
        hint = (props.get("rsviz:heads") or {}).get(o.name)
        units = ""
        if isinstance(hint, dict) and hint.get("kind") in (
            "binary",
            "multiclass",
            "multilabel",
            "regression",
            "reconstruction",
        ):
            kind, units, key = str(hint["kind"]), str(hint.get("units", "")), o.name  # rsviz's own item
        heads[key] = HeadSpec(
            kind=kind, channels=channels, units=units, description=str(getattr(o, "description", None) or "")
        )
        order.append(key)
        if not classes and o.classes:
            classes = [
                ClassInfo(int(c.value), str(c.name), _hex(c.color_hint) if c.color_hint else _colour(int(c.value)))
                for c in o.classes
            ]
    seg = heads.get("seg")
    if seg is not None and seg.kind == "binary" and not classes:
        classes = [ClassInfo(0, "background", (0, 0, 0)), ClassInfo(1, "foreground", (230, 25, 75))]
    gsd: tuple[float, float] = ANY_GSD
    if summary.gsd_range_m is not None:
        gsd = summary.gsd_range_m
    elif isinstance(props.get("gsd"), int | float) and float(props["gsd"]) > 0:
        gsd = (float(props["gsd"]), float(props["gsd"]))
    tile = summary.tile_size or 512
    overlap = props.get("rsviz:overlap", 0.25)
    runtime, wfile = _weights_asset(item, p.parent)
    folder_cfg = p.parent / "config.json"
    if runtime == "pytorch":
        if not folder_cfg.is_file():
            raise ModelFolderError(
                f"{p.parent}: safetensors weights need a config.json naming the architecture "
                '({"arch": "smp", "smp_arch": "Unet", "encoder_name": ..., "in_channels": ..., "classes": ...})'
            )
        cfg: dict[str, Any] = json.loads(folder_cfg.read_text(encoding="utf-8"))
        if wfile.name != "model.safetensors":
            raise ModelFolderError(f"{p.parent}: rename {wfile.name} to model.safetensors (and the asset's href)")
    else:
        cfg = {"runtime": runtime, "file": wfile.name, "heads": order}
    cfg.update(config or {})
    text = f"{summary.name} {summary.architecture} {props.get('description', '')}"
    card = ModelCard(
        name=name or summary.name,
        title=str(props.get("description") or props.get("title") or summary.name),
        task=str(Task.parse(task or str(props.get("rsviz:task") or _task(heads, classes, text)))),
        architecture=summary.architecture,
        paper=str(props.get("sci:citation", "")),
        heads=heads,
        input=InputSpec(
            bands=bands,
            dtype=dtype,
            scale=scale,
            mean=mean,
            std=std,
            gsd_range_m=[float(gsd[0]), float(gsd[1])],
            tile_size=int(tile),
            overlap=float(overlap),
        ),
        classes=classes,
        licence=str(props.get("license") or item.get("license") or "unknown"),
        extra={"descriptor": "mlm", "framework": summary.framework},
    )
    return MLMModel(card, cfg)


def _hex(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def write_card_from_mlm(folder: str | os.PathLike[str], **kw: Any) -> MLMModel:
    """Write ``card.json`` and (for runtime files) ``config.json`` derived from ``folder/mlm.json``.

    Args:
        folder: The model folder.
        **kw: As :func:`card_from_mlm`.

    Raises:
        ModelFolderError: As :func:`card_from_mlm`.
    """
    d = Path(folder)
    mm = card_from_mlm(d / MLM_FILE, **kw)
    mm.card.save(d / "card.json")
    (d / "config.json").write_text(json.dumps(mm.config, indent=2) + "\n", encoding="utf-8")
    return mm


# --------------------------------------------------------------------------------------------------- Deepness


@dataclass(frozen=True)
class DeepnessMetadata:
    """Deepness model metadata read from an ONNX file's ``metadata_props``.

    Attributes:
        model_type: ``Segmentor``, ``Regressor`` or ``Detector``.
        class_names: Class id -> name (``{0: "background", 1: "field"}``), or empty.
        resolution_cm: Ground resolution the model was trained at, cm/px, or None.
        tiles_size: Tile side, px, or None.
        tiles_overlap_pct: Tile overlap, percent of the tile, or None.
        seg_thresh: Segmentor confidence threshold, or None.
        mean: ``standardization_mean`` (on 0-1 values) per band, or ().
        std: ``standardization_std`` per band, or ().
        input_shape: The ONNX input's shape (``-1`` where dynamic).
        outputs: ``(name, shape)`` per ONNX output (``-1`` where dynamic).
    """

    model_type: str
    class_names: dict[int, str]
    resolution_cm: float | None
    tiles_size: int | None
    tiles_overlap_pct: float | None
    seg_thresh: float | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_shape: tuple[int, ...]
    outputs: tuple[tuple[str, tuple[int, ...]], ...]


def _meta_value(props: Mapping[str, str], key: str, path: Path) -> Any:
    raw = props.get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        try:
            import ast

            return ast.literal_eval(raw)  # Deepness writes dicts with Python quoting; literals only, never code
        except (ValueError, SyntaxError) as exc:
            raise ModelFolderError(f"{path.name}: metadata {key!r} is not JSON (got {raw[:80]!r})") from exc


def _dims(value_info: Any) -> tuple[int, ...]:
    return tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim)


def read_deepness(path: str | os.PathLike[str]) -> DeepnessMetadata:
    """Read Deepness metadata from an ONNX model (parsed, checked by :func:`rsviz.models.runtimes.check_onnx`).

    Raises:
        ModelFolderError: Not a safe ONNX model; a metadata value of the wrong type (the message names the key and
            quotes the value); ``model_type`` ``Detector`` (rsviz runs dense models only); an input that is not
            ``(batch, bands, height, width)``.
    """
    from rsviz.models.runtimes import check_onnx

    p = Path(path)
    model = check_onnx(p)
    props = {e.key: e.value for e in model.metadata_props}
    model_type = str(_meta_value(props, "model_type", p) or "Segmentor")
    if model_type not in ("Segmentor", "Regressor"):
        raise ModelFolderError(
            f"{p.name}: Deepness model_type is {model_type!r}; rsviz runs Segmentor and Regressor models"
        )
    names = _meta_value(props, "class_names", p) or {}
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict):
        raise ModelFolderError(f"{p.name}: metadata 'class_names' must map ids to names (got {names!r})")
    try:
        class_names = {int(k): str(v) for k, v in names.items()}
    except ValueError as exc:
        raise ModelFolderError(f"{p.name}: metadata 'class_names' has a key that is not an id ({names!r})") from exc

    def num(key: str) -> float | None:
        v = _meta_value(props, key, p)
        if v is None:
            return None
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
            raise ModelFolderError(f"{p.name}: metadata {key!r} must be a non-negative number (got {v!r})")
        return float(v)

    def nums(key: str) -> tuple[float, ...]:
        v = _meta_value(props, key, p)
        if v is None:
            return ()
        if not isinstance(v, list) or not all(isinstance(x, int | float) for x in v):
            raise ModelFolderError(f"{p.name}: metadata {key!r} must be a list of numbers (got {v!r})")
        return tuple(float(x) for x in v)

    inits = {t.name for t in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in inits]
    if len(ins) != 1 or len(_dims(ins[0])) != 4:
        raise ModelFolderError(f"{p.name}: rsviz needs one (batch, bands, height, width) input, got {len(ins)}")
    tiles = num("tiles_size")
    return DeepnessMetadata(
        model_type=model_type,
        class_names=class_names,
        resolution_cm=num("resolution"),
        tiles_size=int(tiles) if tiles else None,
        tiles_overlap_pct=num("tiles_overlap"),
        seg_thresh=num("seg_thresh"),
        mean=nums("standardization_mean"),
        std=nums("standardization_std"),
        input_shape=_dims(ins[0]),
        outputs=tuple((o.name, _dims(o)) for o in model.graph.output),
    )


def mlm_from_deepness(
    path: str | os.PathLike[str], *, name: str | None = None, bands: Sequence[str] | None = None
) -> tuple[Any, DeepnessMetadata]:
    """An MLM item (``pystac.Item``) describing a Deepness ONNX model.

    Input: 8-bit bands (default red, green, blue for 3 channels) scaled as Deepness does: ``raw / 255``, then
    ``(x - mean) / std`` when the standardisation keys are set (written as MLM z-score in raw units). Outputs:
    one ``semantic-segmentation`` output per ONNX output for a Segmentor (classes from ``class_names``), one
    ``regression`` output for a Regressor. ``resolution`` becomes ``gsd`` (m) and ``rsviz:gsd_range_m``,
    ``tiles_overlap`` becomes ``rsviz:overlap``, ``seg_thresh`` ``rsviz:threshold``.

    Args:
        path: The ``.onnx`` file.
        name: ``mlm:name`` (default: the file's stem).
        bands: Input band names (default from the channel count).

    Returns:
        ``(item, metadata)``; the item's weights asset href is ``model.onnx``.

    Raises:
        ModelFolderError: As :func:`read_deepness`; ``bands`` of the wrong length.
    """
    import pystac
    from stac_model.input import InputStructure, ModelInput
    from stac_model.output import MLMClassification, ModelOutput, ModelResult
    from stac_model.schema import MLModelExtension, MLModelProperties

    p = Path(path)
    meta = read_deepness(p)
    c = meta.input_shape[1]
    if c <= 0 and not bands:
        raise ModelFolderError(f"{p.name}: the input's band count is dynamic; name the bands (--bands)")
    bands = list(bands) if bands else (["red", "green", "blue"] if c == 3 else [f"band{i + 1}" for i in range(c)])
    if c > 0 and len(bands) != c:
        raise ModelFolderError(f"{p.name} takes {c} bands; {len(bands)} band names were given ({bands})")
    nb = len(bands)
    if meta.mean and len(meta.mean) not in (1, nb) or meta.std and len(meta.std) not in (1, nb):
        raise ModelFolderError(
            f"{p.name}: standardization_mean/std have {len(meta.mean)}/{len(meta.std)} values for {nb} bands"
        )
    mean = list(meta.mean) * (nb // len(meta.mean)) if meta.mean else [0.0] * nb
    std = list(meta.std) * (nb // len(meta.std)) if meta.std else [1.0] * nb
    tile = meta.tiles_size or (meta.input_shape[2] if meta.input_shape[2] > 0 else 512)
    shape = [meta.input_shape[0] if meta.input_shape[0] > 0 else -1, nb, tile, tile]
    model_input = ModelInput(
        name="image",
        bands=bands,
        input=InputStructure(shape=shape, dim_order=["batch", "bands", "height", "width"], data_type="uint8"),
        value_scaling=[{"type": "z-score", "mean": m * 255.0, "stddev": s * 255.0} for m, s in zip(mean, std)],
    )
    outputs = []
    for i, (oname, oshape) in enumerate(meta.outputs):
        ch = oshape[1] if len(oshape) >= 2 and oshape[1] > 0 else max(len(meta.class_names), 1)
        seg = meta.model_type == "Segmentor"
        classes = None
        if seg and i == 0:
            names = meta.class_names or ({0: "background", 1: "foreground"} if ch <= 2 else {})
            ids = range(ch) if ch > 1 else range(2)
            classes = [
                MLMClassification(value=k, name=names.get(k, f"class {k}"), color_hint=bytes(_colour(k)).hex())
                for k in ids
            ]
        outputs.append(
            ModelOutput(
                name=oname,
                tasks={"semantic-segmentation" if seg else "regression"},
                result=ModelResult(
                    shape=[-1, ch, tile, tile], dim_order=["batch", "channel", "height", "width"], data_type="float32"
                ),
                classes=classes,
            )
        )
    import onnxruntime

    props = MLModelProperties(
        name=name or p.stem,
        architecture="ONNX model (Deepness metadata)",
        tasks={t for o in outputs for t in o.tasks},
        framework="ONNX",
        framework_version=onnxruntime.__version__,
        input=[model_input],
        output=outputs,
        pretrained=True,
    )
    extra: dict[str, Any] = {
        "start_datetime": "1900-01-01T00:00:00Z",
        "end_datetime": "9999-01-01T00:00:00Z",
        "description": f"{name or p.stem} (imported from Deepness ONNX metadata)",
        "rsviz:overlap": min((meta.tiles_overlap_pct or 25.0) / 100.0, 0.9),
    }
    if meta.resolution_cm:
        g = meta.resolution_cm / 100.0
        extra["gsd"] = g
        extra["rsviz:gsd_range_m"] = [g, g]
    if meta.seg_thresh is not None:
        extra["rsviz:threshold"] = meta.seg_thresh
    item = pystac.Item(id=name or p.stem, geometry=None, bbox=None, datetime=None, properties=extra)
    item.add_asset(
        "weights",
        pystac.Asset(
            href="model.onnx", roles=["mlm:model", "mlm:weights", "data"], extra_fields={"mlm:artifact_type": "onnx"}
        ),
    )
    MLModelExtension.ext(item, add_if_missing=True).apply(props)
    add_classification_extension(item)
    return item, meta


def import_deepness(
    path: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    name: str | None = None,
    bands: Sequence[str] | None = None,
    task: str | None = None,
) -> Path:
    """Write a model folder (``model.onnx``, ``mlm.json``, ``card.json``, ``config.json``) for a Deepness model.

    Args:
        path: The ``.onnx`` file with Deepness metadata.
        directory: Target folder (created; must be empty or absent).
        name: Model name (default: the file's stem).
        bands: Input band names (default red, green, blue for 3 channels).
        task: rsviz task (default: inferred, see :func:`card_from_mlm`).

    Returns:
        The folder; register it with :func:`rsviz.models.store.add_model`.

    Raises:
        ModelFolderError: As :func:`mlm_from_deepness`; a non-empty target folder.
    """
    item, meta = mlm_from_deepness(path, name=name, bands=bands)
    d = _empty_dir(directory)
    shutil.copyfile(path, d / "model.onnx")
    (d / MLM_FILE).write_text(json.dumps(item.to_dict(include_self_link=False), indent=2) + "\n", encoding="utf-8")
    probs = [o[0] for o in meta.outputs] if meta.model_type == "Segmentor" else []
    mm = card_from_mlm(d / MLM_FILE, name=name or Path(path).stem, task=task)
    cfg = dict(mm.config)
    cfg["probability_heads"] = [h for h, o in zip(cfg["heads"], meta.outputs) if o[0] in probs]
    card = mm.card
    if meta.seg_thresh is not None:
        card.extra["threshold"] = meta.seg_thresh
    card.extra["descriptor"] = "deepness"
    card.save(d / "card.json")
    (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return d


def _empty_dir(directory: str | os.PathLike[str]) -> Path:
    d = Path(directory)
    if d.exists() and any(d.iterdir()):
        raise ModelFolderError(f"{d} is not empty; choose a new folder for the model")
    d.mkdir(parents=True, exist_ok=True)
    return d


# --------------------------------------------------------------------------------------------------- torchgeo

#: torchgeo ``meta["model"]`` -> smp architecture.
TORCHGEO_ARCHS = {
    "u-net": "Unet",
    "unet": "Unet",
    "u-net++": "UnetPlusPlus",
    "unet++": "UnetPlusPlus",
    "deeplabv3+": "DeepLabV3Plus",
    "deeplabv3plus": "DeepLabV3Plus",
    "deeplabv3": "DeepLabV3",
    "fpn": "FPN",
    "linknet": "Linknet",
    "pspnet": "PSPNet",
    "pan": "PAN",
    "manet": "MAnet",
}


def card_from_torchgeo(
    meta: Mapping[str, Any],
    *,
    name: str,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: str = "uint8",
    task: str | None = None,
    tile_size: int | None = None,
) -> tuple[ModelCard, dict[str, Any]]:
    """Card and smp config for torchgeo segmentation weights described by their ``meta`` dict.

    Args:
        meta: ``WeightsEnum`` member's ``meta`` (``model``, ``encoder``, ``in_chans``, ``num_classes``; optional
            ``bands``, ``classes``, ``resolution`` in m, ``input_shape``, ``dataset``, ``publication``,
            ``license``).
        name: Model name.
        mean: Per-band mean in raw units (torchgeo keeps it in the weights' ``transforms``; ``[0]`` with std
            ``[3000]`` for FTW's Sentinel-2 weights); one value applies to every band.
        std: Per-band standard deviation in raw units.
        dtype: Raw data type of the imagery the model reads.
        task: rsviz task (default: landcover for several classes, buildings for two).
        tile_size: Tile side (default ``meta["input_shape"]``'s, else 512).

    Returns:
        ``(card, config)`` for :func:`rsviz.models.api.import_checkpoint`.

    Raises:
        ModelFolderError: A missing or ill-typed key (named), an architecture smp lacks (listing those it has),
            or mean/std/bands lengths that differ from ``in_chans``.
    """
    for key in ("model", "encoder", "in_chans", "num_classes"):
        if key not in meta:
            raise ModelFolderError(f"torchgeo meta lacks {key!r}; it needs model, encoder, in_chans and num_classes")
    arch = TORCHGEO_ARCHS.get(str(meta["model"]).lower())
    if arch is None:
        raise ModelFolderError(
            f"torchgeo meta 'model' is {meta['model']!r}; rsviz imports {sorted(set(TORCHGEO_ARCHS))}"
        )
    n_in, n_cls = int(meta["in_chans"]), int(meta["num_classes"])
    bands = [str(b) for b in meta.get("bands") or [f"band{i + 1}" for i in range(n_in)]]
    if len(bands) != n_in:
        raise ModelFolderError(f"torchgeo meta 'bands' lists {len(bands)} bands but 'in_chans' is {n_in}")
    mean, std = list(mean), list(std)
    if len(mean) not in (1, n_in) or len(std) not in (1, n_in):
        raise ModelFolderError(f"mean/std have {len(mean)}/{len(std)} values; the model takes {n_in} bands")
    mean, std = mean * (n_in // len(mean)), std * (n_in // len(std))
    scale = DTYPE_SCALE.get(dtype, 1.0)
    names = list(meta.get("classes") or [f"class {i}" for i in range(n_cls)])
    binary = n_cls == 1
    if binary:
        names = ["background", names[0] if meta.get("classes") else "foreground"]
    classes = [ClassInfo(i, str(n), _colour(i)) for i, n in enumerate(names)]
    res = meta.get("resolution")
    gsd = (float(res), float(res)) if isinstance(res, int | float) and res > 0 else ANY_GSD
    shape = meta.get("input_shape")
    tile = tile_size or (int(shape[-1]) if shape else 512)
    heads = {"seg": HeadSpec(kind="binary" if binary else "multiclass", channels=n_cls)}
    text = f"{name} {meta.get('dataset', '')}"
    card = ModelCard(
        name=name,
        title=f"{meta['model']} {meta['encoder']} ({meta.get('dataset', 'torchgeo weights')})",
        task=str(Task.parse(task or _task(heads, classes, text))),
        architecture=f"{arch} ({meta['encoder']} encoder), smp",
        paper=str(meta.get("publication", "")),
        heads=heads,
        input=InputSpec(
            bands=bands,
            dtype=dtype,
            scale=scale,
            mean=[m / scale for m in mean],
            std=[s / scale for s in std],
            gsd_range_m=[gsd[0], gsd[1]],
            tile_size=tile,
            overlap=0.25,
        ),
        classes=classes,
        training_data=[{"dataset": str(meta.get("dataset", "")), "repo": str(meta.get("repo", ""))}],
        licence=str(meta.get("license", "unknown")),
        extra={"descriptor": "torchgeo"},
    )
    config = {
        "arch": "smp",
        "smp_arch": arch,
        "encoder_name": str(meta["encoder"]),
        "in_channels": n_in,
        "classes": n_cls,
    }
    return card, config


def import_torchgeo(
    meta: Mapping[str, Any],
    weights: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    name: str | None = None,
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (255.0,),
    **kw: Any,
) -> Path:
    """Write a model folder (``model.safetensors``, ``card.json``, ``config.json``, ``mlm.json``) for torchgeo
    segmentation weights.

    Args:
        meta: The weights' ``meta`` dict (see :func:`card_from_torchgeo`).
        weights: The state dict: ``.pth`` / ``.pt`` (read with ``torch.load(weights_only=True)``) or
            ``.safetensors``.
        directory: Target folder (created; must be empty or absent).
        name: Model name (default: the folder's name).
        mean: Per-band mean in raw units (default 0: ``raw / 255`` with the default std).
        std: Per-band standard deviation in raw units.
        **kw: ``dtype``, ``task``, ``tile_size`` as :func:`card_from_torchgeo`.

    Returns:
        The folder.

    Raises:
        ModelFolderError: As :func:`card_from_torchgeo`; weights that do not fit the architecture, or a pickle
            with anything but tensors in it.
    """
    from rsviz.errors import RsvizError
    from rsviz.models.api import import_checkpoint

    d = _empty_dir(directory)
    card, config = card_from_torchgeo(meta, name=name or d.name, mean=mean, std=std, **kw)
    try:
        import_checkpoint(weights, card, config, d)
    except RsvizError as exc:
        shutil.rmtree(d, ignore_errors=True)
        raise ModelFolderError(str(exc)) from exc
    write_mlm(card, d)
    return d


__all__ = [
    "MLMModel",
    "DeepnessMetadata",
    "card_from_mlm",
    "write_card_from_mlm",
    "read_deepness",
    "mlm_from_deepness",
    "import_deepness",
    "card_from_torchgeo",
    "import_torchgeo",
]
