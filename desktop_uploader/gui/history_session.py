"""The session's memory across restarts: the upload history, the duplicate check, the saved queue.

No widgets and no waiting on the GUI thread: the history is read and written, files are hashed and
the queue is saved on worker threads (``in_thread``); only the questions run here, on the window's
thread. The session makes one of these and calls it at three moments: a drop, the start, the quit;
in between it keeps the saved queue current by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.history import HistoryEntry, HistoryStore
from desktop_uploader.engine.history_recorder import HistoryRecorder, destination_key
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.methods.base import DIRECT
from desktop_uploader.engine.rows import Row
from desktop_uploader.engine.saved_queue import SavedQueue, SavedRow, save_queue, take_queue
from desktop_uploader.gui.queue_model import UploadQueueModel
from desktop_uploader.gui.tasks import in_thread

log = logging.getLogger(__name__)

AskUploaded = Callable[[list[tuple[Path, HistoryEntry]]], Awaitable[bool]]  # True: skip them


class SessionMemory:
    def __init__(self, data_dir: Path, manager: UploadManager, model: UploadQueueModel) -> None:
        self.data_dir = data_dir
        self.store = HistoryStore.in_data_dir(data_dir)
        self.recorder = HistoryRecorder.attach(self.store, manager)
        self._manager = manager
        self._waiting: list[tuple[str, SavedRow]] = []  # what waits in the queue now
        self._saved: list[tuple[str, SavedRow]] = []  # what the file on disk says
        # Its own single thread, not the loop's: a change can come while no asyncio loop runs (a test
        # feeding the model), and one thread writes the lists in the order they were made.
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="queue-save")
        self._closing = False
        self._signature: tuple[int, int, int] = (0, 0, 0)
        self.watch(model)

    # -- duplicates -----------------------------------------------------------------------------------------

    def _uploaded(self, key: str, paths: list[Path]) -> list[tuple[Path, HistoryEntry]]:
        found = []
        for path in paths:
            try:
                entry, digest = self.store.duplicate_of(key, path)
            except (OSError, sqlite3.Error):
                continue  # unreadable now (adding it says so), or the history is
            if entry is not None:
                found.append((path, entry))
            elif digest:
                self.recorder.remember_hash(path, digest)
        return found

    def _same_size(self, key: str, paths: list[Path]) -> list[Path]:
        found = []
        for path in paths:
            with contextlib.suppress(OSError, sqlite3.Error):  # a history that can't be read never blocks a drop
                if self.store.same_size(key, path.stat().st_size):
                    found.append(path)
        return found

    async def skip_uploaded(
        self, chosen: list[Path], ask: AskUploaded, say: Callable[[str], None]
    ) -> tuple[list[Path], list[str]]:
        """``chosen`` without the files already uploaded to this server that the person chose to skip,
        and a sentence for each skipped file. Only files whose size matches an upload are hashed."""
        key = destination_key(self._manager)
        if not key or not chosen:
            return chosen, []
        suspects = await in_thread(self._same_size, key, chosen)
        if not suspects:
            return chosen, []
        which = f"{suspects[0].name} is" if len(suspects) == 1 else f"{len(suspects)} files are"
        there = "in your S3 storage" if self._manager.settings.method == DIRECT else "on this server"
        say(f"Checking whether {which} already {there}…")
        found = await in_thread(self._uploaded, key, suspects)
        if not found or not await ask(found):
            return chosen, []
        skipped = {path for path, _ in found}
        said = [_skipped(path, entry) for path, entry in found]
        return [p for p in chosen if p not in skipped], said

    # -- the queue across restarts --------------------------------------------------------------------------

    def watch(self, model: UploadQueueModel) -> None:
        """Keep the saved queue current while the app runs, so a crash or a kill loses no waiting file.

        The model's summary changes whenever a row changes state (at most every 100 ms); when the
        number of rows, queued rows or paused rows changed, the file is rewritten on a thread of its
        own, one write at a time. A rename alone waits for the next such change, or for the quit.
        """
        model.summaryChanged.connect(lambda _summary: self._changed(model))

    @staticmethod
    def _waiting_rows(rows: list[Row], *, pausing: bool = False) -> list[tuple[str, SavedRow]]:
        """The rows to bring back next time, in queue order; ``pausing``: what runs now is being paused too."""
        return [
            (row.job_id, SavedRow(str(row.path), row.display_name, row.status is not Status.QUEUED, row.job_id))
            for row in rows
            if row.status in (Status.QUEUED, Status.PAUSED) or (pausing and row.status.active)
        ]

    def _changed(self, model: UploadQueueModel) -> None:
        if self._closing:
            return
        # The summary changes with every progress tick; the rows are only looked at when a count of
        # them changes (listing 5,000 queued rows takes ~15 ms, too much for every 100 ms tick).
        counts = model.status_counts()
        signature = (model.rowCount(), counts[Status.QUEUED], counts[Status.PAUSED])
        if signature == self._signature:
            return
        self._signature = signature
        self._waiting = self._waiting_rows(model.rows())
        if self._waiting != self._saved:
            self._saved = list(self._waiting)
            self._writes.submit(self._save, self._saved)  # one thread: written in the order they were made

    def closing(self, rows: list[Row]) -> None:
        """Before the manager closes (on the GUI thread, from the rows): what waits now. Nothing, after a cancel.

        What is running now is being paused ("Pause and quit"), so it is kept as paused: it comes back as
        the person left it, "Paused", where it came back "Interrupted" like after a crash (a GUI audit).
        """
        self._closing = True
        self._waiting = self._waiting_rows(rows, pausing=True)

    def _save(self, waiting: list[tuple[str, SavedRow]]) -> None:
        try:
            save_queue(self.data_dir, SavedQueue([row for _, row in waiting], time.time()))
        except OSError as exc:  # a full or read-only disk: the uploads go on; only this list is not kept
            log.warning("The queue could not be saved for next time: %s", exc)

    async def save_waiting(self) -> None:
        """After the manager closed: what waited then (what ran is paused now and comes back from its record)."""
        await asyncio.wrap_future(self._writes.submit(self._save, self._waiting))  # after any still pending
        self._writes.shutdown(wait=False)

    def _restore(self) -> list[str]:
        """Rows come back in the order the person left them. Started uploads came first, then the files that
        waited: a file started by hand ahead of the one above it swapped places after a restart."""
        saved = take_queue(self.data_dir)
        paused = saved.paused_ids
        listed = {row.job_id for row in saved.rows if row.job_id}
        unlisted = [record.id for record in self._manager.state.unfinished() if record.id not in listed]
        try:
            done = (
                {e.local_path for e in self.store.entries() if e.completed_at >= saved.saved_at}
                if saved.rows
                else set()
            )
        except (OSError, sqlite3.Error):
            done = set()
        # Uploads the list doesn't name (a crash before it was written) first, as they started.
        interrupted = self._manager.restore_interrupted(paused=paused, only=unlisted) if unlisted else []
        for row in saved.rows:
            if row.path in done:
                continue  # it completed after the list was last written (a crash right then)
            if row.job_id:
                restored = self._manager.restore_interrupted(paused=paused, only={row.job_id})
                interrupted += restored
                if restored:
                    continue
            with contextlib.suppress(UploaderError):  # gone or unreadable since: nothing to bring back
                # A started upload another window or command is running: adding its file is a no-op.
                # Not started: after a quit nothing goes on until the person says so (Start all).
                self._manager.add(row.path, row.display_name, start=False)
        return [job_id for job_id in interrupted if job_id not in paused]

    async def restore(self) -> list[str]:
        """What the last session left: started uploads (from the resume store; those the person had
        paused as "Paused"), then the files still waiting. The ids of the interrupted uploads."""
        return await in_thread(self._restore)


def _skipped(path: Path, entry: HistoryEntry) -> str:
    other = entry.other_name(path)
    if other:
        return f"{path.name} was skipped: the same contents are already uploaded, from {other}."
    return f"{path.name} was skipped: it is already uploaded."
