"""One run of an upload: through the fallback chain, to one ending (see ending.py for which).

A run picks the chain (presigned → chunked → single request, or direct-s3), builds the context a method needs,
and runs the methods in turn. A method that fails is cleaned up before the next starts: its server-side upload
is aborted, or owed to its server (engine/ledger.py), so nothing is orphaned. But an upload with parts in
storage is not thrown away for a fallback: a failure then is most likely the network, and it stays resumable.

``AttemptRunner`` is the half of the upload manager that runs uploads; the queue (manager.py) is the
half that takes commands. The attributes below are the queue's, named so each half reads on its own.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from desktop_uploader.engine.api_client import ApiClient
from desktop_uploader.engine.autotune import AutoConcurrency
from desktop_uploader.engine.bandwidth import TokenBucket
from desktop_uploader.engine.control import CANCEL, Control
from desktop_uploader.engine.elsewhere import go_on_from
from desktop_uploader.engine.ending import keeps_state, may_fall_back, retry_can_help, root_cause
from desktop_uploader.engine.errors import (
    DISK_FULL,
    AuthError,
    DiskFullError,
    Interrupted,
    ServerBusyError,
    UnsupportedError,
    UploaderError,
)
from desktop_uploader.engine.events import (
    CANCELLED,
    RESUMING,
    Cancelled,
    Completed,
    Event,
    Failed,
    FallingBack,
    Notice,
    Progress,
    Retrying,
    Started,
    Status,
    StatusChanged,
    UploadResult,
)
from desktop_uploader.engine.fileid import identify
from desktop_uploader.engine.http import Sessions
from desktop_uploader.engine.jobs import Job, ServerConnection, has_record
from desktop_uploader.engine.ledger import AbortLedger, not_removed
from desktop_uploader.engine.linkmemory import LinkMemory
from desktop_uploader.engine.locks import UploadLocks
from desktop_uploader.engine.methods.base import (
    CHUNKED,
    DIRECT,
    LEGACY,
    PRESIGNED,
    Completion,
    JobContext,
    UploadMethod,
)
from desktop_uploader.engine.methods.chunked import ChunkedMethod
from desktop_uploader.engine.methods.direct_s3 import DirectS3Method, DirectTarget
from desktop_uploader.engine.methods.presigned import PresignedMethod
from desktop_uploader.engine.methods.single_request import SingleRequestMethod, fits
from desktop_uploader.engine.same_storage import move_to_listing_server
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore, UploadRecord

log = logging.getLogger(__name__)


class AttemptRunner:
    _settings: Settings
    state: StateStore
    connection: ServerConnection | None
    direct: DirectTarget | None
    _sessions: Sessions
    _api: ApiClient | None
    _lock: threading.RLock
    _changed: threading.Condition
    _listeners: list[Callable[[Event], None]]
    _limiter: TokenBucket
    _part_executor: Executor
    _ledger: AbortLedger
    _disk_full_said: bool
    _said_once: set[str]  # keys of JobContext.first_in_session already said in this session
    _locks: UploadLocks
    _links: LinkMemory  # what each server's link did on the last Auto upload: the next one's part size
    _unwinding: set[str]  # jobs whose last run has not let go of the upload's lock yet

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break an upload
                log.exception("An event listener failed on %s", type(event).__name__)

    def _first_in_session(self, key: str) -> bool:
        with self._lock:
            if key in self._said_once:
                return False
            self._said_once.add(key)
            return True

    def _set(self, job: Job, status: Status, message: str = "") -> None:
        with self._lock:
            job.status = status
            job.message = message
            self._changed.notify_all()
        self._emit(StatusChanged(job.id, status, message))

    def _methods(self) -> dict[str, UploadMethod]:
        methods: dict[str, UploadMethod] = {
            PRESIGNED: PresignedMethod(self._sessions),
            CHUNKED: ChunkedMethod(),
            LEGACY: SingleRequestMethod(),
        }
        if self.direct is not None:
            methods[DIRECT] = DirectS3Method(self.direct)
        return methods

    def _chain(self, settings: Settings, api: ApiClient | None, size: int, control: Control) -> list[str]:
        if settings.method == "direct-s3":
            if self.direct is None:
                raise AuthError("Direct uploads need an S3 endpoint, bucket, access key and secret in Settings.")
            return [DIRECT]
        if api is None:
            raise UnsupportedError("No upload server is configured.")
        explicit = {"presigned": [PRESIGNED], "chunked": [CHUNKED], "legacy": [LEGACY]}
        chain = explicit.get(settings.method)
        if chain is None:
            chain = [PRESIGNED]
            if settings.fallback:
                chain.append(CHUNKED)
                if fits(size, api.capabilities(control=control).legacy_max_bytes):
                    chain.append(LEGACY)
        return chain

    def _context(self, job: Job, settings: Settings, api: ApiClient | None) -> JobContext:
        identity = identify(job.path)
        job.size = identity.size  # a file changed since it was added is sent, and shown, at its size now

        auto = AutoConcurrency() if settings.auto_concurrency else None

        def emit(event: Event) -> None:
            if isinstance(event, Progress):  # Auto is fed by the part scheduler (multipart.py)
                job.progress = event
            elif isinstance(event, Started):
                job.method = event.method
            elif isinstance(event, Retrying) and event.busy and auto is not None:
                auto.busy()
            elif isinstance(event, Notice) and event.message.startswith(DISK_FULL):
                with self._lock:  # one full disk, however many files find it full: said once
                    if self._disk_full_said:
                        return
                    self._disk_full_said = True
            self._emit(event)

        def api_retry(action: str, attempt: int, attempts: int, error: UploaderError, delay: float) -> None:
            """A control-plane call about to be retried: said as part 0, with its delay, like any retry."""
            busy = isinstance(error, ServerBusyError) and error.status in (429, 503)
            emit(Retrying(job.id, job.method, 0, attempt, attempts, delay, error.message, busy))

        job.control.on_retry = api_retry
        return JobContext(
            job_id=job.id,
            path=job.path,
            display_name=job.display_name,
            identity=identity,
            settings=settings,
            state=self.state,
            control=job.control,
            emit=emit,
            part_executor=self._part_executor,
            server_id=self.connection.server_id if self.connection else "",
            api=api,
            limiter=self._limiter,
            concurrency=auto.target if auto is not None else None,
            pacing=auto,
            links=self._links,
            on_status=lambda status, message: self._set(job, status, message),
            first_in_session=self._first_in_session,
        )

    def _run(self, job: Job) -> None:
        with self._lock:
            settings, api = self._settings, self._api
        began = time.monotonic()
        self._set(job, Status.STARTING, "Preparing…")
        try:
            record = self.state.get(job.id)
        except UploaderError as exc:
            log.warning("Resume state of %s unreadable: %s", job.path.name, exc.message)
            record = None
        try:
            ctx = self._context(job, settings, api)
            chain = self._chain(settings, api, ctx.size, job.control)
            reached = (ctx.server_id, self.direct.server_id if self.direct else None, api is not None)
            record, chain = go_on_from(record, chain, reached, self.state, self._ledger, expected=job.had_record)
        except Interrupted:
            self._stopped(job, None, None)
            return
        except UploaderError as exc:
            self._failed(job, None, None, exc)
            return
        methods = self._methods()
        cause: UploaderError | None = None  # what made us leave the first method: the story told at the end
        cause_method = ""  # and the method it happened in, which the failure is then reported under
        for index, name in enumerate(chain):
            method = methods[name]
            job.method = name
            ctx.record = record if record is not None and record.method == name else None
            self._set(job, Status.UPLOADING, RESUMING if ctx.record else "")
            try:
                completion = method.run(ctx)
            except Interrupted:
                self._stopped(job, ctx, method)
                return
            except UploaderError as exc:
                following = chain[index + 1] if index + 1 < len(chain) else None
                if following is not None and may_fall_back(exc, job.confirmed):
                    log.warning("%s: %s failed (%s); falling back to %s", job.path.name, name, exc.message, following)
                    self._set(job, Status.FALLING_BACK, f"{name} did not work: {exc.message}")
                    self._emit(FallingBack(job.id, name, following, exc.message))
                    self._abandon(ctx, method)
                    record = None
                    job.progress = None
                    if cause is None:
                        cause, cause_method = exc, name
                    continue
                error = root_cause(cause, exc)
                if error is not exc:  # the fallback that isn't offered leaves nothing to resume: Retry starts over
                    self._abandon(ctx, method)
                    job.method = cause_method
                self._failed(job, ctx, method, error)
                return
            self._completed(job, ctx, name, completion, began)
            return

    def _completed(self, job: Job, ctx: JobContext, name: str, completion: Completion, began: float) -> None:
        """Forget the resume record, and tell everyone where the file now is."""
        self._clear_record(job, ctx)
        result = UploadResult(
            method=name,
            size=completion.size,
            unique_file_name=completion.unique_file_name,
            s3_key=completion.s3_key,
            comfyui_path=completion.comfyui_path,
            network_volume_path=completion.network_volume_path,
            etag=completion.etag,
            seconds=time.monotonic() - began,
            bytes_sent=completion.bytes_sent,
        )
        log.info(
            "%s: completed via %s as %s (%.1f s in this run)",
            job.path.name,
            name,
            result.network_volume_path or result.s3_key,
            result.seconds,
        )
        with self._lock:
            job.result = result
            job.resumable = False
        # The details first: whoever sees COMPLETED can rely on the result being there.
        self._emit(Completed(job.id, result))
        self._finish(job, Status.COMPLETED, "")

    def _clear_record(self, job: Job, ctx: JobContext) -> None:
        try:
            self.state.delete(job.id)
        except DiskFullError as exc:
            # The record stays, so a later resume finds every part confirmed and completes the upload
            # again (storage answers with the object) rather than sending it twice. Said once per upload.
            ctx.notice(exc.message, "warning")
        except UploaderError as exc:
            log.warning("%s: its resume record could not be cleared: %s", job.path.name, exc.message)

    def _abandon(self, ctx: JobContext, method: UploadMethod) -> None:
        """Abort the server-side upload of a method we are leaving (or park it to abort later)."""
        try:
            record = self.state.get(ctx.job_id)
        except UploaderError:
            return
        if record is None:
            return
        self._abort_record(record, ctx)

    def _abort_record(self, record: UploadRecord, ctx: JobContext | None = None) -> bool:
        """Abort a record's server-side upload and forget the record; False if the abort is owed for later."""
        return self._ledger.settle(record, ctx).aborted

    def _adopt_listed(self, records: list[UploadRecord]) -> list[UploadRecord]:
        """Records the connected server holds, though begun at another address (same_storage.py)."""
        with self._lock:
            connection, api = self.connection, self._api
        return move_to_listing_server(records, api, connection.server_id if connection else "", self.state)

    def _abort_context(self, record: UploadRecord) -> JobContext | None:
        """A context that reaches the target holding ``record``'s upload, or None if this session can't."""
        with self._lock:
            direct, connection, api = self.direct, self.connection, self._api
        if record.method == LEGACY:
            return self._bare_context(record)  # one request, nothing left on any server to abort
        if record.method == DIRECT:
            reachable = direct is not None and direct.server_id == record.server
        else:
            reachable = connection is not None and api is not None and connection.server_id == record.server
        return self._bare_context(record) if reachable else None

    def _bare_context(self, record: UploadRecord) -> JobContext:
        """Enough context to abort a record's server-side upload when its job is not running."""
        return JobContext(
            job_id=record.id,
            path=Path(record.path),
            display_name=record.display_name,
            identity=record.identity,
            settings=self._settings,
            state=self.state,
            control=Control(),
            emit=self._emit,
            part_executor=self._part_executor,
            server_id=record.server,
            api=self._api,
        )

    def _stopped(self, job: Job, ctx: JobContext | None, method: UploadMethod | None) -> None:
        if job.control.reason == CANCEL:
            if ctx is not None and method is not None:
                self._abandon(ctx, method)
            else:
                # Cancelled while preparing: this run holds the lock, so it aborts (_abort_saved would give up)
                with contextlib.suppress(UploaderError):
                    record = self.state.get(job.id)
                    if record is not None:
                        self._abort_record(record)
            self._finish(job, Status.CANCELLED, CANCELLED)
            self._emit(Cancelled(job.id))
            return
        with contextlib.suppress(UploaderError):
            if self.state.get(job.id) is not None:
                self.state.update(job.id, status="paused", message="Paused.")
        with self._lock:
            job.resumable = True
        self._finish(job, Status.PAUSED, "Paused.")

    def _failed(self, job: Job, ctx: JobContext | None, method: UploadMethod | None, error: UploaderError) -> None:
        try:
            record = self.state.get(job.id)
        except UploaderError:
            record = None
        resumable = record is not None and keeps_state(error)
        if record is not None and not resumable and ctx is not None and method is not None:
            self._abandon(ctx, method)
        elif resumable:
            with contextlib.suppress(UploaderError):
                self.state.update(job.id, status="failed", message=error.message)
        log.warning("%s failed (%s): %s", job.path.name, type(error).__name__, error.message)
        with self._lock:
            job.resumable = resumable
        self._emit(Failed(job.id, error.message, resumable, job.method, type(error).__name__, retry_can_help(error)))
        self._finish(job, Status.FAILED, error.message)

    def _finish(self, job: Job, status: Status, message: str, *, resumable: bool | None = None) -> None:
        kept = status in {Status.PAUSED, Status.FAILED} and has_record(self.state, job.id)
        with self._lock:
            if resumable is not None:
                job.resumable = resumable
            job.had_record = kept
        self._set(job, status, message)

    def _abort_when_unwound(self, job_id: str) -> None:
        """Cancel's abort, once the job's last run (if it has only just failed) has let go of the upload's lock."""
        with self._changed:
            self._changed.wait_for(lambda: job_id not in self._unwinding, timeout=60)
        self._abort_saved(job_id)

    def _abort_saved(self, job_id: str) -> None:
        try:
            record = self.state.get(job_id)
            if record is None:
                return
            lock = self._locks.acquire(job_id)
        except UploaderError as exc:
            log.warning("Could not cancel %s: %s", job_id, exc.message)
            return
        try:
            settled = self._ledger.settle(record)
        finally:
            lock.release()
            self._locks.forget(job_id)
        if not settled.aborted:  # "Cancelled" alone would say its parts were deleted
            left = f"{not_removed(record, settled.target)}; the app tries again each time it connects there."
            self._emit(StatusChanged(job_id, Status.CANCELLED, left))
