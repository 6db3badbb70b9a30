"""Streamlit-facing helpers: cached data access and widgets shared by the pages.

Pages under ``pages/`` stay thin; everything they compute lives here or deeper in rsviz.
"""
