"""Batch: a model over a folder of scenes (rsviz batch), per-scene progress, footprints coloured by score."""

from streamlit_folium import st_folium

from rsviz.app.batch_view import render_batch

render_batch(st_folium)
