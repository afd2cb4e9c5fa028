"""The queue's rows: a job as the queue keeps it, a frozen view of it for readers, and the server it goes to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.events import Progress, Status, UploadResult
from desktop_uploader.engine.locks import UploadLocks
from desktop_uploader.engine.methods.base import CHUNKED
from desktop_uploader.engine.state import OWED_ABORT, StateStore, UploadRecord


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
    # Whether its last stop left a record in the resume store (made resumable: restored from one). A run
    # that then finds none knows another window or command finished or discarded it meanwhile.
    had_record: bool = False

    def __post_init__(self) -> None:
        self.had_record = self.had_record or self.resumable

    @property
    def holds_the_file(self) -> bool:
        """Not done with its file: waiting, running, paused, interrupted, or failed with its parts kept for
        Retry (a second row for that file would start over beside them)."""
        return not self.status.finished or (self.status is Status.FAILED and self.resumable)

    @property
    def confirmed(self) -> int:
        if self.status == Status.FAILED and not self.resumable:
            return 0  # its parts were aborted with it (or are owed an abort): none of it is kept
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


def view_of(job: Job) -> JobView:
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


def stored_bytes(state: StateStore, record: UploadRecord) -> int:
    """How much of an interrupted upload is already safe in storage, by its record."""
    if record.method == CHUNKED:
        return record.chunk_offset
    try:
        return sum(part.size for part in state.parts(record.id).values())
    except UploaderError:
        return 0


def has_record(state: StateStore, job_id: str) -> bool:
    """Whether the resume store holds this upload (an unreadable store: as if it did not)."""
    try:
        return state.get(job_id) is not None
    except UploaderError:
        return False


def interrupted_records(state: StateStore) -> list[UploadRecord]:
    """Uploads waiting to be resumed: not an owed abort, and not running in another process right now."""
    return _unfinished(state, running=False)


def running_elsewhere(state: StateStore) -> list[UploadRecord]:
    """Uploads another window or command is sending right now (it holds their locks).

    Left out of the interrupted ones, they were nowhere: an audit's ``resume ID`` said the id "matches no
    interrupted upload" and ``list`` said there were none, while the upload ran in another terminal.
    """
    return _unfinished(state, running=True)


def _unfinished(state: StateStore, *, running: bool) -> list[UploadRecord]:
    locks = UploadLocks(state.lock_dir)
    return [r for r in state.unfinished() if r.status != OWED_ABORT and locks.busy(r.id) == running]


class RunningElsewhereError(UploaderError):
    """The file (or the upload named) is being sent by another window or command right now."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} is being uploaded by another Desktop Uploader window or command right now; "
            "pause it there first, or let it finish."
        )


def interrupted_upload_of(
    state: StateStore, path: Path, servers: set[str], display_name: str | None = None
) -> UploadRecord | None:
    """The interrupted upload of this same file to one of ``servers``, to go on with rather than start again.

    Someone whose upload was stopped runs the same command again: sending it all again would store the
    file twice and leave the parts already stored waiting for a discard. "The same file" is the same
    path, size and modification time (resuming checks its content again), under the same name.

    Raises RunningElsewhereError when another window or command is sending this same file there right
    now: starting again beside it stored the file twice (an audit ran two commands on one file).
    """
    try:
        stat = path.stat()
    except OSError:
        return None

    def same(record: UploadRecord) -> bool:
        return (
            record.path == str(path)
            and record.server in servers
            and record.identity.size == stat.st_size
            and record.identity.mtime_ns == stat.st_mtime_ns
            and display_name in (None, record.display_name)
        )

    if any(same(record) for record in running_elsewhere(state)):
        raise RunningElsewhereError(path.name)
    return next((record for record in interrupted_records(state) if same(record)), None)
