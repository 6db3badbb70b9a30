"""Run: predict the extent with one or two bundled models."""

from rsviz.app.views import render_run

render_run()
