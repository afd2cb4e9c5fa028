"""The app's working parts behind the window: settings, the server connection, the queue, the model.

No widgets here. Everything that touches the disk or the network runs off the GUI thread, as
coroutines on the qasync loop that await a worker thread, so the window never stalls: connecting
(or starting the local sandbox), testing a connection, restoring interrupted uploads, walking
dropped folders, adding files.

Only Qt wiring: what to connect to and what to say about it is decided in ``connection.py``, how a
drop is taken in in ``engine/intake.py``; this holds the state the window shows and its signals.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop_uploader.connection import (
    Link,
    Outcome,
    SandboxHandle,
    choose_connection,
    configured_direct,
    credential_store,
    direct_secret,
    empty_sandbox,
    save_choices,
    server_token,
    start_sandbox,
    try_direct_storage,
    try_server,
)
from desktop_uploader.engine import events
from desktop_uploader.engine.files import collect
from desktop_uploader.engine.intake import AddOutcome, add_all, damaged, refuse, unusable
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.rows import QueueSummary, RowAction, plural
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.settings_change import saved_sentence
from desktop_uploader.engine.state import StateStore
from desktop_uploader.gui.bridge import EngineBridge
from desktop_uploader.gui.executors import QtPoolExecutor
from desktop_uploader.gui.history_session import AskUploaded, SessionMemory
from desktop_uploader.gui.menus import copy_row_path
from desktop_uploader.gui.queue_model import UploadQueueModel
from desktop_uploader.gui.reconnect import Reconnector
from desktop_uploader.gui.server_uploads import ServerUploadsOffer
from desktop_uploader.gui.tasks import in_thread, spawn
from desktop_uploader.paths import AppPaths
from desktop_uploader.system.keep_awake import KeepAwake

__all__ = ["AddOutcome", "AppSession", "Link", "in_thread"]

log = logging.getLogger(__name__)


class AppSession(QObject):
    linkChanged = Signal()
    notify = Signal(str, str)  # title, text: a desktop notification
    message = Signal(str)  # a sentence for the status bar

    def __init__(self, paths: AppPaths, settings: Settings, state: StateStore, *, pool_threads: int = 64) -> None:
        super().__init__()
        self.paths = paths
        self.settings = settings
        self.state = state
        self.credentials = credential_store(paths)
        self.file_executor = QtPoolExecutor(16, "upload-files")
        self.part_executor = QtPoolExecutor(pool_threads, "upload-parts")
        self.manager = UploadManager(
            settings, state, None, file_executor=self.file_executor, part_executor=self.part_executor
        )
        self.model = UploadQueueModel()
        self.bridge = EngineBridge(self.manager)
        self.bridge.engineEvent.connect(self.model.apply_event)
        self.bridge.engineEvent.connect(self._on_event)
        self.model.renameRequested.connect(self.manager.rename)
        self.model.summaryChanged.connect(self._on_summary)
        self.link = Link.NEEDS_SETUP
        self.link_label = "Not connected"
        self.link_detail = ""
        self.sandbox: SandboxHandle | None = None
        self.keep_awake = KeepAwake()
        self._completed_in_batch = False  # a file completed since the last "Uploads finished"
        self._stored_on_sandbox: set[str] = set()  # rows completed on the sandbox: emptying it clears them
        self._ended_since_summary = False  # a file completed or failed since the summary last changed
        self.closed = False
        self.server_uploads = ServerUploadsOffer(self.manager, self.message.emit)
        self.memory = SessionMemory(paths.data_dir, self.manager, self.model)  # history, duplicates, queue
        self.reconnect = Reconnector(self._retry_by_itself, self.model.apply_event, parent=self)

    # -- connection ---------------------------------------------------------------------------------------

    def _set_link(self, link: Link, label: str, detail: str = "") -> None:
        self.link, self.link_label, self.link_detail = link, label, detail
        self.linkChanged.emit()

    def token_for(self, url: str) -> str | None:
        return server_token(self.credentials, url) if url else None

    async def connect_storage(self) -> None:
        """Connect to the configured server (or the sandbox, or direct S3), then send the aborts owed there.

        Named so as not to shadow ``QObject.connect``.
        """
        await self._connect()
        await self.sweep_owed_aborts()

    async def sweep_owed_aborts(self) -> None:
        """Uploads given up in earlier sessions, on the storage connected now, are removed from it."""
        try:
            sweep = await in_thread(self.manager.sweep_owed_aborts)
        except Exception:  # never stops the window; the log has it
            log.exception("Sweeping owed aborts failed")
            return
        if sweep.settled:
            log.info("Removed %d partial upload(s) given up in an earlier session", sweep.settled)

    async def _connect(self) -> None:
        """Connect to the configured server, or the local sandbox if the person chose it (connection.py decides)."""
        outcome = await in_thread(choose_connection, self.credentials, self.settings)
        self.manager.set_direct(outcome.direct)
        if outcome.link is Link.CONNECTING:
            self._set_link(outcome.link, outcome.label, outcome.detail)
            outcome = await in_thread(start_sandbox, self.paths, self.sandbox)
            self.sandbox = outcome.sandbox or self.sandbox
        if outcome.link in (Link.CONNECTED, Link.NEEDS_SETUP):
            self.manager.set_connection(outcome.connection)
        self._set_link(outcome.link, outcome.label, outcome.detail)

    async def empty_sandbox(self) -> str:
        """Delete what the local sandbox stores (sandbox/storage_use.py), as a sentence for the status bar.

        The window's own sandbox is stopped for it and started again after, empty, when it was on it.
        """
        handle, self.sandbox = self.sandbox, None
        if handle is not None:
            self.manager.set_connection(None)
            self._set_link(Link.CONNECTING, "Emptying the test storage…")
            await in_thread(handle.stop)
        emptied, said = await in_thread(empty_sandbox, self.paths)
        if handle is not None:
            await self._connect()
        # Their files are gone: an audit's "Completed" rows still offered to copy the paths of deleted files.
        gone = [job_id for job_id in self._stored_on_sandbox if self.model.row_by_id(job_id)] if emptied else []
        for job_id in gone:
            self.act(job_id, RowAction.REMOVE)
        if emptied:
            self._stored_on_sandbox.clear()
        return said + (
            f" {plural(len(gone), 'finished upload was', 'finished uploads were')} cleared from the list."
            if gone
            else ""
        )

    def direct_secret(self, settings: Settings | None = None) -> str | None:
        return direct_secret(self.credentials, settings or self.settings)

    async def use_sandbox(self) -> None:
        await self.apply_settings(self.settings.replace(use_sandbox=True, server_url=""), token=None)

    async def apply_settings(
        self,
        settings: Settings,
        token: str | None,
        direct_secret: str | None = None,
        *,
        probe: tuple[bool, str] | None = None,
        announce: bool = False,
    ) -> None:
        """Save new settings (secrets go to the keychain); they apply to uploads that start from now on.

        ``probe`` is the test the dialog ran on this server before saving. A server saved although
        its test failed is used (uploads will try it) but shown as FAILED with the test's sentence:
        the window never claims a connection it doesn't have, not even for a moment. With ``announce``
        (the Settings dialog's Save), the status bar says it is saved, and what that means for uploads
        under way; a connection's own news, said after, takes its place.
        """
        before, self.settings = self.settings, settings
        reconnect = await in_thread(save_choices, self.paths, self.credentials, before, settings, token, direct_secret)
        if announce:
            self.message.emit(saved_sentence(before, settings, self.model.summary.active))
        # Your own S3 storage first: settings that send there pump the queue, and a file waiting for a server
        # started with no storage to go to ("Direct uploads need an S3 endpoint…", a busy CI run's failure).
        self.manager.set_direct(await in_thread(configured_direct, self.credentials, settings))
        self.manager.update_settings(settings)
        if not reconnect:
            self.linkChanged.emit()  # where uploads go may have changed all the same (the method)
            return
        if probe is not None and not probe[0] and settings.server_url:
            outcome = await in_thread(choose_connection, self.credentials, settings)
            self.manager.set_direct(outcome.direct)
            if outcome.link is Link.CONNECTED:
                self.manager.set_connection(outcome.connection)
                # Not "Not reachable": a route that answers, with a wrong path or a pinned checksum, failed too.
                label = f"{outcome.label} · test failed"
                outcome = Outcome(Link.FAILED, label, f"{probe[1]} Saved anyway: uploads will try it.")
            self._set_link(outcome.link, outcome.label, outcome.detail)
            await self.sweep_owed_aborts()
        else:
            await self.connect_storage()
        await self.server_uploads.refresh(self.link == Link.CONNECTED)

    async def test_connection(self, url: str, token: str) -> tuple[bool, str]:
        """Ask a server for its capabilities; a sentence saying what it offers or what went wrong."""
        return await in_thread(try_server, url, token, self.settings)

    async def test_direct(self, settings: Settings, secret: str) -> tuple[bool, str]:
        """Whether your own S3 storage, as typed, takes uploads (a test upload, created and aborted)."""
        return await in_thread(try_direct_storage, settings, secret)

    # -- the queue ------------------------------------------------------------------------------------------

    async def restore_interrupted(self) -> int:
        # The files still queued at quit come back waiting for the person too: after "Pause and quit" a
        # file that had not started yet began on its own while the ones it waited behind stayed stopped.
        ids = await self.memory.restore()
        if ids:
            stopped = plural(len(ids), "upload was", "uploads were")
            self.message.emit(f"{stopped} interrupted last time; resume when you're ready.")
        for notice in self.state.notices:
            self.message.emit(notice)
        return len(ids)

    async def add_paths(
        self,
        paths: list[str],
        confirm_others: Callable[[list[Path]], Awaitable[bool]] | None = None,
        confirm_damaged: Callable[[list[tuple[Path, str]]], Awaitable[bool]] | None = None,
        confirm_uploaded: AskUploaded | None = None,
    ) -> AddOutcome:
        """Queue what was dropped or chosen; with ``confirm_damaged``, cut-short .safetensors files are asked about."""
        found = await in_thread(collect, paths)
        chosen = list(found.models)
        named, in_folders = found.split_others(paths)  # a folder's readme is skipped without a question
        skipped = len(in_folders)
        if named:
            if confirm_others is not None and await confirm_others(named):
                chosen += named
            else:
                skipped += len(named)
        refused: list[str] = []
        if confirm_damaged is not None:
            found_damaged = await in_thread(damaged, chosen)
            if found_damaged and not await confirm_damaged(found_damaged):
                chosen, refused = refuse(chosen, found_damaged)
        if confirm_uploaded is not None:  # already on this server? (hashed off this thread, only on a size match)
            chosen, skipped_uploaded = await self.memory.skip_uploaded(chosen, confirm_uploaded, self.message.emit)
            refused += skipped_uploaded
        known, start = self.model.job_ids(), self.settings.auto_start  # read here, on the GUI thread
        taken = await in_thread(lambda: add_all(self.manager, chosen, known, start=start))
        for job_id in taken.stopped_short:
            self.act(job_id, RowAction.RESUME)  # as its Resume or Retry button would (a stopped sandbox is started)
        problems = taken.problems + refused + unusable(found)
        outcome = AddOutcome(taken.added, taken.duplicates, problems, skipped, list(taken.stopped_short.values()))
        self.message.emit(outcome.text())
        return outcome

    def act(self, job_id: str, action: RowAction) -> None:
        """Carry out a row action; everything here returns at once (the manager works in the background)."""
        row = self.model.row_by_id(job_id)
        match action:
            case RowAction.PAUSE:
                self.manager.pause(job_id)
            case RowAction.RESUME | RowAction.RETRY if self._sandbox_stopped():
                spawn(self._restart_sandbox_then(lambda: self.manager.resume(job_id)))
            case RowAction.RESUME | RowAction.RETRY:
                self.manager.resume(job_id)
            case RowAction.CANCEL | RowAction.DISCARD:
                self.manager.cancel(job_id)
            case RowAction.REMOVE:
                self.reconnect.forget(job_id)
                self.manager.remove(job_id)
            case RowAction.COPY_COMFYUI | RowAction.COPY_S3 | RowAction.COPY_MESSAGE if row is not None:
                said = copy_row_path(row, action)  # the row says what each copy means (Row.clipboard_text)
                if said:
                    self.message.emit(said)

    def toggle(self, job_id: str, act: Callable[[str, RowAction], None] | None = None) -> None:
        """Space bar: pause what runs, resume what waits (through ``act``: the window's, which asks first)."""
        row = self.model.row_by_id(job_id)
        if row is None:
            return
        actions = row.actions()
        for action in (RowAction.PAUSE, RowAction.RESUME, RowAction.RETRY):
            if action in actions:
                (act or self.act)(job_id, action)
                return

    def start_all(self) -> None:
        if self._sandbox_stopped():
            spawn(self._restart_sandbox_then(self.manager.resume_all))
            return
        self.manager.resume_all()

    def _sandbox_stopped(self) -> bool:
        return self.sandbox is not None and self.link is Link.CONNECTED and self.sandbox.stopped()

    async def _restart_sandbox_then(self, go_on: Callable[[], None]) -> None:
        """The local test storage had stopped (killed, crashed): start it again, then go on as asked.

        A GUI audit's uploads failed with "127.0.0.1:57745 refused the connection", and Retry failed the
        same way until the app was restarted.
        """
        log.warning("The local sandbox had stopped; starting it again")
        self.message.emit("The test storage on this computer had stopped; starting it again…")
        await self._connect()
        if self.link is Link.CONNECTED:
            go_on()

    def pause_all(self) -> None:
        self.manager.pause_all()

    # -- reactions ------------------------------------------------------------------------------------------

    def _on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Progress):
            self.reconnect.progressed(event.job_id, event.confirmed)
            return
        if isinstance(event, events.Completed):
            self.server_uploads.forget(event.result.s3_key)
            self._completed_in_batch = self._ended_since_summary = True
            if self.sandbox is not None:
                self._stored_on_sandbox.add(event.job_id)
        if isinstance(event, events.Completed | events.Cancelled):
            self.reconnect.forget(event.job_id)
        if isinstance(event, events.StatusChanged) and event.status in (events.Status.PAUSED, events.Status.CANCELLED):
            self._ended_since_summary = False  # stopped by a person: what ends now is not the batch's end
        if not isinstance(event, events.Failed):
            return
        row = self.model.row_by_id(event.job_id)
        again = self.reconnect.failed(event, row.confirmed if row else 0)  # if so, the row counts down to it
        # A failure can end a batch too: a CI run under load finished the good file first, then the refused
        # one, and "Uploads finished" never came. One tried again by itself has not ended.
        self._ended_since_summary = self._ended_since_summary or not again
        if self._sandbox_stopped():
            then = "it starts again with the upload's next try" if again else "press Retry to start it again"
            self.message.emit(f"The test storage on this computer has stopped; {then}.")
        if not again and self.settings.notifications:
            self.notify.emit(f"Upload failed: {row.file_name if row else 'a file'}", event.message)

    def _retry_by_itself(self, job_id: str) -> None:
        row = self.model.row_by_id(job_id)
        if not self.closed and row is not None and row.status is events.Status.FAILED:
            log.info("%s: trying again by itself after a lost connection", row.file_name)
            self.act(job_id, RowAction.RETRY)

    def _on_summary(self, summary: QueueSummary) -> None:
        """A batch is announced when a completion or a failure leaves nothing to do, if a file of it
        completed. The ending is taken from the events, not from two summaries, one active and one not:
        the summary is refreshed ten times a second, and a small file can start and finish between two
        refreshes unseen. It is kept until nothing is active (a refresh can come between a file's
        Completed and its status). Pausing or cancelling the last running files announces nothing,
        even if others completed before."""
        if summary.active and self.settings.keep_awake:
            self.keep_awake.hold("Uploading model files")
        elif not summary.active:
            self.keep_awake.release()
        if summary.active or self.model.status_counts()[events.Status.QUEUED]:
            return  # the batch goes on (a file waiting for a free slot starts just after one completes)
        ended, self._ended_since_summary = self._ended_since_summary, False
        if ended and self._completed_in_batch:
            self._completed_in_batch = False
            if self.settings.notifications:
                self.notify.emit("Uploads finished", summary.text())

    # -- the end -------------------------------------------------------------------------------------------

    def running(self) -> bool:
        """Whether closing now would stop work: read from the rows, not from the summary, which is
        refreshed on a timer and can still count an upload that has just finished."""
        if self.closed:
            return False
        return any(r.status.active or r.status is events.Status.QUEUED for r in self.model.rows())

    async def shutdown(self, *, cancel: bool = False) -> None:
        """Pause (or cancel) what runs, then release the manager, the sandbox and the store."""
        self.closed = True
        if cancel:
            for row in self.model.rows():
                if not row.status.finished:
                    self.manager.cancel(row.job_id)
        self.bridge.close()
        self.keep_awake.release()
        self.memory.closing([] if cancel else self.model.rows())
        await in_thread(self.manager.close)
        await self.memory.save_waiting()
        # Qt aborts if a QThreadPool is destroyed while its threads run; paused work ends quickly.
        await in_thread(self.file_executor.shutdown)
        await in_thread(self.part_executor.shutdown)
        if self.sandbox is not None:
            await in_thread(self.sandbox.stop)
            self.sandbox = None
        with contextlib.suppress(Exception):
            self.state.close()
