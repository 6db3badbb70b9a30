"""A bug reaching a page is logged with an id and shown as one line, never a traceback."""

import logging
from unittest import mock

from rsviz.app.bugs import report_bug


def test_a_bug_is_logged_with_an_id_and_shown_without_a_traceback(caplog):
    try:
        raise KeyError("heads")
    except KeyError as e:
        exc = e
    with mock.patch("streamlit.error") as shown, caplog.at_level(logging.ERROR, logger="rsviz.app"):
        assert report_bug(exc) is True  # Streamlit then shows no traceback
    msg = shown.call_args.args[0]
    bug_id = msg.split("error id ")[1][:8]
    assert "Traceback" not in msg and "KeyError" not in msg
    rec = [r for r in caplog.records if bug_id in r.getMessage()]
    assert rec and rec[0].exc_info is not None  # the server log has the traceback
