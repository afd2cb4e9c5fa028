"""The upload queue: which files run, through which method, and what happens when one fails.

Commands (add, pause, resume, cancel, retry, remove, discard) are plain, thread-safe method calls
that return at once; the work happens on executors the caller may supply (the GUI passes ones
backed by QThreadPool). Events go to subscribers on worker threads.

A run (attempt.py) goes through the fallback chain to one ending (ending.py); give-ups whose server
isn't reachable are owed to it (ledger.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

from desktop_uploader.engine.api_client import ApiClient
from desktop_uploader.engine.attempt import AttemptRunner
from desktop_uploader.engine.bandwidth import TokenBucket
from desktop_uploader.engine.control import CANCEL, Control
from desktop_uploader.engine.errors import (
    NotFoundError,
    UploaderError,
)
from desktop_uploader.engine.events import (
    CANCELLED,
    NOT_STARTED,
    Cancelled,
    Event,
    Failed,
    Notice,
    Progress,
    Queued,
    Removed,
    Renamed,
    Status,
    StatusChanged,
)
from desktop_uploader.engine.files import uploadable_file
from desktop_uploader.engine.http import Sessions
from desktop_uploader.engine.jobs import (
    SETTLED,
    Job,
    JobView,
    ServerConnection,
    interrupted_records,
    stored_bytes,
    view_of,
)
from desktop_uploader.engine.ledger import AbortLedger, Settled, Sweep
from desktop_uploader.engine.linkmemory import LinkMemory
from desktop_uploader.engine.locks import UploadLocks
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.settings import MAX_CONCURRENCY, Settings
from desktop_uploader.engine.state import OWED_ABORT, StateStore, UploadRecord

log = logging.getLogger(__name__)

__all__ = ["JobView", "ServerConnection", "UploadManager", "interrupted_records"]


class UploadManager(AttemptRunner):
    """The queue: thread-safe commands, the pump that starts runs, and the listeners that hear of them."""

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
        self._links = LinkMemory(state.data_dir)
        self._closed = False
        self._unwinding: set[str] = set()  # jobs whose last run has not let go of the upload's lock yet
        self._disk_full_said = False
        self._said_once: set[str] = set()
        self._ledger = AbortLedger(state, self._methods, self._abort_context, self._adopt_listed)

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

    def add(self, path: str | Path, display_name: str | None = None, *, start: bool = True) -> str:
        """Queue a file; returns its job id (the existing one if the file has a row that isn't done with it)."""
        resolved, size = uploadable_file(path)
        with self._lock:
            for job in self._jobs.values():
                if job.path == resolved and job.holds_the_file:
                    return job.id
            job = Job(uuid.uuid4().hex, resolved, display_name or resolved.stem, size)
            if not start:
                job.status = Status.PAUSED
            self._jobs[job.id] = job
        self._emit(Queued(job.id, str(resolved), job.display_name, size))
        if size == 0:
            self._emit(Notice(job.id, "This file is empty (0 bytes); it will be uploaded as it is.", "warning"))
        if not start:
            self._emit(StatusChanged(job.id, Status.PAUSED, NOT_STARTED))
        self._pump()
        return job.id

    def restore_interrupted(self, paused: Collection[str] = (), *, only: Collection[str] | None = None) -> list[str]:
        """Uploads a crash or quit left unfinished become jobs in the INTERRUPTED state (PAUSED for ``paused``)."""
        restored = []
        for record in self.state.unfinished():
            if record.status == OWED_ABORT or self._locks.busy(record.id):
                continue  # owed aborts, and uploads another window or command is running right now
            if only is not None and record.id not in only:
                continue
            with self._lock:
                if record.id in self._jobs:
                    continue
                job = Job(
                    record.id,
                    Path(record.path),
                    record.display_name,
                    record.identity.size,
                    status=Status.PAUSED if record.id in paused else Status.INTERRUPTED,
                    method=record.method,
                    resumable=True,
                    message=record.message or "Interrupted before it finished.",
                )
                self._jobs[job.id] = job
            self._emit(Queued(job.id, record.path, record.display_name, record.identity.size))
            stored = stored_bytes(self.state, record)
            job.progress = Progress(job.id, record.method, stored, 0, record.identity.size, 0.0, None)
            self._emit(job.progress)  # what is already safe in storage, so nobody thinks resume starts over
            self._emit(StatusChanged(job.id, job.status, job.message))
            restored.append(job.id)
        return restored

    def server_ids(self) -> set[str]:
        """The servers this manager can reach now, as resume records name them."""
        return {target.server_id for target in (self.connection, self.direct) if target is not None}

    def jobs(self) -> list[JobView]:
        with self._lock:
            return [view_of(job) for job in self._jobs.values()]

    def job(self, job_id: str) -> JobView:
        with self._lock:
            return view_of(self._jobs[job_id])

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
        """Go on with a paused, interrupted or failed upload (from where it stopped, if it can), or start a
        cancelled one again from its first byte (its parts were deleted with it)."""
        with self._lock:
            job = self._jobs[job_id]
            if job.status not in {Status.PAUSED, Status.INTERRUPTED, Status.FAILED, Status.CANCELLED}:
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
        self._emit(StatusChanged(job.id, Status.CANCELLED, CANCELLED))
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

    def discard_record(self, record_id: str) -> Settled:
        """Abort and forget an interrupted upload that is not in the queue (the CLI's ``discard``).

        When its server can't be reached now (or is not the one connected), the abort is owed, and
        sent the next time a session connects to that server.
        """
        record = self.state.get(record_id)
        if record is None:
            raise NotFoundError(f"There is no interrupted upload with id {record_id}.")
        lock = self._locks.acquire(record_id)
        try:
            return self._ledger.settle(record)
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
        except UploaderError as exc:  # someone else runs it, or no lock can be made (a full disk)
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
            if job.status in {Status.COMPLETED, Status.CANCELLED} or (
                job.status == Status.FAILED and not job.resumable
            ):
                self._locks.forget(job.id)  # nothing is left to resume: its lock file would stay for good
            with self._lock:
                forget = job.id in self._forget_when_done
                self._forget_when_done.discard(job.id)
                self._unwinding.discard(job.id)
                self._changed.notify_all()
            if forget:
                self.remove(job.id)
            self._pump()

    def sweep_owed_aborts(self) -> Sweep:
        """Send the aborts earlier sessions owe to the targets this session is connected to."""
        return self._ledger.sweep()

    def owed_aborts(self) -> list[UploadRecord]:
        return self._ledger.owed()
