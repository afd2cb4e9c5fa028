"""``python -m desktop_uploader`` runs the same entry point as the ``desktop-uploader`` command.

Imports allocate hundreds of thousands of objects that live until exit; the collector would walk
them again and again while they load, so it is off during the imports, and what they made is then
frozen out of its way (a few percent of start-up; see docs/benchmarks.md, "Per-file overhead").
"""

import gc
import sys

gc.disable()
from desktop_uploader.cli import main  # noqa: E402 - after the collector is paused, on purpose

gc.enable()
gc.freeze()

sys.exit(main())
