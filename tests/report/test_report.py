"""The QA report (#25): self-contained HTML that opens offline, a PDF whose text carries the headline figures
the library computes, and a two-model report whose differences have the metrics' sign."""

from __future__ import annotations

import io
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rsviz.evaluation import fmt

pytestmark = [pytest.mark.realdata]  # all but the last test use the sample data (fixture `mirror`)

CHIP = "OAM-386695-220246-19"


@pytest.fixture(scope="module")
def runs(mirror):
    """Two building models over one Banepa chip (no TTA), with the library's own evaluation of each."""
    from rsviz.datasets import scenes
    from rsviz.models.api import get_model_card
    from rsviz.workspace import RunOptions, open_sample, resolve_extent, run_model
    from rsviz.workspace.metrics import evaluate_run

    ref = next(r for r in scenes("banepa-buildings") if r.id == CHIP)
    scene = open_sample(ref)
    ext = resolve_extent(scene, None)
    out = []
    for m in ("building-mtl", "building-seg"):
        run, _ = run_model(m, scene, ext, RunOptions(tta=False, device="cpu"))
        out.append((run, evaluate_run(scene, run, get_model_card(m))))
    return scene, out


@pytest.fixture(scope="module")
def one(runs):
    from rsviz.report import build_report, report_html

    scene, rr = runs
    rep = build_report(scene, [rr[0][0]])
    return rep, report_html(rep)


@pytest.fixture(scope="module")
def two(runs):
    from rsviz.report import build_report, report_html

    scene, rr = runs
    rep = build_report(scene, [rr[0][0], rr[1][0]])
    return rep, report_html(rep)


def _pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages)


def test_report_content_where_what_numbers(one, runs):
    rep, html = one
    scene, rr = runs
    run, res = rr[0]
    w = rep.where
    assert w.overview is not None and w.overview.image.ndim == 3 and min(w.overview.image.shape[:2]) > 50
    assert w.bounds_4326 == pytest.approx(run.extent.bounds)
    assert w.area_m2 == pytest.approx(scene.gsd**2 * 512 * 512)
    assert w.provenance.file_name == "image.tif" and len(w.provenance.sha256 or "") == 64
    for text in (
        w.provenance.sha256,
        scene.key,
        "EPSG:4326",
        "CC-BY-4.0",
        "banepa-buildings",
        "joplin-ood",  # the card's out-of-domain figures under known limits
        rep.runs[0].weights_hash,
        "float32",
        "IoU",
        "object F1 @ IoU 0.5",
        "boundary F1 (2 px)",
        "Cohen&#x27;s kappa",
        "spatial-block bootstrap",
        "trivial baseline",
        "errors: TP green",
        "best IoU",
    ):
        assert text in html, text
    sec = rep.runs[0]
    # the bootstrap blocks add up to the evaluator's confusion matrix, and each interval brackets its figure
    assert sec.blocks is not None and sec.blocks.confusion is not None
    assert sec.blocks.confusion.sum(0).tolist() == [list(r) for r in res.confusion]
    assert sec.blocks.objects is not None and sec.blocks.objects.sum(0).tolist() == [
        res.values["object_tp"],
        res.values["object_fp"],
        res.values["object_fn"],
    ]
    for k in ("iou", "f1", "overall_accuracy", "kappa", "object_f1_iou50"):
        iv = sec.intervals[k]
        assert iv.low <= res.values[k] <= iv.high, k
        assert iv.high - iv.low > 0
    assert sec.baseline["kappa"][0] == pytest.approx(0.0)
    assert sec.false_positives and sec.misses


def test_html_is_self_contained_and_makes_no_request_offline(one, tmp_path):
    from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS

    _, html = one
    # nothing outside the file: no remote src/href/url(), no scripts, no @import or font files
    assert not re.findall(r"""(?:src|href)\s*=\s*['"](?!data:)""", html)
    assert "<script" not in html and "@import" not in html and "@font-face" not in html
    assert not re.findall(r"url\((?!data:)", html)
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    f = tmp_path / "report.html"
    f.write_text(html, encoding="utf-8")
    url = f.as_uri()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = b.new_page()
            asked: list[str] = []

            def handler(route):
                u = route.request.url
                if u == url or u.startswith(("data:", "about:")):
                    route.continue_()
                else:
                    asked.append(u)
                    route.abort()

            page.route("**/*", handler)
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(url, wait_until="load")
            assert asked == [] and failed == []
            # every picture decoded from its data URI
            assert page.evaluate("[...document.images].length") >= 8
            assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        finally:
            b.close()


def test_pdf_text_has_the_headline_figures_of_the_library(one, runs, tmp_path):
    from rsviz.evaluation.tasks import task_spec
    from rsviz.report import report_pdf

    rep, html = one
    res = runs[1][0][1]
    pdf = report_pdf(html)
    assert pdf[:5] == b"%PDF-"
    text = _pdf_text(pdf)
    headline = [k for k in task_spec(res.task).headline if k in res.values]
    assert headline == rep.headline and len(headline) == 4
    for k in headline:
        assert fmt(res.values[k], 3) in text, k
    assert "95 % interval" in text
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed: the pages were not rendered")
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(tmp_path / "r.pdf"), str(tmp_path / "page")], check=True)
    assert len(list(tmp_path.glob("page-*.png"))) >= 3


