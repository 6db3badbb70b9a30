"""Export page in headless Chromium without internet: the QA report buttons download an offline HTML file
and a PDF of the run just made (the report is built when the button is clicked)."""

from __future__ import annotations

import io
import os

import pytest

from tests.streamlit_server import ROOT, streamlit_app

pytestmark = [pytest.mark.browser, pytest.mark.realdata, pytest.mark.slow]
CHIP = "OAM-386695-220246-19"
MODEL = "building-mtl"  # the Run page's default for a building scene


pytestmark.append(
    pytest.mark.skipif(not (ROOT / "weights" / MODEL / "card.json").exists(), reason=f"{MODEL} weights are not bundled")
)


def test_export_page_downloads_the_report_as_html_and_pdf(browser, mirror, tmp_path):
    from pypdf import PdfReader

    from tests.app.test_browser_e2e import _nav, _open_scene

    with streamlit_app({"RSVIZ_DATA_DIR": os.environ["RSVIZ_DATA_DIR"]}) as url:
        page = _open_scene(browser, url, CHIP)
        _nav(page, "Run")
        page.get_by_role("button", name="Run", exact=True).click()
        page.wait_for_function("() => document.body.innerText.match(/done in|cached result/)", timeout=180_000)
        _nav(page, "Export")
        got = {}
        for label, suffix in (("QA report (one offline HTML file)", ".html"), ("QA report (PDF)", ".pdf")):
            button = page.get_by_role("button", name=label)
            button.wait_for(timeout=120_000)
            with page.expect_download(timeout=180_000) as dl:
                button.click()
            path = tmp_path / f"report{suffix}"
            dl.value.save_as(path)
            got[suffix] = path.read_bytes()
    html = got[".html"].decode("utf-8")
    assert MODEL in html and "The numbers (inside the extent)" in html and "data:image/png;base64," in html
    text = "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(got[".pdf"])).pages)
    assert MODEL in text and "95 % interval" in text
