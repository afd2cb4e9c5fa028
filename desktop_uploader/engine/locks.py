"""One process at a time per upload: an OS file lock per job, released by the OS if the holder dies.

Without it, ``desktop-uploader resume`` in a terminal and the app's own Resume button could both send
the same upload; one completes it, the other finds it gone and starts over elsewhere, leaving an
orphan. A lock file per job id (``fcntl``/``msvcrt`` through ``filelock``) answers "is someone on
this right now?" reliably, including after kill -9, where a lease in the database would go stale.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import filelock

from desktop_uploader.engine.errors import PermanentError
from desktop_uploader.engine.private import FILE_MODE, private_dir


class UploadBusyError(PermanentError):
    """The upload is being worked on by another window or command."""


class UploadLocks:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory or Path(tempfile.gettempdir()) / "desktop-uploader-locks"

    def _lock(self, job_id: str) -> filelock.BaseFileLock:
        private_dir(self.directory)
        return filelock.FileLock(self.directory / f"{job_id}.lock", timeout=0, mode=FILE_MODE, thread_local=False)

    def acquire(self, job_id: str) -> filelock.BaseFileLock:
        lock = self._lock(job_id)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise UploadBusyError(
                "This upload is already running in another Desktop Uploader window or command."
            ) from None
        return lock

    def forget(self, job_id: str) -> None:
        """Remove the lock file of an upload that is finished for good (its record is gone)."""
        (self.directory / f"{job_id}.lock").unlink(missing_ok=True)

    def busy(self, job_id: str) -> bool:
        """True while another process holds the upload (a quick try-and-release)."""
        lock = self._lock(job_id)
        try:
            lock.acquire()
        except filelock.Timeout:
            return True
        lock.release()
        return False
