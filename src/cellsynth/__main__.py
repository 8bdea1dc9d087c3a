"""``python -m cellsynth`` runs the command line."""

import sys

from cellsynth.cli import main

sys.exit(main())
