"""``rsviz models {list,export}``: the model registry and exports of bundled models to ONNX / torch.export."""

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
            m = add_model(path, args.name if len(args.names) == 1 else None, replace=args.replace)
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


def cmd_models(args: argparse.Namespace) -> int:
    """Dispatch ``rsviz models ACTION``."""
    if args.action == "export":
        return cmd_export(args)
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
    m.add_argument("action", choices=["list", "add", "export"])
    m.add_argument("names", nargs="*", help="with `export`: model name(s); with `add`: model folder(s)")
    m.add_argument("--name", help="with `add`: registry name (default: the folder's name)")
    m.add_argument("--replace", action="store_true", help="with `add`: replace a model of that name in the store")
    m.add_argument("--format", choices=sorted(FORMATS), default="onnx", help="with `export`: format (onnx)")
    m.add_argument("--out", help="with `export`: target folder (default ./NAME-FORMAT)")
    m.set_defaults(func=cmd_models)
