"""Entry point of the frozen app: the same ``desktop-uploader`` command, GUI when run bare."""

import multiprocessing
import sys

from desktop_uploader.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
