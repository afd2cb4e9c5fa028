"""How much the sandbox's test storage holds on this computer, and emptying it.

The sandbox keeps every file uploaded to it, whole, in the user data folder: a first-time user who
tries the app with a few checkpoints has gigabytes there that nothing in the app mentioned, and the
only way to get them back was to find the folder. Emptying removes the store (SeaweedFS's volumes and
its filer) and the API's staging folder; the sandbox's identity and leases stay, and the next start
makes a new, empty store with the same credentials.

Emptying a store that a running sandbox serves would pull its files from under it, so it is refused
while one answers or anyone holds a lease, and it holds the start lock so none starts meanwhile.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import filelock

from desktop_uploader.sandbox.info import running_sandbox
from desktop_uploader.sandbox.users import in_use, start_lock

log = logging.getLogger(__name__)

# What uploads fill: weed's store (seaweed.py) and the API's staging folder for chunks (runtime.py).
STORED_DIRS = ("weed", "spool")
IN_USE = "The test storage is in use by another window or command; empty it when they are done."


class SandboxInUseError(Exception):
    """A sandbox serves the store (or is starting on it) right now."""


@dataclass(frozen=True)
class Emptied:
    freed: int  # bytes
    left: int  # bytes that could not be removed (someone else's files, a read-only folder)


def stored_size(data_dir: Path) -> int:
    """Bytes the sandbox's store and staging take on disk (0 when there is none)."""
    total = 0
    for name in STORED_DIRS:
        for folder, _dirs, files in os.walk(data_dir / name):
            for file in files:
                try:
                    total += (Path(folder) / file).lstat().st_size
                except OSError:  # gone meanwhile
                    continue
    return total


def holds_store(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a sandbox's store: a CLI audit's ``--empty`` on a folder that never held
    one said "Emptied … 0 B freed" and left a lock file there."""
    return any((data_dir / name).is_dir() for name in STORED_DIRS)


def empty_store(data_dir: Path) -> Emptied:
    """Remove what the sandbox stores; raises SandboxInUseError while a sandbox runs or starts on it."""
    try:
        lock = start_lock(data_dir, timeout=1.0)
    except filelock.Timeout:
        raise SandboxInUseError(IN_USE) from None
    try:
        if running_sandbox(data_dir) is not None or in_use(data_dir):
            raise SandboxInUseError(IN_USE)
        held = stored_size(data_dir)
        for name in STORED_DIRS:
            shutil.rmtree(data_dir / name, ignore_errors=True)  # what can't be removed is counted as kept
        left = stored_size(data_dir)
        log.info("Emptied the sandbox's store in %s: %d bytes freed, %d left", data_dir, held - left, left)
        return Emptied(held - left, left)
    finally:
        if lock is not None:
            lock.release()
