"""Who is using a sandbox right now, so that the last one out stops it, not the first.

Two commands (or the window and a command) on the default sandbox share it: the first starts it and
the others find it running. The one that started it used to stop it when it finished, and the other
upload then failed mid-way with "refused the connection" (a CLI audit). So each user holds a lease for
as long as it uses the sandbox: an OS file lock, which the OS frees even when its holder is killed
with -9. The sandbox's starter leaves it running while someone else holds one, and the sandbox ends
itself once its starter is gone and no lease is left.

A start lock makes two first users take turns: the second waits and finds the first one's sandbox,
instead of starting a second store on the same data folder ("weed exited with code 255", an audit).

Every step here is best effort: a folder that can't hold the lock files (someone else's, or a file)
means no lease, and the sandbox itself then says, in words, why it can't start there.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import filelock

from desktop_uploader.engine.private import FILE_MODE, private_dir

log = logging.getLogger(__name__)

USERS_DIR = "users"
START_LOCK = "starting.lock"
STALE_SECONDS = 60.0


@dataclass
class Lease:
    """One process's hold on a sandbox; released on purpose, or by the OS when the process dies."""

    lock: filelock.BaseFileLock

    @property
    def users_dir(self) -> Path:
        return Path(self.lock.lock_file).parent

    def release(self) -> None:
        self.lock.release()
        Path(self.lock.lock_file).unlink(missing_ok=True)


def join(data_dir: Path) -> Lease | None:
    """A lease on the sandbox of ``data_dir``; None where no lock file can be made."""
    try:
        users = private_dir(data_dir / USERS_DIR)
        name = f"{os.getpid()}-{secrets.token_hex(4)}.lock"
        lock = filelock.FileLock(users / name, timeout=0, mode=FILE_MODE, thread_local=False)
        lock.acquire()
    except (OSError, filelock.Timeout) as exc:
        log.info("No lease on the sandbox in %s: %s", data_dir, exc)
        return None
    return Lease(lock)


def in_use(data_dir: Path, besides: Lease | None = None) -> bool:
    """Whether anyone but ``besides`` holds a lease; the files of users killed with -9 are cleared."""
    users = data_dir / USERS_DIR
    ours = Path(besides.lock.lock_file) if besides is not None else None
    try:
        files = sorted(users.glob("*.lock"))
    except OSError:
        return False
    for path in files:
        if path == ours:
            continue
        probe = filelock.FileLock(path, timeout=0, thread_local=False)
        try:
            probe.acquire()
        except filelock.Timeout:
            return True
        except OSError:
            continue
        try:
            # Its holder is gone; a young file may be one a new user has made and not yet locked.
            if time.time() - path.stat().st_mtime > STALE_SECONDS:
                path.unlink(missing_ok=True)
        except OSError:
            pass
        finally:
            probe.release()
    return False


def start_lock(data_dir: Path, timeout: float) -> filelock.BaseFileLock | None:
    """Held while a sandbox is looked for and started on ``data_dir``; None where it can't be made.

    Raises ``filelock.Timeout`` if another start holds it beyond ``timeout``.
    """
    try:
        path = private_dir(data_dir) / START_LOCK  # beside the leases, not among them
    except OSError:
        return None
    lock = filelock.FileLock(path, timeout=timeout, mode=FILE_MODE, thread_local=False)
    try:
        lock.acquire()
    except OSError:
        return None
    return lock
