"""Shared fixtures: generated GeoTIFF fixtures and the real sample-data mirror."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
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
