"""rsviz dashboard entry point: ``streamlit run app.py``.

This file defines the ASGI application: Streamlit's ``st.App`` running the page script
``pages/dashboard.py``, plus the XYZ tile routes (:func:`rsviz.app.routes.tile_routes`) and the Leaflet
assets (:func:`rsviz.app.routes.asset_routes`) served by the
same process, so the map's imagery, ground truth and predictions come from this server, offline and
behind a reverse proxy (``server.baseUrlPath``) alike; a bug on a page is logged with an id and shown as one
line, never a traceback (:func:`rsviz.app.bugs.report_bug`). ``streamlit run app.py`` starts both.
"""

import streamlit as st

from rsviz.app.bugs import report_bug
from rsviz.app.routes import asset_routes, tile_routes

app = st.App("pages/dashboard.py", routes=[*tile_routes(), *asset_routes()], on_script_error=report_bug)
