"""Run: predict the extent with one or two bundled models."""

from rsviz.ui.views import render_run

render_run()
