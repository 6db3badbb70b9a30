"""Metrics: per-class and task metrics computed inside the extent."""

from streamlit_folium import st_folium

from rsviz.app.views import render_metrics

render_metrics(st_folium)
