"""The upload queue: which files run, through which method, and what happens when one fails.

Commands (add, pause, resume, cancel, retry, remove, discard) are plain, thread-safe method calls
that return at once; the work happens on executors the caller may supply (the GUI passes ones
backed by QThreadPool). Events go to subscribers on worker threads.

The fallback chain runs presigned → chunked → single request (for small files). A method that
fails is cleaned up before the next starts: its server-side upload is aborted, or, if even the
abort fails, parked in the store to be aborted later, so nothing is orphaned. But an upload that
already has parts in storage is not thrown away for a fallback: a failure then is most likely the
network, and the upload stays resumable instead.

How an upload ends, and what is left:

========================  ===============================  ==================================
Ending                    Server-side upload               Resume state
========================  ===============================  ==================================
completed                 completed                        deleted
cancelled / discarded     aborted (or parked for abort)    deleted
paused / quit             kept                             kept
failed, transient         kept                             kept: Retry resumes
failed, permanent         aborted (or parked for abort)    deleted: Retry starts afresh
========================  ===============================  ==================================
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from desktop_uploader.engine.api_client import ApiClient
from desktop_uploader.engine.autotune import AutoConcurrency
from desktop_uploader.engine.bandwidth import TokenBucket
from desktop_uploader.engine.control import CANCEL, Control
from desktop_uploader.engine.errors import (
    DISK_FULL,
    AuthError,
    DiskFullError,
    FileUnreadableError,
    ForbiddenError,
    Interrupted,
    NotFoundError,
    StateError,
    TransientError,
    UnsupportedError,
    UploaderError,
)
from desktop_uploader.engine.events import (
    Cancelled,
    Completed,
    Event,
    Failed,
    FallingBack,
    Notice,
    Progress,
    Queued,
    Removed,
    Renamed,
    Retrying,
    Started,
    Status,
    StatusChanged,
    UploadResult,
)
from desktop_uploader.engine.fileid import identify, unreadable
from desktop_uploader.engine.filenames import is_text, shown
from desktop_uploader.engine.files import special_kind
from desktop_uploader.engine.http import Sessions
from desktop_uploader.engine.locks import UploadBusyError, UploadLocks
from desktop_uploader.engine.methods.base import CHUNKED, DIRECT, LEGACY, PRESIGNED, JobContext, UploadMethod
from desktop_uploader.engine.methods.chunked import ChunkedMethod
from desktop_uploader.engine.methods.direct_s3 import DirectS3Method, DirectTarget
from desktop_uploader.engine.methods.presigned import PresignedMethod
from desktop_uploader.engine.methods.single_request import SingleRequestMethod, fits
from desktop_uploader.engine.settings import MAX_CONCURRENCY, Settings
from desktop_uploader.engine.state import StateStore, UploadRecord

log = logging.getLogger(__name__)

ABANDONED = "abandoned"  # a server-side upload we still owe an abort


@dataclass(frozen=True)
class ServerConnection:
    api_url: str
    token: str
    server_id: str  # stable across sessions: the sandbox's URL changes, its identity does not
    label: str


@dataclass
class Job:
    id: str
    path: Path
    display_name: str
    size: int
    status: Status = Status.QUEUED
    method: str = ""
    message: str = ""
    resumable: bool = False
    result: UploadResult | None = None
    progress: Progress | None = None
    control: Control = field(default_factory=Control)

    @property
    def confirmed(self) -> int:
        return self.progress.confirmed if self.progress else 0


@dataclass(frozen=True)
class JobView:
    """A snapshot of a job for people and tests; never changes under the reader."""

    id: str
    path: Path
    display_name: str
    size: int
    status: Status
    method: str
    message: str
    resumable: bool
    result: UploadResult | None
    confirmed: int


def _view(job: Job) -> JobView:
    return JobView(
        job.id,
        job.path,
        job.display_name,
        job.size,
        job.status,
        job.method,
        job.message,
        job.resumable,
        job.result,
        job.confirmed,
    )


SETTLED = {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PAUSED, Status.INTERRUPTED}


class UploadManager:
    def __init__(
        self,
        settings: Settings,
        state: StateStore,
        connection: ServerConnection | None,
        *,
        direct: DirectTarget | None = None,
        file_executor: Executor | None = None,
        part_executor: Executor | None = None,
    ) -> None:
        self._settings = settings
        self.state = state
        self.connection = connection
        self.direct = direct
        self._sessions = Sessions()
        self._api = self._new_api(settings)
        self._own_executors = file_executor is None
        self._file_executor = file_executor or ThreadPoolExecutor(16, thread_name_prefix="upload-file")
        self._part_executor = part_executor or ThreadPoolExecutor(4 * MAX_CONCURRENCY, thread_name_prefix="upload-part")
        self._limiter = TokenBucket(settings.bandwidth_limit)
        self._jobs: dict[str, Job] = {}
        self._listeners: list[Callable[[Event], None]] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._forget_when_done: set[str] = set()
        self._locks = UploadLocks(state.lock_dir)
        self._closed = False
        self._unwinding: set[str] = set()  # jobs whose last run has not let go of the upload's lock yet
        self._disk_full_said = False

    # -- wiring --------------------------------------------------------------------------------------------

    def _new_api(self, settings: Settings) -> ApiClient | None:
        if self.connection is None:
            return None
        return ApiClient(self.connection.api_url, self.connection.token, settings, sessions=self._sessions)

    @property
    def api(self) -> ApiClient | None:
        return self._api

    @property
    def settings(self) -> Settings:
        return self._settings

    def update_settings(self, settings: Settings) -> None:
        """New settings apply to uploads that start from now on; the bandwidth cap applies at once."""
        with self._lock:
            self._settings = settings
            self._api = self._new_api(settings)
            self._limiter.set_rate(settings.bandwidth_limit)
        self._pump()

    def set_direct(self, target: DirectTarget | None) -> None:
        """Your own S3 storage for direct uploads (from the settings and the keychain)."""
        with self._lock:
            self.direct = target
        self._pump()

    def set_connection(self, connection: ServerConnection | None) -> None:
        with self._lock:
            self.connection = connection
            self._api = self._new_api(self._settings)
        self._pump()

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break an upload
                log.exception("An event listener failed on %s", type(event).__name__)

    def _set(self, job: Job, status: Status, message: str = "") -> None:
        with self._lock:
            job.status = status
            job.message = message
            self._changed.notify_all()
        self._emit(StatusChanged(job.id, status, message))

    # -- queue commands ------------------------------------------------------------------------------------

    def add(self, path: str | Path, display_name: str | None = None, *, start: bool = True) -> str:
        """Queue a file; returns its job id (the existing one if the file is already queued)."""
        resolved = Path(path).expanduser().resolve()
        if not is_text(str(resolved)):
            # Such a name can't go in a request or the resume store; refusing it here keeps the rest going.
            raise FileUnreadableError(
                f"{shown(str(resolved))} can't be uploaded: its name has bytes that aren't valid text (UTF-8). "
                "Rename the file (or its folder) and add it again."
            )
        kind = special_kind(resolved)
        if kind is not None:
            raise FileUnreadableError(f"{shown(resolved.name)} can't be uploaded: it is {kind}, not a regular file.")
        try:
            if not resolved.is_file():
                raise (
                    IsADirectoryError(21, "Is a directory", str(resolved))
                    if resolved.is_dir()
                    else FileNotFoundError(2, "No such file", str(resolved))
                )
            size = resolved.stat().st_size
        except OSError as exc:
            raise unreadable(resolved, exc) from exc
        with self._lock:
            for job in self._jobs.values():
                if job.path == resolved and not job.status.finished:
                    return job.id
            job = Job(uuid.uuid4().hex, resolved, display_name or resolved.stem, size)
            if not start:
                job.status = Status.PAUSED
            self._jobs[job.id] = job
        self._emit(Queued(job.id, str(resolved), job.display_name, size))
        if size == 0:
            self._emit(Notice(job.id, "This file is empty (0 bytes); it will be uploaded as it is.", "warning"))
        if not start:
            self._emit(StatusChanged(job.id, Status.PAUSED, "Waiting for you to start it."))
        self._pump()
        return job.id

    def restore_interrupted(self) -> list[str]:
        """Uploads a crash or quit left unfinished become jobs in the INTERRUPTED state."""
        restored = []
        for record in self.state.unfinished():
            if record.status == ABANDONED or self._locks.busy(record.id):
                continue  # owed aborts, and uploads another window or command is running right now
            with self._lock:
                if record.id in self._jobs:
                    continue
                job = Job(
                    record.id,
                    Path(record.path),
                    record.display_name,
                    record.identity.size,
                    status=Status.INTERRUPTED,
                    method=record.method,
                    resumable=True,
                    message=record.message or "Interrupted before it finished.",
                )
                self._jobs[job.id] = job
            self._emit(Queued(job.id, record.path, record.display_name, record.identity.size))
            stored = self._stored_bytes(record)
            job.progress = Progress(job.id, record.method, stored, 0, record.identity.size, 0.0, None)
            self._emit(job.progress)  # what is already safe in storage, so nobody thinks resume starts over
            self._emit(StatusChanged(job.id, Status.INTERRUPTED, job.message))
            restored.append(job.id)
        return restored

    def _stored_bytes(self, record: UploadRecord) -> int:
        if record.method == CHUNKED:
            return record.chunk_offset
        try:
            return sum(part.size for part in self.state.parts(record.id).values())
        except UploaderError:
            return 0

    def jobs(self) -> list[JobView]:
        with self._lock:
            return [_view(job) for job in self._jobs.values()]

    def job(self, job_id: str) -> JobView:
        with self._lock:
            return _view(self._jobs[job_id])

    def pause(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            if job.status.active:
                job.control.request("pause")
                return
            if job.status != Status.QUEUED:
                return
        self._set(job, Status.PAUSED, "Paused.")

    def resume(self, job_id: str) -> None:
        """Go on with a paused, interrupted or failed upload (from where it stopped, if it can)."""
        with self._lock:
            job = self._jobs[job_id]
            if job.status not in {Status.PAUSED, Status.INTERRUPTED, Status.FAILED}:
                return
            job.control = Control()
        self._set(job, Status.QUEUED)
        self._pump()

    retry = resume

    def pause_all(self) -> None:
        for view in self.jobs():
            self.pause(view.id)

    def resume_all(self) -> None:
        for view in self.jobs():
            if view.status in {Status.PAUSED, Status.INTERRUPTED}:
                self.resume(view.id)

    def rename(self, job_id: str, display_name: str) -> None:
        display_name = display_name.strip()
        with self._lock:
            job = self._jobs[job_id]
            if not display_name or job.status.active or job.status == Status.COMPLETED:
                return
            job.display_name = display_name
        with contextlib.suppress(UploaderError):
            if self.state.get(job_id) is not None:
                self.state.update(job_id, display_name=display_name)
        self._emit(Renamed(job_id, display_name))

    def cancel(self, job_id: str) -> None:
        """Stop for good: the server-side upload is aborted and nothing is kept for resuming."""
        with self._lock:
            job = self._jobs[job_id]
            if job.status.finished and not (job.status == Status.FAILED and job.resumable):
                return  # a failure kept for Retry still has an upload on the server: cancelling aborts it
            if job.status.active:
                job.control.request(CANCEL)
                return
            job.status = Status.CANCELLED
            job.resumable = False
        self._file_executor.submit(self._abort_when_unwound, job.id)
        self._emit(StatusChanged(job.id, Status.CANCELLED, "Cancelled."))
        self._emit(Cancelled(job.id))

    discard = cancel

    def remove(self, job_id: str) -> None:
        """Take a row off the list; an unfinished upload is cancelled first."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            if job.status.active:
                job.control.request(CANCEL)
                self._forget_when_done.add(job_id)
                return
        if job.status not in (Status.COMPLETED, Status.CANCELLED):
            self.cancel(job_id)  # nothing half-done stays on the server for a row that is gone
        with self._lock:
            self._jobs.pop(job_id, None)
            self._changed.notify_all()
        self._emit(Removed(job_id))

    def clear_finished(self) -> None:
        for view in self.jobs():
            if view.status in {Status.COMPLETED, Status.CANCELLED}:
                self.remove(view.id)

    def discard_record(self, record_id: str) -> bool:
        """Abort and forget an interrupted upload that is not in the queue (the CLI's ``discard``).

        Returns False when the server could not be reached: the abort is then owed, and retried later.
        """
        record = self.state.get(record_id)
        if record is None:
            raise NotFoundError(f"There is no interrupted upload with id {record_id}.")
        lock = self._locks.acquire(record_id)
        try:
            return self._abort_record(record)
        finally:
            lock.release()
            self._locks.forget(record_id)

    def wait(self, job_ids: Iterable[str] | None = None, timeout: float | None = None) -> bool:
        """Block until the jobs are settled (finished, paused, or interrupted); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                ids = list(job_ids) if job_ids is not None else list(self._jobs)
                job_ids = ids
                pending = [i for i in ids if i in self._jobs and self._jobs[i].status not in SETTLED]
                if not pending:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left if left is not None else 1.0)

    def close(self, timeout: float = 15.0) -> None:
        """Pause what is running (it stays resumable), wait for it to settle, and release everything.

        Settled is not yet let go: a run reports how it ended before it releases the upload's lock.
        So this also waits for every run to release its lock; else whoever opens the store next in
        this process (another manager, the CLI's listing) finds the upload "running in another
        window" and leaves it out of the interrupted uploads, though nothing runs it any more.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            active = [job for job in self._jobs.values() if job.status.active or job.status == Status.QUEUED]
            for job in active:
                if job.status == Status.QUEUED:
                    job.status = Status.PAUSED
                job.control.request("pause")
        self.wait([job.id for job in active], timeout)
        with self._changed:
            self._changed.wait_for(lambda: not self._unwinding, max(0.0, deadline - time.monotonic()))
        if self._own_executors:
            self._file_executor.shutdown(wait=False, cancel_futures=True)
            self._part_executor.shutdown(wait=False, cancel_futures=True)
        self._sessions.close()

    # -- running -------------------------------------------------------------------------------------------

    def _pump(self) -> None:
        with self._lock:
            if self._closed or (self._api is None and self._settings.method != "direct-s3"):
                return  # queued jobs wait for a server (the GUI connects to the sandbox in the background)
            running = sum(1 for job in self._jobs.values() if job.status.active)
            for job in self._jobs.values():
                if running >= self._settings.files_at_once:
                    break
                # A job retried the moment it failed waits for its last run to let go of the lock: else it
                # would find the lock taken (by itself) and fail as "running in another window".
                if job.status == Status.QUEUED and job.id not in self._unwinding:
                    job.status = Status.STARTING
                    job.message = ""
                    running += 1
                    self._unwinding.add(job.id)
                    self._file_executor.submit(self._run_safely, job)

    def _run_safely(self, job: Job) -> None:
        try:
            lock = self._locks.acquire(job.id)
        except UploadBusyError as exc:
            with self._lock:
                self._unwinding.discard(job.id)
                self._changed.notify_all()
            self._emit(Failed(job.id, exc.message, True, job.method, type(exc).__name__))
            self._finish(job, Status.FAILED, exc.message, resumable=True)
            self._pump()
            return
        try:
            self._run(job)
        except BaseException:  # the queue must keep moving whatever happened to one file
            log.exception("Upload of %s crashed", job.path)
            self._finish(
                job, Status.FAILED, "Something unexpected went wrong; details are in the log file.", resumable=True
            )
        finally:
            lock.release()
            if job.status in {Status.COMPLETED, Status.CANCELLED}:
                self._locks.forget(job.id)
            with self._lock:
                forget = job.id in self._forget_when_done
                self._forget_when_done.discard(job.id)
                self._unwinding.discard(job.id)
                self._changed.notify_all()
            if forget:
                self.remove(job.id)
            self._pump()

    def _methods(self) -> dict[str, UploadMethod]:
        methods: dict[str, UploadMethod] = {
            PRESIGNED: PresignedMethod(self._sessions),
            CHUNKED: ChunkedMethod(),
            LEGACY: SingleRequestMethod(),
        }
        if self.direct is not None:
            methods[DIRECT] = DirectS3Method(self.direct)
        return methods

    def _chain(
        self, settings: Settings, api: ApiClient | None, size: int, record: UploadRecord | None, control: Control
    ) -> list[str]:
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
        if record is not None and record.method in chain:
            chain = chain[chain.index(record.method) :]
        return chain

    def _context(self, job: Job, settings: Settings, api: ApiClient | None) -> JobContext:
        identity = identify(job.path)

        auto = AutoConcurrency() if settings.auto_concurrency else None

        def emit(event: Event) -> None:
            if isinstance(event, Progress):
                job.progress = event
                if auto is not None:
                    auto.observe(event.confirmed + event.in_flight, event.parts_in_flight)
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
            on_status=lambda status, message: self._set(job, status, message),
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
            if record is not None and record.server not in {
                ctx.server_id,
                self.direct.server_id if self.direct else "",
            }:
                raise UnsupportedError(
                    f"This upload was started on another server ({record.server}). Connect to that server to "
                    "resume it, or cancel it."
                )
            chain = self._chain(settings, api, ctx.size, record, job.control)
        except Interrupted:
            self._stopped(job, None, None)
            return
        except UploaderError as exc:
            self._failed(job, None, None, exc)
            return
        methods = self._methods()
        for index, name in enumerate(chain):
            method = methods[name]
            job.method = name
            ctx.record = record if record is not None and record.method == name else None
            self._set(job, Status.UPLOADING, "Resuming…" if ctx.record else "")
            try:
                completion = method.run(ctx)
            except Interrupted:
                self._stopped(job, ctx, method)
                return
            except UploaderError as exc:
                following = chain[index + 1] if index + 1 < len(chain) else None
                if following is not None and self._may_fall_back(job, exc):
                    log.warning("%s: %s failed (%s); falling back to %s", job.path.name, name, exc.message, following)
                    self._set(job, Status.FALLING_BACK, f"{name} did not work: {exc.message}")
                    self._emit(FallingBack(job.id, name, following, exc.message))
                    self._abandon(ctx, method)
                    record = None
                    job.progress = None
                    continue
                self._failed(job, ctx, method, exc)
                return
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
                "%s: completed via %s in %.1f s: %s",
                job.path.name,
                name,
                result.seconds,
                result.network_volume_path or result.s3_key,
            )
            with self._lock:
                job.result = result
                job.resumable = False
            # The details first: whoever sees COMPLETED can rely on the result being there.
            self._emit(Completed(job.id, result))
            self._finish(job, Status.COMPLETED, "")
            return

    def _clear_record(self, job: Job, ctx: JobContext) -> None:
        try:
            self.state.delete(job.id)
        except DiskFullError as exc:
            # The record stays, so a later resume finds every part confirmed and completes the upload
            # again (storage answers with the object) rather than sending it twice. Said once per upload.
            ctx.notice(exc.message, "warning")
        except UploaderError as exc:
            log.warning("%s: its resume record could not be cleared: %s", job.path.name, exc.message)

    @staticmethod
    def _may_fall_back(job: Job, error: UploaderError) -> bool:
        if isinstance(error, UnsupportedError | ForbiddenError | NotFoundError):
            return True
        # Transient trouble with nothing stored yet: this method doesn't work from here. With parts
        # already stored it is more likely the network, and the upload stays resumable instead.
        return isinstance(error, TransientError) and job.confirmed == 0

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
        methods = self._methods()
        method = methods.get(record.method)
        aborted = True
        try:
            if method is not None:
                method.abort(ctx or self._bare_context(record), record)
            log.info("Aborted %s (%s)", record.s3_key, record.method)
        except UploaderError as exc:
            aborted = False
            log.warning("Could not abort %s now (%s); will try again later", record.s3_key, exc.message)
            with contextlib.suppress(UploaderError):
                self.state.create(record.with_changes(id=uuid.uuid4().hex, status=ABANDONED))
        with contextlib.suppress(UploaderError):
            self.state.delete(record.id)
        return aborted

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
            self._abort_record(record)
        finally:
            lock.release()
            self._locks.forget(job_id)

    def sweep_abandoned(self) -> int:
        """Abort server-side uploads an earlier session could not; returns how many are still owed."""
        owed = 0
        for record in self.state.unfinished():
            if record.status != ABANDONED:
                continue
            try:
                method = self._methods().get(record.method)
                if method is not None:
                    method.abort(self._bare_context(record), record)
                self.state.delete(record.id)
            except UploaderError:
                owed += 1
        return owed

    def _stopped(self, job: Job, ctx: JobContext | None, method: UploadMethod | None) -> None:
        if job.control.reason == CANCEL:
            if ctx is not None and method is not None:
                self._abandon(ctx, method)
            else:
                # Cancelled while preparing (before any method ran). This run holds the upload's lock,
                # so abort here: _abort_saved would find the lock taken, by us, and give up.
                with contextlib.suppress(UploaderError):
                    record = self.state.get(job.id)
                    if record is not None:
                        self._abort_record(record)
            self._finish(job, Status.CANCELLED, "Cancelled.")
            self._emit(Cancelled(job.id))
            return
        with contextlib.suppress(UploaderError):
            if self.state.get(job.id) is not None:
                self.state.update(job.id, status="paused", message="Paused.")
        with self._lock:
            job.resumable = True
        self._finish(job, Status.PAUSED, "Paused.")

    @staticmethod
    def _keeps_state(error: UploaderError) -> bool:
        return isinstance(error, TransientError | AuthError | FileUnreadableError | StateError | DiskFullError)

    def _failed(self, job: Job, ctx: JobContext | None, method: UploadMethod | None, error: UploaderError) -> None:
        try:
            record = self.state.get(job.id)
        except UploaderError:
            record = None
        resumable = record is not None and self._keeps_state(error)
        if record is not None and not resumable and ctx is not None and method is not None:
            self._abandon(ctx, method)
        elif resumable:
            with contextlib.suppress(UploaderError):
                self.state.update(job.id, status="failed", message=error.message)
        log.warning("%s failed (%s): %s", job.path.name, type(error).__name__, error.message)
        with self._lock:
            job.resumable = resumable
        self._emit(Failed(job.id, error.message, resumable, job.method, type(error).__name__))
        self._finish(job, Status.FAILED, error.message)

    def _finish(self, job: Job, status: Status, message: str, *, resumable: bool | None = None) -> None:
        with self._lock:
            if resumable is not None:
                job.resumable = resumable
        self._set(job, status, message)


def interrupted_records(state: StateStore) -> list[UploadRecord]:
    """Uploads waiting to be resumed: not an owed abort, and not running in another process right now."""
    locks = UploadLocks(state.lock_dir)
    return [r for r in state.unfinished() if r.status != ABANDONED and not locks.busy(r.id)]
