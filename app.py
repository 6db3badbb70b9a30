"""rsviz dashboard entry point: ``streamlit run app.py``."""

import streamlit as st

st.set_page_config(page_title="rsviz", page_icon="🛰️", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/map.py", title="Map", icon="🗺️"),
    st.Page("pages/run.py", title="Run", icon="▶️"),
    st.Page("pages/compare.py", title="Compare", icon="🔍"),
    st.Page("pages/metrics.py", title="Metrics", icon="📊"),
    st.Page("pages/scene_classification.py", title="Scene classification", icon="🛰️"),
    st.Page("pages/export.py", title="Export", icon="💾"),
]
st.navigation(pages).run()
