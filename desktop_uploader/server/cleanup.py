"""Unfinished uploads are not kept for ever: storage bills for their parts and their staged chunks.

A client that gives up without aborting (a crash, a deleted queue, a user who never comes back)
leaves a multipart upload in storage and, for the chunked path, staged chunks beside it.
``Janitor.sweep`` aborts every multipart upload under the prefix this server owns
(``{key_prefix}/``) that was initiated more than ``stale_upload_seconds`` ago, deletes its staged
chunks, and deletes staged objects nothing has written for as long (their upload is gone). It
logs each removal. ``desktop-uploader serve`` sweeps every ``cleanup_interval_seconds`` on a
thread; ``desktop-uploader cleanup`` sweeps once. The clock is injected, so tests need not wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from desktop_uploader.server.chunked import ChunkedService
from desktop_uploader.server.errors import ApiError
from desktop_uploader.server.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removed:
    what: str  # "upload" (a multipart upload, with its staged chunks) or "staged" (an orphaned staged object)
    name: str  # the S3 key of the upload, or of the staged object
    upload_id: str
    started: datetime

    def describe(self) -> str:
        if self.what == "upload":
            return f"aborted {self.name} (upload {self.upload_id[:16]}…), started {self.started:%Y-%m-%d %H:%M:%S %Z}"
        return f"deleted staged {self.name}, written {self.started:%Y-%m-%d %H:%M:%S %Z}"


class Janitor:
    def __init__(
        self,
        storage: Storage,
        chunked: ChunkedService,
        prefix: str,
        max_age_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.storage = storage
        self.chunked = chunked
        self.prefix = prefix.rstrip("/") + "/"
        self.max_age = timedelta(seconds=max_age_seconds)
        self.clock = clock

    def sweep(self) -> list[Removed]:
        """Abort what is older than the age limit; return (and log) what was removed."""
        cutoff = self.clock() - self.max_age
        removed = [*self._uploads(cutoff), *self._orphaned_staging(cutoff)]
        log.info(
            "Cleanup: %d unfinished upload(s) and staged object(s) older than %s removed", len(removed), self.max_age
        )
        return removed

    def _uploads(self, cutoff: datetime) -> list[Removed]:
        removed: list[Removed] = []
        for upload in self.storage.list_uploads(self.prefix):
            key, upload_id, started = upload.get("Key"), upload.get("UploadId"), upload.get("Initiated")
            if not (isinstance(key, str) and isinstance(upload_id, str) and isinstance(started, datetime)):
                continue
            if started > cutoff or not key.startswith(self.prefix):
                continue
            try:
                self.storage.abort(key, upload_id)
            except ApiError as exc:
                if exc.status != 404:  # 404: completed or aborted meanwhile, which is just as good
                    log.warning("Cleanup could not abort %s: %s", key, exc.message)
                    continue
            self.chunked.discard(upload_id)
            entry = Removed("upload", key, upload_id, started)
            log.info("Cleanup %s", entry.describe())
            removed.append(entry)
        return removed

    def _orphaned_staging(self, cutoff: datetime) -> list[Removed]:
        removed: list[Removed] = []
        for key, _, written in self.storage.list_objects(self.chunked.staging_root()):
            if written > cutoff:
                continue
            self.storage.delete_object(key)
            entry = Removed("staged", key, "", written)
            log.info("Cleanup %s", entry.describe())
            removed.append(entry)
        return removed

    def every(self, interval_seconds: float) -> Callable[[], None]:
        """Sweep on a daemon thread every ``interval_seconds``; returns the function that stops it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval_seconds):
                try:
                    self.sweep()
                except Exception:  # a storage outage must not end the schedule
                    log.exception("Cleanup sweep failed; trying again in %ss", interval_seconds)

        threading.Thread(target=loop, name="upload-cleanup", daemon=True).start()
        return stop.set
