"""rsviz page script, run by the ``st.App`` of ``app.py`` (start the dashboard with ``streamlit run app.py``).

It lives in ``pages/`` beside the pages it lists: Streamlit's legacy discovery of a ``pages/`` folder next to
the main script would otherwise answer a deep link (``/compare``) on a fresh server before this script has
declared the navigation.

Navigation icons are Material Symbols, whose font Streamlit serves itself, so they render offline and on
machines without an emoji font; the favicon is drawn here (a Material or emoji page icon is fetched from a CDN). Every page starts with :func:`rsviz.app.views.prelude` (URL state, background runs).
"""

import streamlit as st

from rsviz.app.mapview import favicon

st.set_page_config(page_title="rsviz", page_icon=favicon(), layout="wide")

pages = [
    st.Page("home.py", title="Home", icon=":material/home:", default=True),
    st.Page("map.py", title="Map", icon=":material/map:"),
    st.Page("run.py", title="Run", icon=":material/play_arrow:"),
    st.Page("compare.py", title="Compare", icon=":material/compare:"),
    st.Page("metrics.py", title="Metrics", icon=":material/bar_chart:"),
    st.Page("batch.py", title="Batch", icon=":material/dataset:"),
    st.Page("scene_classification.py", title="Scene classification", icon=":material/satellite_alt:"),
    st.Page("sentinel2.py", title="Sentinel-2", icon=":material/public:"),
    st.Page("export.py", title="Export", icon=":material/download:"),
    st.Page("models.py", title="Models", icon=":material/model_training:"),
]
st.navigation(pages).run()
