"""What the engine tells its listeners: frozen dataclasses, delivered on worker threads.

Listeners (the CLI's progress bars, the GUI's bridge) must be quick and must not call back into
the manager while handling an event on a worker thread; the GUI bridge re-emits them as queued Qt
signals. Progress is coalesced by the engine (a few events a second per file), and the bytes it
reports as confirmed are bytes storage acknowledged, so they never go backwards on a retry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Status(Enum):
    QUEUED = "queued"
    STARTING = "starting"
    UPLOADING = "uploading"
    RETRYING = "retrying"
    FALLING_BACK = "falling back"
    COMPLETING = "completing"
    PAUSED = "paused"
    INTERRUPTED = "interrupted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    # Asked for every row on every repaint of a 1,000-row queue: answered by identity, because an
    # enum set membership test hashes the member in Python (enum.__hash__) and showed up in profiles.
    @property
    def finished(self) -> bool:
        return self is Status.COMPLETED or self is Status.FAILED or self is Status.CANCELLED

    @property
    def active(self) -> bool:
        return (
            self is Status.UPLOADING
            or self is Status.STARTING
            or self is Status.RETRYING
            or self is Status.FALLING_BACK
            or self is Status.COMPLETING
        )


@dataclass(frozen=True)
class UploadResult:
    method: str
    size: int
    unique_file_name: str
    s3_key: str
    comfyui_path: str | None
    network_volume_path: str | None
    etag: str
    seconds: float = 0.0
    bytes_sent: int = 0  # including re-sent bytes; size/bytes_sent shows what retries cost


@dataclass(frozen=True)
class Event:
    job_id: str


@dataclass(frozen=True)
class Queued(Event):
    path: str
    display_name: str
    size: int


@dataclass(frozen=True)
class StatusChanged(Event):
    status: Status
    message: str = ""


CANCELLED = "Cancelled."  # a cancel's message; one that left parts on storage says so instead (attempt.py)

# A file added while "start uploads as soon as files are added" is off: PAUSED, though nobody paused it.
NOT_STARTED = "Waiting for you to start it."
RESUMING = "Resuming…"  # an attempt that goes on from a record: said until it sends beyond what was stored


@dataclass(frozen=True)
class Started(Event):
    method: str
    part_size: int
    part_count: int
    resumed_bytes: int = 0
    adjustments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress(Event):
    method: str
    confirmed: int  # acknowledged by storage: never decreases
    in_flight: int  # handed to the network for parts not yet acknowledged
    total: int
    speed: float  # bytes per second over a sliding window
    eta: float | None  # seconds
    parts_done: int = 0
    parts_total: int = 0
    parts_in_flight: int = 0
    # confirmed + in_flight: on the wire, stored or not. Shown next to stored bytes so a slow link
    # moves visibly before its first part is stored (a paused upload keeps only ``confirmed``).
    sent: int = 0


@dataclass(frozen=True)
class Retrying(Event):
    method: str
    part: int
    attempt: int  # the attempt that failed, 1-based
    max_attempts: int
    delay: float  # seconds until the next try
    reason: str
    busy: bool = False  # storage answered 429 or 503: Auto mode takes fewer parts in flight


@dataclass(frozen=True)
class Reconnecting(Event):
    """A failed upload whose connection was lost is tried again by itself after ``delay`` seconds.

    The window's own event (gui/reconnect.py), not the engine's: the row counts down to it.
    """

    delay: float


@dataclass(frozen=True)
class FallingBack(Event):
    from_method: str
    to_method: str
    reason: str


@dataclass(frozen=True)
class Notice(Event):
    message: str
    level: str = "info"


@dataclass(frozen=True)
class Completed(Event):
    result: UploadResult


@dataclass(frozen=True)
class Failed(Event):
    message: str
    resumable: bool
    method: str = ""
    kind: str = ""
    retry_helps: bool = True  # False when the same file can only be refused again (ending.retry_can_help)


@dataclass(frozen=True)
class Cancelled(Event):
    pass


@dataclass(frozen=True)
class Removed(Event):
    """The job left the queue (finished rows cleared, or an interrupted upload discarded)."""


@dataclass(frozen=True)
class Renamed(Event):
    display_name: str


@dataclass(frozen=True)
class EventBatch:
    events: tuple[Event, ...] = field(default_factory=tuple)
