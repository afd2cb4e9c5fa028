"""The app's working parts behind the window: settings, the server connection, the queue, the model.

No widgets here. Everything that touches the disk or the network runs off the GUI thread, as
coroutines on the qasync loop that await a worker thread, so the window never stalls: connecting
(or starting the local sandbox), testing a connection, restoring interrupted uploads, walking
dropped folders, adding files.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication

from desktop_uploader.connection import (
    SandboxHandle,
    configured_server,
    credential_store,
    direct_secret,
    direct_target,
    launch_sandbox,
    probe_server,
    sandbox_connection,
    server_connection,
    server_token,
)
from desktop_uploader.engine import events
from desktop_uploader.engine.credentials import direct_secret_key, token_key
from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.files import collect
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.rows import QueueSummary, RowAction
from desktop_uploader.engine.safetensors_header import safetensors_problem
from desktop_uploader.engine.settings import Settings, save_settings
from desktop_uploader.engine.state import StateStore
from desktop_uploader.gui.bridge import EngineBridge
from desktop_uploader.gui.executors import QtPoolExecutor
from desktop_uploader.gui.queue_model import UploadQueueModel
from desktop_uploader.gui.server_uploads import ServerUploadsOffer
from desktop_uploader.gui.tasks import in_thread
from desktop_uploader.paths import AppPaths
from desktop_uploader.system.keep_awake import KeepAwake

log = logging.getLogger(__name__)


class Link(Enum):
    NEEDS_SETUP = "needs setup"  # no server, and the person hasn't chosen the sandbox yet
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"


def _damaged(paths: list[Path]) -> list[tuple[Path, str]]:
    """The .safetensors files whose header says they are incomplete, each with what is wrong (header only)."""
    found = []
    for path in paths:
        problem = safetensors_problem(path) if path.suffix.lower() == ".safetensors" else None
        if problem is not None:
            found.append((path, problem))
    return found


@dataclass(frozen=True)
class AddOutcome:
    added: int
    duplicates: list[str]
    problems: list[str]
    skipped: int


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
        self._last_summary = self.model.summary
        self.closed = False
        self.server_uploads = ServerUploadsOffer(self.manager, self.message.emit)

    # -- connection ---------------------------------------------------------------------------------------

    def _set_link(self, link: Link, label: str, detail: str = "") -> None:
        self.link, self.link_label, self.link_detail = link, label, detail
        self.linkChanged.emit()

    @property
    def server_url(self) -> str:
        return configured_server(self.settings)

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
        """Connect to the configured server, or the local sandbox if the person chose it."""
        self.manager.set_direct(self._direct_target(await in_thread(self.direct_secret)))
        url = self.server_url
        if not url and not self.settings.use_sandbox:
            self.manager.set_connection(None)
            self._set_link(Link.NEEDS_SETUP, "No server set up")
            return
        if url:
            token = await in_thread(self.token_for, url)
            if not token:
                self._set_link(
                    Link.FAILED, "No access token", f"Add the access token for {url} in Settings → Connection."
                )
                return
            self.manager.set_connection(server_connection(url, token))
            self._set_link(Link.CONNECTED, url.split("://", 1)[-1], f"Uploads go to {url}")
            return
        self._set_link(Link.CONNECTING, "Starting the local sandbox…")
        sandbox = self.sandbox
        try:
            if sandbox is None:
                sandbox = await in_thread(launch_sandbox, self.paths)
        except Exception as exc:  # shown to the person; details in the log
            log.exception("Sandbox start failed")
            self._set_link(Link.FAILED, "Local sandbox failed", f"The local sandbox could not start: {exc}")
            return
        self.sandbox = sandbox
        info = sandbox.info
        self.manager.set_connection(sandbox_connection(info))
        self._set_link(
            Link.CONNECTED,
            "Local sandbox (this computer)",
            f"Files go to a test storage on this computer: s3://{info.bucket}/loras/… in {info.data_dir}",
        )

    def direct_secret(self, settings: Settings | None = None) -> str | None:
        return direct_secret(self.credentials, settings or self.settings)

    def _direct_target(self, secret: str | None) -> DirectTarget | None:
        return direct_target(self.settings, secret)

    async def use_sandbox(self) -> None:
        await self.apply_settings(self.settings.replace(use_sandbox=True, server_url=""), token=None)

    async def apply_settings(self, settings: Settings, token: str | None, direct_secret: str | None = None) -> None:
        """Save new settings (secrets go to the keychain); they apply to uploads that start from now on."""
        reconnect = settings.server_url != self.settings.server_url or settings.use_sandbox != self.settings.use_sandbox
        self.settings = settings
        await in_thread(save_settings, self.paths.settings_file, settings)
        if token is not None and settings.server_url:
            await in_thread(self.credentials.set, token_key(settings.server_url), token)
            reconnect = True
        if direct_secret is not None and settings.direct_access_key:
            key = direct_secret_key(settings.direct_endpoint, settings.direct_access_key)
            await in_thread(self.credentials.set, key, direct_secret)
        self.manager.update_settings(settings)
        self.manager.set_direct(self._direct_target(await in_thread(self.direct_secret)))
        if reconnect:
            await self.connect_storage()
            await self.server_uploads.refresh(self.link == Link.CONNECTED)

    async def test_connection(self, url: str, token: str) -> tuple[bool, str]:
        """Ask a server for its capabilities; a sentence saying what it offers or what went wrong."""
        if not url:
            return True, "No address: uploads go to the local sandbox on this computer."
        if not url.startswith(("http://", "https://")):
            return False, "The address must start with http:// or https://."

        try:
            caps = await in_thread(probe_server, url, token, self.settings)
        except UploaderError as exc:
            return False, exc.message
        offers = []
        if caps.presigned:
            extras = [w for w, on in (("re-signing", caps.offers("sign")), ("Content-MD5", caps.content_md5)) if on]
            offers.append("presigned uploads" + (f" (with {' and '.join(extras)})" if extras else ""))
        if caps.chunked_path:
            offers.append(f"chunked uploads ({human_bytes(caps.max_chunk_bytes)} chunks)")
        if caps.legacy_path and caps.legacy_max_bytes:
            offers.append(f"single requests up to {human_bytes(caps.legacy_max_bytes)}")
        if not caps.advertised:
            return True, "Connected. This server speaks the original contract (start, complete, abort)."
        expiry = caps.url_expiry_seconds
        lasting = f"{expiry // 60} min" if expiry >= 60 else f"{expiry} s"
        return True, f"Connected. It offers {', '.join(offers) or 'nothing we can use'}; upload links last {lasting}."

    # -- the queue ------------------------------------------------------------------------------------------

    async def restore_interrupted(self) -> int:
        ids = await in_thread(self.manager.restore_interrupted)
        if ids:
            self.message.emit(f"{len(ids)} upload(s) were interrupted last time; resume them when you're ready.")
        for notice in self.state.notices:
            self.message.emit(notice)
        return len(ids)

    async def add_paths(
        self,
        paths: list[str],
        confirm_others: Callable[[list[Path]], Awaitable[bool]] | None = None,
        confirm_damaged: Callable[[list[tuple[Path, str]]], Awaitable[bool]] | None = None,
    ) -> AddOutcome:
        """Queue what was dropped or chosen; with ``confirm_damaged``, cut-short .safetensors files are asked about."""
        found = await in_thread(collect, paths)
        chosen = list(found.models)
        skipped = 0
        if found.others:
            if confirm_others is not None and await confirm_others(found.others):
                chosen += found.others
            else:
                skipped = len(found.others)
        refused: list[str] = []
        if confirm_damaged is not None:
            damaged = await in_thread(_damaged, chosen)
            if damaged and not await confirm_damaged(damaged):
                chosen = [p for p in chosen if p not in {path for path, _ in damaged}]
                refused = [f"{path.name} was not added because it looks damaged." for path, _ in damaged]
        known = self.model.job_ids()
        start = self.settings.auto_start

        def add_all() -> tuple[int, list[str], list[str]]:
            """One trip to a worker thread for the whole drop; the manager refuses files already queued."""
            added, duplicates, problems = 0, [], []
            for number, path in enumerate(chosen):
                if number % 25 == 24:
                    time.sleep(0)  # let the window take the interpreter between batches of a big drop
                try:
                    job = self.manager.add(path, start=start)
                except UploaderError as exc:
                    problems.append(exc.message)
                    continue
                if job in known:
                    duplicates.append(path.name)
                else:
                    known.add(job)
                    added += 1
            return added, duplicates, problems

        added, duplicates, problems = await in_thread(add_all)
        problems += refused + [f"{p}: not found" for p in found.missing]
        problems += [f"{p.name} is {kind}, not a file." for p, kind in found.special]
        outcome = AddOutcome(added, duplicates, problems, skipped)
        self.message.emit(self._describe(outcome))
        return outcome

    @staticmethod
    def _describe(outcome: AddOutcome) -> str:
        words = [f"Added {outcome.added} file(s)."]
        if outcome.duplicates:
            words.append(f"Already in the queue: {', '.join(outcome.duplicates[:3])}.")
        if outcome.skipped:
            words.append(f"Skipped {outcome.skipped} file(s) that aren't models.")
        words += outcome.problems[:2]
        return " ".join(words)

    def act(self, job_id: str, action: RowAction) -> None:
        """Carry out a row action; everything here returns at once (the manager works in the background)."""
        row = self.model.row_by_id(job_id)
        match action:
            case RowAction.PAUSE:
                self.manager.pause(job_id)
            case RowAction.RESUME | RowAction.RETRY:
                self.manager.resume(job_id)
            case RowAction.CANCEL | RowAction.DISCARD:
                self.manager.cancel(job_id)
            case RowAction.REMOVE:
                self.manager.remove(job_id)
            case RowAction.COPY_COMFYUI if row is not None and row.result and row.result.comfyui_path:
                QGuiApplication.clipboard().setText(row.result.comfyui_path)
                self.message.emit("ComfyUI path copied.")
            case RowAction.COPY_S3 if row is not None and row.result:
                QGuiApplication.clipboard().setText(row.result.network_volume_path or row.result.s3_key)
                self.message.emit("S3 path copied.")

    def toggle(self, job_id: str) -> None:
        """Space bar: pause what runs, resume what waits."""
        row = self.model.row_by_id(job_id)
        if row is None:
            return
        actions = row.actions()
        for action in (RowAction.PAUSE, RowAction.RESUME, RowAction.RETRY):
            if action in actions:
                self.act(job_id, action)
                return

    def start_all(self) -> None:
        self.manager.resume_all()

    def pause_all(self) -> None:
        self.manager.pause_all()

    # -- reactions ------------------------------------------------------------------------------------------

    def _on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Completed):
            self.server_uploads.forget(event.result.s3_key)
        if isinstance(event, events.Failed) and self.settings.notifications:
            row = self.model.row_by_id(event.job_id)
            self.notify.emit(f"Upload failed: {row.file_name if row else 'a file'}", event.message)

    def _on_summary(self, summary: QueueSummary) -> None:
        before, self._last_summary = self._last_summary, summary
        if summary.active and self.settings.keep_awake:
            self.keep_awake.hold("Uploading model files")
        elif not summary.active:
            self.keep_awake.release()
        if before.active and not summary.active and summary.done > before.done and self.settings.notifications:
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
        await in_thread(self.manager.close)
        # Qt aborts if a QThreadPool is destroyed while its threads run; paused work ends quickly.
        await in_thread(self.file_executor.shutdown)
        await in_thread(self.part_executor.shutdown)
        if self.sandbox is not None:
            await in_thread(self.sandbox.stop)
            self.sandbox = None
        with contextlib.suppress(Exception):
            self.state.close()
