"""Landing page: bundled models, sample scenes, device, and one scene on the map."""

import streamlit as st
from streamlit_folium import st_folium

from rsviz.app import home

st.title("rsviz — segmentation model QA on the map")
home.render_intro()
scene = home.scene_picker()
if scene is not None:
    sample, opts = scene
    m = home.landing_map(sample, **opts)
    st_folium(m, height=560, use_container_width=True, returned_objects=[], key="home-map")
home.render_attribution()
