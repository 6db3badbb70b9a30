"""Where rsviz finds what does not live inside the Python package: the model store and the Leaflet assets.

Both resolve like the data catalog (:func:`rsviz.data.catalog.data_dir`): an environment variable
first, then the repository checkout the package was imported from (an editable install or a source
tree). A non-editable install has no checkout beside it, so it needs the variables.

* :func:`weights_dir`: ``RSVIZ_WEIGHTS_DIR``, else ``<repository>/weights`` (the bundled models; more
  model folders are added with ``RSVIZ_MODELS_PATH``, see :mod:`rsviz.models.api`).
* :func:`static_dir`: ``RSVIZ_STATIC_DIR``, else ``<repository>/static`` (``npm ci --prefix static``
  installs Leaflet and its plugins under ``node_modules``; the app's asset route serves them).
* :func:`cache_dir`: ``RSVIZ_CACHE_DIR``, else ``<user cache>/rsviz/derived``: products rsviz builds from
  the sample data (mosaicked scenes, overviews), never committed and safe to delete.
* :func:`workspace_dir`: ``RSVIZ_WORKSPACE``, else ``<user cache>/rsviz/workspace``: the analyst's scenes
  and runs (COGs and their records), which survive an app restart.

The data mirror (``RSVIZ_DATA_DIR``) is only ever read: nothing is written below it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root when the package is imported from a checkout (``rsviz/`` is one level below).
REPO_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_ENV_VAR = "RSVIZ_WEIGHTS_DIR"
STATIC_ENV_VAR = "RSVIZ_STATIC_DIR"
CACHE_ENV_VAR = "RSVIZ_CACHE_DIR"
WORKSPACE_ENV_VAR = "RSVIZ_WORKSPACE"


def weights_dir() -> Path:
    """Folder of the bundled models: ``$RSVIZ_WEIGHTS_DIR``, else ``<repository>/weights``."""
    env = os.environ.get(WEIGHTS_ENV_VAR)
    return Path(env).expanduser() if env else REPO_ROOT / "weights"


def static_dir() -> Path:
    """Folder of the npm assets the app serves at ``/rsviz/assets``: ``$RSVIZ_STATIC_DIR``, else ``<repository>/static``."""
    env = os.environ.get(STATIC_ENV_VAR)
    return Path(env).expanduser() if env else REPO_ROOT / "static"


def _user_cache() -> Path:
    import pooch

    return Path(pooch.os_cache("rsviz"))


def cache_dir() -> Path:
    """Folder of derived products (mosaics, overviews): ``$RSVIZ_CACHE_DIR``, else ``<user cache>/rsviz/derived``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser().resolve() if env else _user_cache() / "derived"


def workspace_dir() -> Path:
    """Folder of the app's scenes and runs: ``$RSVIZ_WORKSPACE``, else ``<user cache>/rsviz/workspace``."""
    env = os.environ.get(WORKSPACE_ENV_VAR)
    return Path(env).expanduser().resolve() if env else _user_cache() / "workspace"
