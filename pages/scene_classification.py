"""Scene classification: Sentinel-2 multi-label patches."""

from rsviz.ui.views import render_scene_classification

render_scene_classification()
