"""Scene classification: Sentinel-2 multi-label patches."""

from rsviz.app.views import render_scene_classification

render_scene_classification()
