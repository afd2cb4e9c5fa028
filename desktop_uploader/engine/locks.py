"""One process at a time per upload: an OS file lock per job, released by the OS if the holder dies.

Without it, ``desktop-uploader resume`` in a terminal and the app's own Resume button could both send
the same upload; one completes it, the other finds it gone and starts over elsewhere, leaving an
orphan. A lock file per job id (``fcntl``/``msvcrt`` through ``filelock``) answers "is someone on
this right now?" reliably, including after kill -9, where a lease in the database would go stale.
"""

from __future__ import annotations

import errno
import logging
import tempfile
from pathlib import Path

import filelock

from desktop_uploader.engine.errors import DiskFullError, PermanentError, StateError, UploaderError
from desktop_uploader.engine.private import FILE_MODE, private_dir

log = logging.getLogger(__name__)


class UploadBusyError(PermanentError):
    """The upload is being worked on by another window or command."""


class UploadLocks:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory or Path(tempfile.gettempdir()) / "desktop-uploader-locks"

    def _lock(self, job_id: str) -> filelock.BaseFileLock:
        private_dir(self.directory)
        return filelock.FileLock(self.directory / f"{job_id}.lock", timeout=0, mode=FILE_MODE, thread_local=False)

    def acquire(self, job_id: str) -> filelock.BaseFileLock:
        """The upload's lock; UploadBusyError if someone holds it, an UploaderError if it can't be made."""
        try:
            lock = self._lock(job_id)
            lock.acquire()
        except filelock.Timeout:
            raise UploadBusyError(
                "This upload is already running in another Desktop Uploader window or command."
            ) from None
        except OSError as exc:  # a full disk (or inodes) on the first upload, before the lock file exists
            raise _unavailable(exc) from exc
        return lock

    def forget(self, job_id: str) -> None:
        """Remove the lock file of an upload that is finished for good (its record is gone)."""
        (self.directory / f"{job_id}.lock").unlink(missing_ok=True)

    def busy(self, job_id: str) -> bool:
        """True while another process holds the upload (a quick try-and-release)."""
        try:
            lock = self._lock(job_id)
            lock.acquire()
        except filelock.Timeout:
            return True
        except OSError as exc:
            # No lock file can be made (a full disk): then nobody holds one either.
            log.info("Lock of %s can't be checked (%s); taken as free", job_id, exc.strerror)
            return False
        lock.release()
        return False


def _unavailable(exc: OSError) -> UploaderError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError()
    return StateError(f"This upload's lock file can't be made ({exc.strerror}).")
