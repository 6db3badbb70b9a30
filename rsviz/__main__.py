"""``python -m rsviz``: see :mod:`rsviz.cli`."""

import sys

from rsviz.cli import main

sys.exit(main())
