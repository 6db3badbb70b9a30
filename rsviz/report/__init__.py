"""The stakeholder QA report of one run or two: one self-contained HTML file, and the same report as PDF.

* :mod:`~rsviz.report.content`: :func:`build_report` gathers what a report says (:class:`Report`).
* :mod:`~rsviz.report.uncertainty`: spatial-block bootstrap intervals of the headline figures.
* :mod:`~rsviz.report.pictures`: overview map from the app's tiles, panels, error crops, confusion matrix.
* :mod:`~rsviz.report.render`: :func:`report_html` (inline CSS, data-URI images) and :func:`report_pdf` (WeasyPrint).
* :mod:`~rsviz.report.legacy`: the first one-file report, :func:`html_report`.
"""

from rsviz.report.content import Report, RunSection, build_report
from rsviz.report.legacy import extent_feature, html_report
from rsviz.report.render import report_html, report_pdf, write_report
from rsviz.report.uncertainty import Interval

__all__ = [
    "Interval",
    "Report",
    "RunSection",
    "build_report",
    "extent_feature",
    "html_report",
    "report_html",
    "report_pdf",
    "write_report",
]
