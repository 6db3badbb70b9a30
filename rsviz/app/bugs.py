"""What the user sees when rsviz itself fails: a short message with an id, never a traceback.

User mistakes are caught where they happen and shown as ``st.error`` with the library's message (what to
fix). Anything else reaching the page is a bug of ours: :func:`report_bug` (``st.App(on_script_error=...)``)
logs it with its traceback and an id to the server log and shows the user one line with that id; the
session's scene, extent and runs are untouched, so nothing the user made is lost.
"""

from __future__ import annotations

import logging
import uuid

log = logging.getLogger("rsviz.app")


def report_bug(exc: Exception) -> bool:
    """Log an uncaught exception of a page with an id and show the user a short message quoting it.

    Args:
        exc: The exception Streamlit caught while running the page.

    Returns:
        True: Streamlit shows no traceback.
    """
    import streamlit as st

    bug_id = uuid.uuid4().hex[:8]
    log.error("rsviz bug %s: %s", bug_id, exc, exc_info=exc)
    st.error(
        f"Something went wrong on our side (error id {bug_id}); the server log has the details. Your scene, "
        "extent and runs are kept: reload the page, or go on with another page."
    )
    return True
