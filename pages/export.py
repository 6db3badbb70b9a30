"""Export: COG, GeoJSON polygons, eval.json / CSV and a one-file HTML report."""

from rsviz.app.views import render_export

render_export()
