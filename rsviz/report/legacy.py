"""The first one-file HTML report (figures, metrics, extent GeoJSON, card): kept for callers of :func:`html_report`."""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from rsviz.display import Panel
from rsviz.evaluation import EvalResult, fmt, metric_label


def _png(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fig_png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def html_report(
    *,
    title: str,
    scene_name: str,
    extent_geojson: dict[str, Any] | None,
    panels: Sequence[Panel],
    metrics: EvalResult | None,
    figures: list[Any] | None,
    card: dict[str, Any],
    options: dict[str, Any],
    attribution: str = "",
    sections: Sequence[tuple[str, str]] = (),
) -> str:
    """Self-contained HTML (images inlined as base64 PNG; no external resources).

    Args:
        title: Report title.
        scene_name: Scene shown.
        extent_geojson: The extent as a GeoJSON Feature (EPSG:4326) or None.
        panels: :class:`~rsviz.display.Panel` images ((H, W, 3) uint8) with their captions.
        metrics: :func:`~rsviz.evaluation.evaluate` result or None.
        figures: Matplotlib Figures (e.g. confusion matrices).
        card: Model card dict.
        options: Inference options.
        attribution: Data attribution line.
        sections: ``(title, HTML body)`` sections added after the figures (the body is trusted HTML the caller
            escaped, e.g. the per-scene table of ``rsviz batch``).

    Returns:
        The HTML document.
    """
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}img{max-width:100%}"
        ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:12px}"
        "figure{margin:0}figcaption{font-size:12px;color:#444}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}pre{background:#f5f5f5;padding:8px;overflow:auto}</style>",
        f"</head><body><h1>{e(title)}</h1>",
        f"<p>Scene: <b>{e(scene_name)}</b> · generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · "
        f"options: {e(json.dumps(options))}</p>",
    ]
    if metrics:
        parts.append(
            "<h2>Metrics (inside the extent)</h2><table><tr><th>metric</th><th>value</th><th>definition</th></tr>"
        )
        for k, v in metrics.values.items():
            name, definition = metric_label(k)
            parts.append(f"<tr><td>{e(name)}</td><td>{e(fmt(v, 4))}</td><td>{e(definition)}</td></tr>")
        parts.append("</table>")
        if metrics.per_class:
            parts.append(
                "<h3>Per class</h3><table><tr><th>class</th><th>IoU</th><th>precision</th><th>recall</th>"
                "<th>F1</th><th>support</th></tr>"
            )
            for c in metrics.per_class:
                parts.append(
                    "<tr>"
                    + "".join(
                        f"<td>{e(fmt(v, 4))}</td>" for v in (c.name, c.iou, c.precision, c.recall, c.f1, c.support)
                    )
                    + "</tr>"
                )
            parts.append("</table>")
    if panels:
        parts.append("<h2>Panels</h2><div class='grid'>")
        for pnl in panels:
            parts.append(
                f"<figure><img src='data:image/png;base64,{_png(pnl.image)}'><figcaption>{e(pnl.caption)}"
                "</figcaption></figure>"
            )
        parts.append("</div>")
    for fig in figures or []:
        parts.append(f"<p><img src='data:image/png;base64,{_fig_png(fig)}'></p>")
    for title_, body in sections:
        parts.append(f"<h2>{e(title_)}</h2>{body}")
    if extent_geojson:
        parts.append(f"<h2>Extent (GeoJSON, EPSG:4326)</h2><pre>{e(json.dumps(extent_geojson, indent=1))}</pre>")
    parts.append(f"<h2>Model card</h2><pre>{e(json.dumps(card, indent=1))}</pre>")
    if attribution:
        parts.append(f"<p><small>{e(attribution)}</small></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def extent_feature(bounds: Sequence[float] | None) -> dict[str, Any] | None:
    """GeoJSON Feature of EPSG:4326 ``(west, south, east, north)``."""
    if bounds is None:
        return None
    w, s, e, n = bounds
    return {
        "type": "Feature",
        "properties": {"crs": "EPSG:4326"},
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
    }
