"""Shared fixtures: generated GeoTIFF fixtures and the real sample-data mirror."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# derived products and the app's workspace go to a folder of this test session, never the user's cache
_TMP = Path(tempfile.mkdtemp(prefix="rsviz-tests-"))
os.environ.setdefault("RSVIZ_CACHE_DIR", str(_TMP / "derived"))
os.environ.setdefault("RSVIZ_WORKSPACE", str(_TMP / "workspace"))
ROOT = Path(__file__).resolve().parents[1]
# Map -> Local path opens only allowed folders (default: caches, workspace, home); tests open fixtures from the
# checkout and from pytest's temporary folders, wherever CI puts those.
_ROOTS = [
    tempfile.gettempdir(),
    str(ROOT),
    *([os.environ["RSVIZ_DATA_DIR"]] if os.environ.get("RSVIZ_DATA_DIR") else []),
]
os.environ.setdefault("RSVIZ_LOCAL_PATHS", os.pathsep.join(_ROOTS))

FIXTURES = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def scene_dir() -> Path:
    """Folder of the generated scene fixtures (see tests/data/scene/data.py)."""
    d = FIXTURES / "scene"
    if not (d / "image.tif").exists():
        import runpy

        runpy.run_path(str(d / "data.py"), run_name="__main__")
    return d


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The sample-data folder named by RSVIZ_DATA_DIR; real-data tests skip when it is absent."""
    env = os.environ.get("RSVIZ_DATA_DIR")
    if not env or not (Path(env) / "banepa-buildings").is_dir():
        pytest.skip("RSVIZ_DATA_DIR does not point at the sample data (see README)")
    return Path(env)


@pytest.fixture(scope="module")
def browser():
    """A Playwright Chromium browser (Debian's ``/usr/bin/chromium``, never ``playwright install``), one per test
    module; skips when it is not installed."""
    from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
