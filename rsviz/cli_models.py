"""``rsviz models {list,export}``: the model registry and exports of bundled models to ONNX / torch.export."""

from __future__ import annotations

import argparse


def cmd_export(args: argparse.Namespace) -> int:
    """Export ``args.name`` to ``args.format`` in ``args.out``; prints the folder."""
    from rsviz.models.export import export_model

    if not args.names:
        print("error: `rsviz models export` needs a model name", flush=True)
        return 2
    for name in args.names:
        d = export_model(name, args.format, args.out if len(args.names) == 1 else None)
        print(f"{name}: {args.format} model folder {d} (load it with rsviz.models.api.from_pretrained)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Dispatch ``rsviz models ACTION``."""
    if args.action == "export":
        return cmd_export(args)
    from rsviz.cli import cmd_list_models

    return cmd_list_models(args)


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``models`` to the ``rsviz`` sub-commands."""
    from rsviz.models.export import FORMATS

    m = sub.add_parser("models", help="model registry: list; export a model to ONNX or a torch.export program")
    m.add_argument("action", choices=["list", "export"])
    m.add_argument("names", nargs="*", help="with `export`: model name(s)")
    m.add_argument("--format", choices=sorted(FORMATS), default="onnx", help="with `export`: format (onnx)")
    m.add_argument("--out", help="with `export`: target folder (default ./NAME-FORMAT)")
    m.set_defaults(func=cmd_models)
