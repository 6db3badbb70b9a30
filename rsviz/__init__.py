"""rsviz: quality assurance of remote-sensing segmentation models on an interactive map.

Public API::

    from rsviz import list_models, get_model_card, load_model
"""

from rsviz.errors import RsvizError
from rsviz.models.api import get_model_card, list_models, load_model

__version__ = "0.1.0"
__all__ = ["RsvizError", "get_model_card", "list_models", "load_model", "__version__"]
