"""``python -m desktop_uploader`` and the ``desktop-uploader`` command: one entry point, :func:`run`.

Imports allocate hundreds of thousands of objects that live until exit; the collector would walk
them again and again while they load, so it is off during the imports, and what they made is then
frozen out of its way (a few percent of start-up; see docs/benchmarks.md, "Per-file overhead").
The console script names :func:`run` rather than ``desktop_uploader.cli:main`` so that it gets the
same pause: its wrapper imports the module it names before calling anything in it, and this module
imports nothing heavy itself.
"""

import gc
import sys


def run() -> int:
    """Import the CLI with the collector paused, freeze what the imports made, then run it."""
    gc.disable()
    try:
        from desktop_uploader.cli import main
    finally:
        gc.enable()
    gc.freeze()
    return main()


if __name__ == "__main__":
    sys.exit(run())
