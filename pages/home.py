"""Landing page: device, bundled models, first-run sample data, one sample scene on the map."""

import streamlit as st
from streamlit_folium import st_folium

from rsviz.app import home
from rsviz.app.views import prelude

st.title("rsviz — segmentation model QA on the map")
prelude()
home.render_intro()
home.render_first_run()
home.render_scene(st_folium)
home.render_attribution()
