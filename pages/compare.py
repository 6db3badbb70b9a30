"""Compare: prediction, errors, edges, reconstruction, height and uncertainty side by side."""

from rsviz.app.views import render_compare

render_compare()
