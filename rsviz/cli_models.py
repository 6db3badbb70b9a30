"""``rsviz models {list,add,import,export}``: the model registry, the user store, importers from Deepness ONNX
metadata and torchgeo ``meta`` dicts, and exports of bundled models to ONNX / torch.export."""

from __future__ import annotations

import argparse
import sys


def cmd_export(args: argparse.Namespace) -> int:
    """Export ``args.name`` to ``args.format`` in ``args.out``; prints the folder."""
    from rsviz.models.export import export_model

    if not args.names:
        print("error: `rsviz models export` needs a model name", file=sys.stderr)
        return 2
    for name in args.names:
        d = export_model(name, args.format, args.out if len(args.names) == 1 else None)
        print(f"{name}: {args.format} model folder {d} (load it with rsviz.models.api.from_pretrained)")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    """Validate, smoke-test and register each model folder in ``args.names`` in the user store."""
    from rsviz.errors import RsvizError
    from rsviz.models.store import add_model

    if not args.names:
        print("error: `rsviz models add` needs a model folder", file=sys.stderr)
        return 2
    status = 0
    for path in args.names:
        try:
            m = add_model(
                path,
                args.name if len(args.names) == 1 else None,
                replace=args.replace,
                bands=args.bands.split(",") if args.bands else None,
                task=args.task,
            )
        except RsvizError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        outs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in m.outputs.items())
        print(
            f"{m.name}: registered ({m.runtime}, {m.task}, bands {', '.join(m.bands)}) in {m.folder}; "
            f"test tile in {m.smoke_seconds:.2f} s: {outs}"
        )
    return status


def _floats(text: str | None, default: float) -> list[float] | None:
    """Comma-separated numbers, ``[default]`` when empty, None when not numbers."""
    if not text:
        return [default]
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        return None


def cmd_import(args: argparse.Namespace) -> int:
    """``rsviz models import deepness MODEL.onnx --out DIR`` or ``import torchgeo META.json WEIGHTS --out DIR``."""
    from rsviz.errors import RsvizError
    from rsviz.models import importers

    kind, paths = (args.names[0], args.names[1:]) if args.names else ("", [])
    need = {"deepness": 1, "torchgeo": 2}
    if kind not in need or len(paths) != need[kind] or not args.out:
        print(
            "error: use `rsviz models import deepness MODEL.onnx --out DIR` or "
            "`rsviz models import torchgeo META.json WEIGHTS.pth --out DIR --mean M --std S`",
            file=sys.stderr,
        )
        return 2
    try:
        if kind == "deepness":
            bands = args.bands.split(",") if args.bands else None
            d = importers.import_deepness(paths[0], args.out, name=args.name, bands=bands, task=args.task)
        else:
            import json
            from pathlib import Path

            try:
                meta = json.loads(Path(paths[0]).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                print(f"error: {paths[0]} cannot be read as a JSON meta dict ({exc})", file=sys.stderr)
                return 2
            mean, std = _floats(args.mean, 0.0), _floats(args.std, 255.0)
            if mean is None or std is None:
                print(
                    f"error: --mean and --std take comma-separated numbers, got {args.mean!r} / {args.std!r}",
                    file=sys.stderr,
                )
                return 2
            d = importers.import_torchgeo(meta, paths[1], args.out, name=args.name, mean=mean, std=std, task=args.task)
    except RsvizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{kind}: model folder {d} (card.json, config.json, mlm.json); register it with `rsviz models add {d}`")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Dispatch ``rsviz models ACTION``."""
    if args.action == "export":
        return cmd_export(args)
    if args.action == "import":
        return cmd_import(args)
    if args.action == "add":
        return cmd_add(args)
    from rsviz.cli import cmd_list_models

    return cmd_list_models(args)


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``models`` to the ``rsviz`` sub-commands."""
    from rsviz.models.export import FORMATS

    m = sub.add_parser(
        "models",
        help="model registry: list; add your model folder to the user store; export a bundled model to ONNX or "
        "a torch.export program",
    )
    m.add_argument("action", choices=["list", "add", "import", "export"])
    m.add_argument(
        "names",
        nargs="*",
        help="with `export`: model name(s); with `add`: model folder(s), .zip of one, or a Deepness .onnx file; "
        "with `import`: `deepness MODEL.onnx` or `torchgeo META.json WEIGHTS.pth`",
    )
    m.add_argument("--name", help="with `add`: registry name (default: the folder's name)")
    m.add_argument("--replace", action="store_true", help="with `add`: replace a model of that name in the store")
    m.add_argument("--format", choices=sorted(FORMATS), default="onnx", help="with `export`: format (onnx)")
    m.add_argument("--out", help="with `export`: target folder (default ./NAME-FORMAT); with `import`: required")
    m.add_argument("--bands", help="with `add` / `import` of an .onnx file: input band names, comma-separated")
    m.add_argument("--task", help="with `add` / `import`: rsviz task (default: inferred from the outputs)")
    m.add_argument("--mean", help="with `import torchgeo`: per-band mean in raw units, comma-separated (0)")
    m.add_argument("--std", help="with `import torchgeo`: per-band std in raw units, comma-separated (255)")
    m.set_defaults(func=cmd_models)
