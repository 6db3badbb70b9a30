"""rsviz page script, run by the ``st.App`` of ``app.py`` (start the dashboard with ``streamlit run app.py``).

Icons are Material Symbols, whose font Streamlit serves itself, so they render offline and on machines
without an emoji font. Every page starts with :func:`rsviz.app.views.prelude` (URL state, background runs).
"""

import streamlit as st

st.set_page_config(page_title="rsviz", page_icon=":material/satellite_alt:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/map.py", title="Map", icon=":material/map:"),
    st.Page("pages/run.py", title="Run", icon=":material/play_arrow:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/metrics.py", title="Metrics", icon=":material/bar_chart:"),
    st.Page("pages/scene_classification.py", title="Scene classification", icon=":material/satellite_alt:"),
    st.Page("pages/export.py", title="Export", icon=":material/download:"),
]
st.navigation(pages).run()
