"""Map: open a scene, see imagery and ground truth, draw the extent to analyse."""

from streamlit_folium import st_folium

from rsviz.app.views import render_map

render_map(st_folium)
