"""The app's own files are the user's alone: folders 0700 and files 0600 on POSIX, whatever the umask.

The resume store holds file paths and upload ids, the log names every file sent, and the settings
and credential files may hold a server URL or a secret; on a shared machine none of that is anyone
else's business. Modes are set explicitly (``chmod`` after creating), because the mode passed to
``mkdir``/``open`` is only a ceiling that the umask lowers, never raises or tightens to what we want.
On Windows these are no-ops: a profile's folders are private there already.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

POSIX = os.name == "posix"
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make ``path`` itself 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if POSIX:
        with contextlib.suppress(OSError):  # a folder we don't own: nothing we can do, and not fatal
            os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if it is missing, and make it 0600 either way."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        if POSIX:
            with contextlib.suppress(OSError):
                os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)
    return path


def make_private(path: Path) -> None:
    """0600 for an existing file the app did not create itself (SQLite's -wal and -shm); quiet if it is gone."""
    if POSIX:
        with contextlib.suppress(OSError):
            os.chmod(path, FILE_MODE)
