"""``python -m desktop_uploader`` runs the same entry point as the ``desktop-uploader`` command."""

import sys

from desktop_uploader.cli import main

sys.exit(main())
