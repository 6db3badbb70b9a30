"""Sentinel-2: the BigEarthNet-19 multi-label models over an extent of an L2A scene."""

from streamlit_folium import st_folium

from rsviz.app.sentinel2_page import render_sentinel2

render_sentinel2(st_folium)
