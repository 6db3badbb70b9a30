"""The package's layers: each imports only the ones below it; no import cycles; no app code in the library."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Lowest first. A module may import its own layer and the ones below; see docs/design.md.
LAYERS: list[set[str]] = [
    {"rsviz.errors", "rsviz.types", "rsviz.resources"},
    {"rsviz.geo"},
    {"rsviz.raster", "rsviz.labels", "rsviz.data", "rsviz.display", "rsviz.tiles"},
    {"rsviz.postprocess"},
    {"rsviz.metrics"},
    {"rsviz.datasets"},
    {"rsviz.models"},
    {"rsviz.inference", "rsviz.models.export"},  # export traces a model through the predictor
    {"rsviz.evaluation"},
    {
        "rsviz.workspace",
        "rsviz.models.store",  # a registered model is smoke-tested through the engine and kept in the workspace
        "rsviz.report",
        "rsviz.cli",
        "rsviz.cli_predict",
        "rsviz.cli_evaluate",
        "rsviz.cli_batch",
        "rsviz.batch",
        "rsviz.__main__",
        "rsviz",
    },
    {"rsviz.app"},
]
UI_PACKAGES = ("streamlit", "streamlit_folium", "folium", "leafmap")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names] + [(node.module, node.lineno)]
    return out


def _layer(module: str) -> int | None:
    best, depth = None, -1
    for i, group in enumerate(LAYERS):
        for prefix in group:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = i, prefix.count(".")
    return best


def _library_files() -> list[Path]:
    return sorted((ROOT / "rsviz").rglob("*.py"))


def test_every_library_module_has_a_layer():
    assert [m for m in map(_module_name, _library_files()) if _layer(m) is None] == []


def test_no_module_imports_a_higher_layer():
    bad = []
    for f in _library_files():
        me = _module_name(f)
        for name, line in _imports(f):
            if not name.startswith("rsviz."):
                continue
            theirs = _layer(name)
            if theirs is not None and theirs > _layer(me):
                bad.append(f"{me}:{line} imports {name}")
    assert bad == []


def test_library_imports_no_experiments_and_no_ui_outside_the_app():
    bad = []
    for f in _library_files():
        me = _module_name(f)
        for name, line in _imports(f):
            top = name.split(".")[0]
            if top == "experiments" or (top in UI_PACKAGES and not me.startswith("rsviz.app")):
                bad.append(f"{me}:{line} imports {name}")
    assert bad == []


def test_metrics_import_no_models():
    bad = [
        f"{_module_name(f)} imports {n}"
        for f in (ROOT / "rsviz" / "metrics").rglob("*.py")
        for n, _ in _imports(f)
        if n.startswith(("rsviz.models", "rsviz.inference", "rsviz.evaluation"))
    ]
    assert bad == []


@pytest.mark.parametrize("package", ["rsviz", "experiments"])
def test_no_import_cycles_at_module_level(package):
    files = sorted((ROOT / package).rglob("*.py"))
    mods = {_module_name(f): f for f in files}
    g = nx.DiGraph()
    for me, f in mods.items():
        g.add_node(me)
        names = [n for n, _ in _imports(f, top_level_only=True)]
        for name in names:
            if name in mods and name != me:  # ``from pkg import mod`` counts as an import of pkg.mod
                g.add_edge(me, name)
            elif name.rsplit(".", 1)[0] in mods and name.rsplit(".", 1)[0] != me and name not in mods:
                g.add_edge(me, name.rsplit(".", 1)[0])
    assert list(nx.simple_cycles(g)) == []


def test_the_layering_test_catches_a_violation(tmp_path):
    """The check above fails on a metric that imports a model (so it can fail)."""
    f = tmp_path / "bad.py"
    f.write_text("from rsviz.models.api import load_model\n")
    assert [n for n, _ in _imports(f) if _layer(n) is not None and _layer(n) > _layer("rsviz.metrics.bad")]
