"""The experiment commands of the ``rsviz`` CLI: ``train``, ``package``, ``cv``, ``select``, ``promote``.

They live beside the library, not in it: :mod:`rsviz.cli` finds them through the ``rsviz.commands``
entry-point group that ``pyproject.toml`` declares, so the library never imports this package.
Each ``add_*`` function takes the CLI's sub-parser collection and registers one command.

The life of a model (``docs/model-selection.md``): ``rsviz train NAME`` writes a run under ``runs/``;
``rsviz package KIND RUN --out DIR`` evaluates it on the held-out splits and writes a candidate model
folder into ``DIR`` (never into ``weights/``); ``rsviz select weights/NAME DIR/NAME`` prints the
paired-bootstrap comparison on val; ``rsviz promote DIR/NAME`` runs that comparison and copies the
candidate into the model store only when it passes (``P(better) >= 0.9``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from rsviz.errors import RsvizError, unknown_name

#: ``rsviz package KIND``: packager module of each kind (each has ``main(argv)``).
PACKAGERS = {
    "building": "experiments.packaging.building",
    "semantic": "experiments.packaging.semantic",
    "height": "experiments.packaging.height",
    "s2": "experiments.packaging.s2",
    "refresh": "experiments.packaging.refresh",
}


class PromotionRefused(RsvizError, ValueError):
    """A candidate did not beat the bundled model on val by the paired-bootstrap rule."""


def _train(args: argparse.Namespace) -> int:
    from experiments.recipes import RECIPES

    if args.name not in RECIPES:
        raise unknown_name("training recipe", args.name, list(RECIPES))
    out = RECIPES[args.name](args.config)
    print(f"trained {args.name}: outputs in {out}")
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    """``rsviz train NAME [--config FILE]``: run a bundled model's training recipe."""
    t = sub.add_parser("train", help="train a bundled model's recipe (experiments/recipes)")
    t.add_argument("name", help="recipe name, e.g. building-mtl")
    t.add_argument("--config", help="JSON config overriding the recipe defaults (experiments/configs/)")
    t.set_defaults(func=_train)


def _package(args: argparse.Namespace) -> int:
    import importlib

    if args.kind not in PACKAGERS:
        raise unknown_name("packager", args.kind, list(PACKAGERS))
    importlib.import_module(PACKAGERS[args.kind]).main(args.rest)
    return 0


def add_package(sub: argparse._SubParsersAction) -> None:
    """``rsviz package KIND ARGS... --out DIR``: evaluate runs on the held-out splits, write candidate folders."""
    p = sub.add_parser(
        "package",
        help="evaluate training runs and write candidate model folders (--out)",
        description="KIND is one of: " + ", ".join(PACKAGERS) + "; the rest goes to the packager "
        "(rsviz package KIND --help)",
    )
    p.add_argument("kind", help=", ".join(PACKAGERS))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the packager's own arguments")
    p.set_defaults(func=_package)


def _cv(args: argparse.Namespace) -> int:
    from experiments.cv import main

    return main(args.rest)


def add_cv(sub: argparse._SubParsersAction) -> None:
    """``rsviz cv run CONFIG --out DIR`` / ``rsviz cv compare BASE CANDIDATE``: blocked k-fold cross-validation."""
    p = sub.add_parser(
        "cv",
        help="blocked k-fold cross-validation of the building recipe (experiments/cv.py)",
        description="rsviz cv run CONFIG --out DIR [--k 4] [--set KEY=JSON ...] | rsviz cv compare BASE CANDIDATE | "
        "rsviz cv card MODEL CV_DIR... --out DIR",
    )
    p.add_argument("rest", nargs=argparse.REMAINDER, help="run ... or compare ... (rsviz cv run --help)")
    p.set_defaults(func=_cv)


def _select(args: argparse.Namespace) -> int:
    from experiments.selection import compare

    print(json.dumps(compare(args.bundled, args.candidate), indent=1))
    return 0


def add_select(sub: argparse._SubParsersAction) -> None:
    """``rsviz select BUNDLED CANDIDATE``: paired bootstrap over val images, printed as JSON."""
    s = sub.add_parser("select", help="does a candidate beat the bundled weights on val? (paired bootstrap)")
    s.add_argument("bundled", help="bundled model folder, e.g. weights/building-mtl")
    s.add_argument("candidate", help="candidate model folder written by `rsviz package ... --out`")
    s.set_defaults(func=_select)


def same_weights(a: Path, b: Path) -> bool:
    """True when two model folders hold byte-identical ``model.safetensors`` and ``config.json``."""
    import hashlib

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else ""

    return all(digest(a / f) == digest(b / f) != "" for f in ("model.safetensors", "config.json"))


def promote(candidate: Path, store: Path, *, name: str | None = None) -> dict:
    """Copy a candidate model folder into the model store if it beats the model it would replace.

    Args:
        candidate: Folder written by a packager (``config.json``, ``model.safetensors``, ``card.json``).
        store: The model store (``weights/``, :func:`rsviz.resources.weights_dir`).
        name: Name in the store; the candidate folder's name by default.

    Returns:
        The comparison of :func:`experiments.selection.compare`; ``{"new": True}`` for a new name, or
        ``{"metrics_refresh": True}`` when the weights are byte-identical (a card re-measured by
        ``rsviz package refresh``).

    Raises:
        PromotionRefused: The bundled model is not beaten at ``P(better) >= REPLACE_P`` on val.
    """
    from experiments.selection import compare

    dst = store / (name or candidate.name)
    if not (dst / "card.json").exists():
        result: dict = {"new": True}
    elif same_weights(dst, candidate):
        result = {"metrics_refresh": True, "note": "weights and config byte-identical; only the card changes"}
    else:
        result = compare(dst, candidate)
    if "replace" in result and not result["replace"]:
        raise PromotionRefused(
            f"{candidate} does not replace {dst}: {result['statistic']} {result['candidate']:.4f} vs "
            f"{result['bundled']:.4f}, P(better) {result['p_better']:.3f} < {result['replace_p']}; keep the bundled "
            "weights (docs/model-selection.md)"
        )
    tmp = dst.with_name(dst.name + ".promoting")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(candidate, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return result


def _promote(args: argparse.Namespace) -> int:
    from rsviz.resources import weights_dir

    result = promote(Path(args.candidate), Path(args.store) if args.store else weights_dir(), name=args.name)
    print(json.dumps(result, indent=1))
    return 0


def add_promote(sub: argparse._SubParsersAction) -> None:
    """``rsviz promote CANDIDATE [--name NAME] [--store DIR]``: the one step that writes into ``weights/``."""
    p = sub.add_parser("promote", help="copy a candidate into weights/ only if it passes the paired-bootstrap rule")
    p.add_argument("candidate", help="candidate model folder written by `rsviz package ... --out`")
    p.add_argument("--name", help="name in the store (default: the candidate folder's name)")
    p.add_argument("--store", help="model store (default: RSVIZ_WEIGHTS_DIR or the repository's weights/)")
    p.set_defaults(func=_promote)
