"""The session's memory across restarts: the upload history, the duplicate check, the saved queue.

No widgets and no waiting on the GUI thread: the history is read and written, files are hashed and
the queue is saved on worker threads (``in_thread``); only the questions run here, on the window's
thread. The session makes one of these and calls it at three moments: a drop, the start, the quit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.history import HistoryEntry, HistoryStore
from desktop_uploader.engine.history_recorder import HistoryRecorder, destination_key
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.rows import Row
from desktop_uploader.engine.saved_queue import SavedQueue, SavedRow, save_queue, take_queue
from desktop_uploader.engine.state import StateStore
from desktop_uploader.gui.tasks import in_thread

AskUploaded = Callable[[list[tuple[Path, HistoryEntry]]], Awaitable[bool]]  # True: skip them


class SessionMemory:
    def __init__(self, data_dir: Path, manager: UploadManager, state: StateStore) -> None:
        self.data_dir = data_dir
        self.store = HistoryStore.in_data_dir(data_dir)
        self.recorder = HistoryRecorder.attach(self.store, manager)
        self._manager = manager
        self._state = state
        self._waiting: list[tuple[str, SavedRow]] = []

    # -- duplicates -----------------------------------------------------------------------------------------

    def _uploaded(self, key: str, paths: list[Path]) -> list[tuple[Path, HistoryEntry]]:
        found = []
        for path in paths:
            try:
                entry, digest = self.store.duplicate_of(key, path)
            except OSError:
                continue  # unreadable now: adding it says so
            if entry is not None:
                found.append((path, entry))
            elif digest:
                self.recorder.remember_hash(path, digest)
        return found

    def _same_size(self, key: str, paths: list[Path]) -> list[Path]:
        found = []
        for path in paths:
            with contextlib.suppress(OSError):
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
        which = suspects[0].name if len(suspects) == 1 else f"{len(suspects)} files"
        say(f"Checking whether {which} is already on this server…")
        found = await in_thread(self._uploaded, key, suspects)
        if not found or not await ask(found):
            return chosen, []
        skipped = {path for path, _ in found}
        said = [f"{path.name} was skipped: it is already uploaded." for path, _ in found]
        return [p for p in chosen if p not in skipped], said

    # -- the queue across restarts --------------------------------------------------------------------------

    def note_waiting(self, rows: list[Row]) -> None:
        """Before quitting (on the GUI thread, from the rows): what waits and may have no resume record."""
        self._waiting = [
            (row.job_id, SavedRow(str(row.path), row.display_name, row.status is Status.PAUSED))
            for row in rows
            if row.status in (Status.QUEUED, Status.PAUSED)
        ]

    def _save(self) -> None:
        saved = SavedQueue()
        for job_id, row in self._waiting:
            if self._state.get(job_id) is None:
                saved.rows.append(row)
            elif row.paused:
                saved.paused.append(job_id)
        save_queue(self.data_dir, saved)

    async def save_waiting(self) -> None:
        """After the manager closed: keep what has no resume record (started uploads come back from that)."""
        await in_thread(self._save)

    def _restore(self, start: bool) -> list[str]:
        saved = take_queue(self.data_dir)
        interrupted = self._manager.restore_interrupted(paused=set(saved.paused))
        for row in saved.rows:
            with contextlib.suppress(UploaderError):  # gone or unreadable since: nothing to bring back
                self._manager.add(row.path, row.display_name, start=start and not row.paused)
        return [job_id for job_id in interrupted if job_id not in saved.paused]

    async def restore(self, start: bool) -> list[str]:
        """What the last session left: started uploads (from the resume store; those the person had
        paused as "Paused"), then the files still waiting. The ids of the interrupted uploads."""
        return await in_thread(self._restore, start)
