"""The resume store's file on disk, before SQLite opens it: a peek at its version, and setting it aside.

A store that can't be used is never deleted: it is renamed ``uploads.sqlite3.damaged-<time>`` (with its
-wal and -shm), and a ``.reason`` file beside it says why, for the person or for support. A store
written by a newer version of the app is not damaged at all: it is peeked at read-only and left alone.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from desktop_uploader import __version__
from desktop_uploader.engine.errors import StateError
from desktop_uploader.engine.private import private_file
from desktop_uploader.engine.state_schema import SCHEMA_VERSION


class NewerStoreError(StateError):
    """The store was written by a newer version of the app: not damaged, and not ours to change."""

    def __init__(self, version: int) -> None:
        super().__init__(f"written by a newer version of Desktop Uploader (schema {version})")
        self.version = version


def newer_schema(path: Path) -> int | None:
    """The schema version of the store at ``path`` if it is newer than ours; opened read-only, never changed."""
    if not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
    except (sqlite3.Error, OSError, ValueError):
        return None  # unreadable or damaged: the normal opening finds out and sets it aside
    return version if version > SCHEMA_VERSION else None


def damaged_name(path: Path) -> Path:
    """Where a damaged file is kept: ``<name>.damaged-<time>``, numbered if that is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for number in range(2, 100):
        if not aside.exists():
            break
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    return aside


def set_aside(path: Path, reason: str) -> Path | None:
    """Rename the store (and its -wal and -shm) out of the way and write why beside it; None if it can't be."""
    aside = damaged_name(path)
    try:
        path.replace(aside)
    except OSError:
        return None
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(str(path) + suffix).replace(Path(str(aside) + suffix))
    with contextlib.suppress(OSError):
        note = private_file(Path(f"{aside}.reason"))
        note.write_text(
            f"Set aside by Desktop Uploader {__version__} on {time.strftime('%Y-%m-%d %H:%M:%S %z')}: {reason}\n",
            encoding="utf-8",
        )
    return aside