def test_two_model_report_shows_both_and_a_difference_of_the_metrics_sign(two, runs):
    from rsviz.report import report_pdf

    rep, html = two
    (ra, a), (rb, b) = runs[1]
    assert [s.model for s in rep.runs] == ["building-mtl", "building-seg"]
    assert rep.paired  # same window: the difference is drawn on the same blocks
    text = _pdf_text(report_pdf(html))
    for k in rep.headline:
        assert fmt(a.values[k], 3) in text and fmt(b.values[k], 3) in text, k
        d, iv = rep.difference[k]
        want = b.values[k] - a.values[k]
        assert d == pytest.approx(want)
        assert math.copysign(1, d) == math.copysign(1, want)
        assert f"{want:+.3f}" in text
        if iv is not None:
            assert iv.low <= d <= iv.high
    assert len(rep.swipes) == 2 and rep.swipes[0].image.shape == rep.side_by_side[0][0].image.shape
    assert rep.side_by_side and {p.caption for p, _ in rep.side_by_side} >= {
        "input",
        "errors: TP green · FP red · FN blue",
    }
    assert "building-mtl" in html and "building-seg" in html


def test_cli_report_writes_html_and_pdf_and_refuses_bad_input(runs, tmp_path, capsys):
    from rsviz.cli import main

    (ra, _), (rb, _) = runs[1]
    assert main(["report", ra.key, rb.key, "--out", str(tmp_path / "r.html")]) == 0
    assert "building-seg" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert main(["report", ra.key, "--out", str(tmp_path / "r.pdf")]) == 0
    assert (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
    capsys.readouterr()
    assert main(["report", ra.key, "--out", str(tmp_path / "r.pdf"), "--overwrite"]) == 0
    capsys.readouterr()
    bad = (
        ["report", ra.key, "--out", str(tmp_path / "r.docx")],
        ["report", "0" * 16, "--out", str(tmp_path / "x.html")],
        ["report", "not-a-run", "--out", str(tmp_path / "x.html")],
        ["report", ra.key, "--out", str(tmp_path / "r.pdf")],  # exists, no --overwrite
        ["report", ra.key, "--out", str(tmp_path / "missing" / "r.html")],
        ["report", ra.key, rb.key, ra.key, "--out", str(tmp_path / "three.html")],
    )
    for argv in bad:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), (argv, err)
    assert not (tmp_path / "three.html").exists() and not list(tmp_path.glob(".*partial*"))


def test_roads_report_of_a_scene_without_crs_has_the_apls_graphs(mirror):
    """A road tile without georeferencing: no map (the image instead), no bounds, the area from the known GSD,
    APLS figures without an interval, and the road graphs drawn."""
    from rsviz.datasets import scenes
    from rsviz.models.api import get_model_card
    from rsviz.report import build_report, report_html, report_pdf
    from rsviz.workspace import RunOptions, open_sample, resolve_extent, run_model
    from rsviz.workspace.metrics import evaluate_run

    scene = open_sample(next(r for r in scenes("eth-roads") if r.id == "satImage_091"))
    run, _ = run_model("roads-pplinknet", scene, resolve_extent(scene, None), RunOptions(tta=False, device="cpu"))
    res = evaluate_run(scene, run, get_model_card("roads-pplinknet"))
    rep = build_report(scene, [run])
    assert rep.where.bounds_4326 is None and rep.where.area_m2 == pytest.approx(scene.gsd**2 * 400 * 400)
    assert rep.where.overview is not None and "not georeferenced" in rep.where.overview.caption
    assert len(rep.runs[0].figures) == 2  # confusion matrix and road graphs
    assert "iou" in rep.runs[0].intervals and not any(k.startswith("apls") for k in rep.runs[0].intervals)
    html = report_html(rep)
    assert "(not georeferenced)" in html and "APLS (4 m buffer)" in html
    text = _pdf_text(report_pdf(html))
    for k in rep.headline:
        assert fmt(res.values[k], 3) in text, k


def test_a_scene_without_ground_truth_gives_a_report_without_figures(scene_dir, tmp_path):
    """A user's raster with no ground truth: where and what still come out, the numbers are said to be absent."""
    from rsviz.report import build_report, report_html, report_pdf
    from rsviz.workspace import RunOptions, open_path, resolve_extent, run_model
    from tests import toy_models

    toy_models.register(tmp_path / "models")
    scene = open_path(scene_dir / "image.tif")
    run, _ = run_model("toy-pointwise", scene, resolve_extent(scene, None), RunOptions(tile=96, device="cpu"))
    rep = build_report(scene, [run])
    assert rep.runs[0].result is None and rep.headline == [] and rep.runs[0].intervals == {}
    assert any("no ground truth" in n for n in rep.notes)
    html = report_html(rep)
    assert "toy-pointwise" in html and "The numbers" not in html and "image.tif" in html
    assert report_pdf(html)[:5] == b"%PDF-"
