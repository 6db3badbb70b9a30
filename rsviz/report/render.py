"""A :class:`~rsviz.report.content.Report` as one self-contained HTML file, and as PDF from the same HTML.

The HTML has its CSS inline and every picture as a ``data:`` URI; it names no font, script or image
outside itself, so it opens offline and a browser makes no request for it. The PDF is that HTML laid
out by WeasyPrint (A4, Debian's fonts through fontconfig/pango).
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rsviz.errors import RsvizError
from rsviz.evaluation import fmt, metric_label
from rsviz.report.content import Report, RunSection
from rsviz.report.pictures import Picture

_e = html.escape

CSS = """
@page { size: A4; margin: 14mm 12mm; @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; } }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 10pt; color: #222;
       max-width: 1100px; margin: 1.5em auto; padding: 0 1em; }
h1 { font-size: 18pt; margin-bottom: 0.2em; } h2 { font-size: 13pt; border-bottom: 1px solid #bbb; margin-top: 1.4em; }
h3 { font-size: 11pt; margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.4em 0 0.8em; page-break-inside: auto; }
td, th { border: 1px solid #ccc; padding: 2px 6px; font-size: 8.5pt; vertical-align: top; text-align: left; }
th { background: #f0f0f0; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted { color: #666; font-size: 8.5pt; }
.row { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0 0 6px 0; display: inline-block; vertical-align: top; page-break-inside: avoid; }
figure img { display: block; max-width: 100%; }
figcaption { font-size: 7.5pt; color: #444; max-width: 260px; }
.panel img { width: 240px; } .crop img { width: 100px; } .crop figcaption { max-width: 100px; }
.keep { page-break-inside: avoid; }
.pair { page-break-inside: avoid; } .pair img { width: 320px; }
.overview img { max-width: 460px; } .fig img { max-width: 440px; }
.pos { color: #1a7f37; } .neg { color: #c62828; }
"""


def _png(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fig(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _picture(p: Picture, cls: str = "panel") -> str:
    return f"<figure class='{cls}'><img alt='{_e(p.caption)}' src='{_png(p.image)}'><figcaption>{_e(p.caption)}</figcaption></figure>"


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append(
            "<tr>"
            + "".join(f"<td class='n'>{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(r))
            + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


def _value(v: Any) -> str:
    return fmt(v, 3)


def label(key: str) -> tuple[str, str]:
    """Display name and definition of a figure key, per-class keys included (``iou_road`` -> ``IoU (road)``)."""
    name, definition = metric_label(key)
    if not definition:
        for prefix in ("iou", "f1"):
            if key.startswith(prefix + "_"):
                base, base_def = metric_label(prefix)
                return f"{base} ({key[len(prefix) + 1 :]})", base_def.replace("the positive class", "this class")
    return name, definition


def _where(rep: Report) -> str:
    w = rep.where
    p = w.provenance
    b = w.bounds_4326
    rows = [
        ["scene", w.scene_name],
        ["extent bounds (EPSG:4326, W S E N)", ", ".join(f"{x:.6f}" for x in b) if b else "— (not georeferenced)"],
        ["pixel window (col, row, width, height)", ", ".join(map(str, w.window))],
        ["area", f"{w.area_m2:,.1f} m²" if w.area_m2 is not None else "— (GSD unknown)"],
        ["pixel size (GSD)", f"{w.pixel_size_m:.3f} m" if w.pixel_size_m else "—"],
        ["file", f"{p.file_name} ({p.file_bytes:,} bytes)"],
        ["CRS", p.crs],
        ["sha256", p.sha256 or "— (file over the hashing limit)"],
        ["workspace hash", p.workspace_key],
        ["opened from", p.source],
        ["dataset (split)", p.dataset],
    ]
    if p.attribution:
        rows.append(["attribution", p.attribution])
    out = ["<h2>Where</h2><div class='row'>"]
    if w.overview is not None:
        out.append(_picture(w.overview, "overview"))
    out.append("<div>" + _table(["", ""], rows) + "</div></div>")
    return "".join(out)


def _card(sec: RunSection, headline: list[str]) -> str:
    c = sec.card
    rows = [
        ["title", c.title],
        ["task", c.task],
        ["architecture", c.architecture],
        ["paper", c.paper],
        ["weights licence", c.licence],
        ["GSD range", " – ".join(f"{g:g}" for g in c.input.gsd_range_m) + " m"],
        ["weights hash", sec.weights_hash],
        ["rsviz", sec.rsviz_version],
        ["device · precision", f"{sec.device} · {sec.precision}"],
        ["prediction time", f"{sec.seconds:.2f} s"],
    ]
    out = [f"<h3>{_e(sec.model)}: model card</h3>", _table(["", ""], rows)]
    if c.training_data:
        out.append("<b>Training data</b>")
        out.append(
            _table(
                ["dataset", "splits", "licence"],
                [
                    [str(d.get("dataset", "")), str(d.get("splits", "")), str(d.get("licence", ""))]
                    for d in c.training_data
                ],
            )
        )
    if c.metrics:
        keys = [k for k in headline if any(k in m for m in c.metrics.values())] or [
            k for k in next(iter(c.metrics.values())) if isinstance(next(iter(c.metrics.values()))[k], float)
        ][:4]
        rows_m = []
        for split, m in c.metrics.items():
            kind = "out of domain" if "ood" in split else "held out"
            cells = []
            for k in keys:
                v = m.get(k)
                ci = m.get(f"{k}_ci") or m.get(f"{k}_interval")
                cells.append(_value(v) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if isinstance(ci, (list, tuple)) else ""))
            rows_m.append([split, kind, str(m.get("images", "—")), *cells])
        out.append(
            "<b>The card's own figures</b> <span class='muted'>(no interval is recorded on the card "
            "unless shown in brackets)</span>"
        )
        out.append(_table(["split", "", "images", *[label(k)[0] for k in keys]], rows_m, set(range(2, 3 + len(keys)))))
    limits = (
        [
            f"{split}: {label(keys[0])[0]} {_value(m.get(keys[0]))} (out of domain)"
            for split, m in c.metrics.items()
            if "ood" in split and keys
        ]
        if c.metrics
        else []
    )
    limits.append(
        f"trained for {' – '.join(f'{g:g}' for g in c.input.gsd_range_m)} m imagery; other GSDs are out of range"
    )
    limits += [str(v) for k, v in c.extra.items() if k.endswith("_note") and isinstance(v, str) and len(v) < 400]
    out.append("<b>Known limits</b><ul>" + "".join(f"<li>{_e(x)}</li>" for x in limits) + "</ul>")
    out.append("<b>Options</b>" + _table(["option", "value"], [list(r) for r in sec.options]))
    return "".join(out)


def _headline(rep: Report) -> str:
    a = rep.runs[0]
    if a.result is None:
        return ""
    keys = rep.headline + [k for k in a.intervals if k not in rep.headline and k in ("overall_accuracy", "kappa")]
    two = len(rep.runs) == 2 and bool(rep.difference)
    head = ["figure"]
    rows = []
    for r in rep.runs if two else [a]:
        head += [f"{r.model}", "95 % interval"]
    if two:
        head += ["difference (2nd − 1st)", "95 % interval"]
    head += ["trivial baseline"]
    for k in keys:
        row = [label(k)[0]]
        for r in rep.runs if two else [a]:
            v = r.result.values.get(k) if r.result is not None else None
            iv = r.intervals.get(k)
            row += [_value(v), iv.text() if iv else "—"]
        if two:
            d = rep.difference.get(k)
            row += [f"{d[0]:+.3f}" if d and not math.isnan(d[0]) else "—", d[1].text() if d and d[1] else "—"]
        bl = a.baseline.get(k)
        row.append(f"{bl[0]:.3f} ({bl[1]})" if bl else "—")
        rows.append(row)
    out = [
        "<div class='keep'><h2>The numbers (inside the extent)</h2>",
        _table(head, rows, set(range(1, len(head)))),
        f"<p class='muted'>Intervals: {_e(rep.method)}{'; the difference is paired on the same blocks' if two and rep.paired else ''}. "
        "Trivial baseline: the best constant map (every pixel one class) for pixel figures; object figures 0. "
        "— where a figure has no interval (means of per-image scores such as boundary F1 and APLS).</p>",
    ]
    return "".join(out)


def _all_figures(rep: Report) -> str:
    rows = []
    for k in rep.keys:
        name, definition = label(k)
        cells = [name]
        for r in rep.runs:
            cells.append(_value(r.result.values.get(k)) if r.result is not None else "—")
        cells.append(definition)
        rows.append(cells)
    return "<h3>Every figure, with its definition</h3>" + _table(
        ["figure", *[r.model for r in rep.runs], "definition"], rows, set(range(1, 1 + len(rep.runs)))
    )


def _per_class(sec: RunSection) -> str:
    res = sec.result
    if res is None or not res.per_class:
        return ""
    from rsviz.evaluation import per_class_rows

    rows = per_class_rows(res)
    head = list(rows[0])
    out = [
        f"<h3>{_e(sec.model)}: per class</h3>",
        _table(head, [[_value(r[h]) for h in head] for r in rows], set(range(1, len(head)))),
    ]
    for f in sec.figures:
        out.append(f"<figure class='fig'><img alt='figure' src='{_fig(f)}'></figure>")
    return "".join(out)


def _pictures(rep: Report) -> str:
    out = ["<h2>Errors as pictures</h2>"]
    if rep.side_by_side:
        out.append(f"<h3>Side by side: {_e(rep.runs[0].model)} (left) · {_e(rep.runs[1].model)} (right)</h3>")
        if rep.swipes:
            out.append("<div class='row'>" + "".join(_picture(p, "pair") for p in rep.swipes) + "</div>")
        for p, q in rep.side_by_side:
            out.append(
                f"<div class='pair'>{_picture(Picture(p.caption, p.image), 'pair')}"
                f"{_picture(Picture(q.caption, q.image), 'pair')}</div>"
            )
    else:
        for sec in rep.runs:
            out.append(
                f"<h3>{_e(sec.model)}</h3><div class='row'>" + "".join(_picture(p) for p in sec.panels) + "</div>"
            )
    for sec in rep.runs:
        if sec.false_positives or sec.misses:
            out.append(
                f"<h3>{_e(sec.model)}: largest false positives (red) and misses (blue), with their best IoU</h3>"
            )
            out.append("<div class='row'>" + "".join(_picture(p, "crop") for p in sec.false_positives) + "</div>")
            out.append("<div class='row'>" + "".join(_picture(p, "crop") for p in sec.misses) + "</div>")
    return "".join(out)


def report_html(rep: Report) -> str:
    """The report as one self-contained HTML document (inline CSS, ``data:`` images, nothing external).

    Args:
        rep: A :func:`~rsviz.report.build_report` report.

    Returns:
        The HTML text.
    """
    when = datetime.fromtimestamp(rep.created, timezone.utc)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(rep.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(rep.title)}</h1>",
        f"<p class='muted'>{_e(rep.where.scene_name)} · generated {when:%Y-%m-%d %H:%M UTC} by rsviz "
        f"{_e(rep.runs[0].rsviz_version)} · runs {_e(', '.join(r.key for r in rep.runs))}</p>",
        _where(rep),
        _headline(rep),
        _all_figures(rep) if rep.keys else "",
        "".join(_per_class(s) for s in rep.runs),
        _pictures(rep),
        "<h2>What was run</h2>",
        "".join(_card(s, rep.headline) for s in rep.runs),
    ]
    if rep.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in rep.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def report_pdf(rep: Report | str) -> bytes:
    """The report (or its :func:`report_html`) as PDF, laid out by WeasyPrint.

    Raises:
        RsvizError: WeasyPrint or its system libraries (pango) are missing.
    """
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:
        raise RsvizError(f"PDF reports need WeasyPrint and pango: {exc}") from exc
    text = rep if isinstance(rep, str) else report_html(rep)
    pdf = HTML(string=text, base_url=None).write_pdf()
    assert pdf is not None
    return bytes(pdf)


def write_report(rep: Report, out: str | Path) -> Path:
    """Write the report as HTML or PDF, by the suffix of ``out``.

    Raises:
        RsvizError: A suffix other than ``.html`` / ``.htm`` / ``.pdf``.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix in (".html", ".htm"):
        out.write_text(report_html(rep), encoding="utf-8")
    elif suffix == ".pdf":
        out.write_bytes(report_pdf(rep))
    else:
        raise RsvizError(f"write the report to a .html or .pdf file, not {out.name!r}")
    return out
