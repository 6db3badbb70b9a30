"""Bad input in the browser (issue #20): a subset of the seeded corpus (``tests/data/bad_inputs/data.py``) through
the Map page's upload form and Local path, in headless Chromium.

Each case must end in an error box that says what is wrong, never a traceback (``stException``), never the
server's own paths (where the upload was put), and must leave nothing of a refused file in the workspace.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from tests.streamlit_server import ROOT, block_internet, streamlit_app

pytestmark = [pytest.mark.browser, pytest.mark.realdata, pytest.mark.slow]


def _corpus(root: Path, mirror: Path) -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location(
        "bad_inputs_data_b", ROOT / "tests" / "data" / "bad_inputs" / "data.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return {c.name: c.path for c in mod.build(root, mirror, ROOT / "weights") if c.path is not None}


#: (image case, ground-truth case or None, text the error box must contain)
UPLOADS = [
    ("truncated_half", None, "truncated_half.tif"),
    ("garbage", None, "garbage.tif"),
    ("empty_file", None, "empty.tif"),
    ("good", "points_as_footprints", "Point"),
    ("good", "cut_off_geojson", "cut_off.geojson"),
]


def _shown(page, expect: str) -> str:
    """The text of the error box that contains ``expect`` (waits for it)."""
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('[data-testid=\"stAlert\"]')].some(e => e.innerText.includes(t))",
        arg=expect,
        timeout=60_000,
    )
    return next(t for t in (e.inner_text() for e in page.locator('[data-testid="stAlert"]').all()) if expect in t)


def _no_traceback(page, workspace: Path) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, "a traceback is shown"
    body = page.locator("body").inner_text()
    assert "Traceback" not in body
    assert str(workspace) not in body, "the page shows where the server keeps uploads"


def test_bad_uploads_and_paths_show_errors_and_leave_nothing(browser, mirror, tmp_path):
    cases = _corpus(tmp_path / "corpus", mirror)
    workspace = tmp_path / "ws"
    env = {
        "RSVIZ_DATA_DIR": os.environ["RSVIZ_DATA_DIR"],
        "RSVIZ_WORKSPACE": str(workspace),
        "RSVIZ_LOCAL_PATHS": str(tmp_path / "corpus"),
    }
    shown: list[str] = []
    with streamlit_app(env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        block_internet(page, url)
        page.goto(url + "/map", wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=90_000)
        page.get_by_text("Upload", exact=True).click()
        page.wait_for_selector('[data-testid="stFileUploader"]', timeout=60_000)
        for image, gt, expect in UPLOADS:
            inputs = page.locator('[data-testid="stFileUploader"] input[type="file"]')
            inputs.nth(0).set_input_files(str(cases[image]))
            if gt is not None:
                inputs.nth(1).set_input_files(str(cases[gt]))
            else:
                inputs.nth(1).set_input_files([])
            page.wait_for_timeout(500)
            page.get_by_role("button", name="Open").click()
            shown.append(_shown(page, expect))
            _no_traceback(page, workspace)
        # Local path: a file outside the allowed folders, then a broken file inside them
        page.get_by_text("Local path", exact=True).click()
        box = page.get_by_label("Raster path on this machine (GeoTIFF, COG, VRT, JPEG2000…)")
        for path, expect in (("/etc/hostname", "outside the folders"), (str(cases["text_as_tif"]), "text.tif")):
            box.fill(path)
            box.press("Enter")
            page.wait_for_timeout(500)
            page.get_by_role("button", name="Open").click()
            shown.append(_shown(page, expect))
            _no_traceback(page, workspace)
    if (ROOT / "tests" / "artifacts").is_dir():
        (ROOT / "tests" / "artifacts" / "bad-inputs-browser.json").write_text(json.dumps(shown, indent=1))
    assert len(shown) == len(UPLOADS) + 2
    # nothing of a refused file stays in the workspace: no upload copy, no half-made scene
    uploads = workspace / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir()), list(uploads.iterdir())
    # the Map page may have opened its default sample scene meanwhile: that one is complete and no upload
    for d in (workspace / "scenes").iterdir() if (workspace / "scenes").is_dir() else ():
        assert (d / "scene.json").is_file(), f"half-made scene left behind: {sorted(p.name for p in d.iterdir())}"
        src = json.loads((d / "scene.json").read_text())["source"]
        assert not src.startswith("upload:") and str(tmp_path / "corpus") not in src, src
