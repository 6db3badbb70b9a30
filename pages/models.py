"""Models: the registered models and your own model folders."""

from rsviz.app.models_view import render_models

render_models()
