"""Writes each completed upload into the history, from the queue's own events.

It listens to the manager like any other subscriber (the CLI's progress bars, the GUI's bridge), so
an upload is recorded however it was started, from the window or the command line: the engine's one
completion event (``Completed``, emitted once per finished upload) is the single place it hears of.
It never calls back into the manager while handling an event; which server an upload went to is read
from the manager's connection at that moment, which is where the upload itself was sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from desktop_uploader.engine.events import Completed, Event, Queued, Removed, UploadResult
from desktop_uploader.engine.history import THIS_COMPUTER, HistoryEntry, HistoryStore
from desktop_uploader.engine.jobs import ServerConnection
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.methods.base import DIRECT
from desktop_uploader.engine.methods.direct_s3 import DirectTarget

log = logging.getLogger(__name__)

SANDBOX_MARK = "(this computer)"


def s3_path(result: UploadResult) -> str:
    """As ``Row.s3_path``: the server's ``s3://`` URL when it gave one, else the object's key."""
    volume = result.network_volume_path or ""
    return volume if volume.startswith("s3://") else result.s3_key


def server_names(connection: ServerConnection | None, direct: DirectTarget | None, method: str) -> tuple[str, str]:
    """(what a person reads, what identifies the server across sessions) for an upload sent by ``method``."""
    if method == DIRECT:
        if direct is None:
            return "your S3 storage", "direct-s3"
        # Not the endpoint with the bucket pasted on as a path, which read as an address Settings refuses (an audit).
        folder = direct.prefix.strip("/")
        where = f"{direct.bucket}/{folder}" if folder else direct.bucket
        return f"your S3 bucket {where} ({direct.place})", direct.server_id
    if connection is None:
        return "", ""
    if SANDBOX_MARK in connection.label:
        return THIS_COMPUTER, connection.server_id
    return connection.api_url, connection.server_id


def destination_key(manager: UploadManager) -> str:
    """The server key new uploads would go to now ("" when none is connected): for the duplicate check."""
    method = DIRECT if manager.settings.method == "direct-s3" else ""
    return server_names(manager.connection, manager.direct, method)[1]


class HistoryRecorder:
    """Subscribe with ``attach``; every ``Completed`` becomes a history entry."""

    def __init__(self, store: HistoryStore, manager: UploadManager) -> None:
        self.store = store
        self._manager = manager
        self._paths: dict[str, Path] = {}
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None

    @classmethod
    def attach(cls, store: HistoryStore, manager: UploadManager) -> HistoryRecorder:
        recorder = cls(store, manager)
        recorder._unsubscribe = manager.subscribe(recorder.on_event)
        return recorder

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def remember_hash(self, path: Path, sha256: str) -> None:
        """A hash someone already paid for (the duplicate check): kept with the entry if this file completes."""
        with contextlib.suppress(OSError):
            stat = path.stat()
            with self._lock:
                self._hashes[(str(path), stat.st_size, stat.st_mtime_ns)] = sha256

    def on_event(self, event: Event) -> None:
        if isinstance(event, Queued):
            with self._lock:
                self._paths[event.job_id] = Path(event.path)
        elif isinstance(event, Removed):
            with self._lock:
                self._paths.pop(event.job_id, None)
        elif isinstance(event, Completed):
            try:
                self.store.record(self.entry_for(event))
            except (OSError, sqlite3.Error) as exc:  # the upload is done; only its history line is lost
                log.warning("Could not add %s to the upload history: %s", event.result.unique_file_name, exc)

    def entry_for(self, event: Completed) -> HistoryEntry:
        result = event.result
        with self._lock:
            path = self._paths.pop(event.job_id, None)
        mtime_ns, sha256 = 0, ""
        if path is not None:
            with contextlib.suppress(OSError):
                stat = os.stat(path)
                mtime_ns = stat.st_mtime_ns
                with self._lock:
                    sha256 = self._hashes.pop((str(path), stat.st_size, mtime_ns), "")
        server, key = server_names(self._manager.connection, self._manager.direct, result.method)
        return HistoryEntry(
            file_name=Path(result.s3_key).name or result.unique_file_name,
            local_path=str(path or ""),
            comfyui_path=result.comfyui_path or "",
            s3_path=s3_path(result),
            size=result.size,
            method=result.method,
            completed_at=time.time(),
            server=server,
            server_key=key,
            sha256=sha256,
            mtime_ns=mtime_ns,
        )
