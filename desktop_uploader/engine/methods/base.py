"""What every upload method gets to work with, and the interface the manager drives them through."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from desktop_uploader.engine.api_client import ApiClient
from desktop_uploader.engine.autotune import AutoConcurrency
from desktop_uploader.engine.bandwidth import TokenBucket
from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import DiskFullError, RecordMissingError, StateError
from desktop_uploader.engine.events import Event, Notice, Started, Status
from desktop_uploader.engine.fileid import FileIdentity
from desktop_uploader.engine.linkmemory import LinkMemory, reading_of
from desktop_uploader.engine.planner import PartPlan
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.retry import RetryPolicy, RetryQuota
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore, UploadRecord

log = logging.getLogger(__name__)

PRESIGNED = "presigned-s3"
CHUNKED = "chunked-s3"
LEGACY = "serverless-function"
DIRECT = "direct-s3"


@dataclass
class JobContext:
    job_id: str
    path: Path
    display_name: str
    identity: FileIdentity
    settings: Settings
    state: StateStore
    control: Control
    emit: Callable[[Event], None]
    part_executor: Executor
    server_id: str
    api: ApiClient | None = None
    record: UploadRecord | None = None  # set when resuming
    limiter: TokenBucket | None = None
    concurrency: Callable[[], int] | None = None  # overrides settings.concurrency (Auto mode)
    pacing: AutoConcurrency | None = None  # Auto mode: what the part scheduler asks and feeds
    links: LinkMemory | None = None  # what earlier Auto uploads measured of each server's link
    on_status: Callable[[Status, str], None] | None = None
    # True the first time in this session ``key`` is asked about: advice about the server, not about
    # one file, is said once however many files meet it. None (a sweep outside any job): never said.
    first_in_session: Callable[[str], bool] | None = None
    _said: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        """The file's name as sent to be stored. A backslash is a character like any other in a Linux or macOS
        name, but servers (ours, the Next.js route, browsers' uploads) take it for a Windows folder: an audit's
        back\\slash.safetensors was stored as slash.safetensors. It goes as "_", as spaces and quotes do."""
        return self.path.name.replace("\\", "_")

    @property
    def size(self) -> int:
        return self.identity.size

    def follow_link(self, server: str) -> int:
        """The part size to plan with, and Auto's parts in flight to start at: on Auto, what the last upload
        to ``server`` measured of its link (the part size only with the preset's own chunk size, and S3's smallest
        with no recent reading); otherwise the settings."""
        if self.links is None or self.pacing is None:
            in_flight = "on Auto" if self.settings.auto_concurrency else str(self.settings.concurrency)
            log.info(
                "%s: part size %d bytes as set (before S3's limits); parts in flight %s",
                self.name,
                self.settings.chunk_size,
                in_flight,
            )
            return self.settings.chunk_size
        size, limit = self.settings.chunk_size, self.settings.bandwidth_limit
        follows = self.settings.part_size_follows_link
        if follows:
            size = self.links.part_size(server, self.size, limit)
        level, proof = self.links.parts(server, size, limit)
        self.pacing.start_at(level, proof)
        # Which of these the app chose and which the person did, for support (an audit found neither said).
        log.info(
            "%s: part size %d bytes %s (before S3's limits); parts in flight on Auto%s",
            self.name,
            size,
            "sized by the link" if follows else "as set",
            f", from the {level} an earlier upload here proved" if level else "",
        )
        return size

    def learn_link(self, server: str, tracker: ProgressTracker) -> None:
        """Keep what this Auto run measured of the link to ``server``, for the next upload's plan: its parts'
        pace, and the parts in flight a climb proved useful (an earlier climb's keeps its own time)."""
        if self.links is None or self.pacing is None:
            return
        if tracker.first_sent_at is None or tracker.last_sent_at is None or not tracker.stored_bytes:
            return
        seconds = tracker.last_sent_at - tracker.first_sent_at
        reading = reading_of(tracker.part_times, tracker.bytes_sent, seconds, self.links.clock())
        if reading is None:
            return
        parts, learned = self.pacing.proof
        if not learned:
            reading = replace(reading, parts=parts, parts_at=reading.at)
        elif (earlier := self.links.recall(server)) is not None and earlier.parts:
            reading = replace(reading, parts=min(parts, earlier.parts), parts_at=earlier.parts_at)
        self.links.remember(server, reading)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.settings.retries, self.settings.backoff_base, self.settings.backoff_cap)

    def quota(self) -> RetryQuota:
        """This run's one quota, shared by its parts and its calls (it lives on the run's Control)."""
        return self.control.quota

    def notice(self, message: str, level: str = "info") -> None:
        if message in self._said:
            return
        self._said.add(message)
        getattr(log, "warning" if level == "warning" else "info")("%s: %s", self.name, message)
        self.emit(Notice(self.job_id, message, level))

    def notice_once_per_server(self, topic: str, message: str, level: str = "info") -> None:
        """A notice about this job's server, said on the first job that meets ``topic`` in this session."""
        if self.first_in_session is not None and self.first_in_session(f"{topic}@{self.server_id}"):
            self.notice(message, level)

    def announce(self, method: str, plan: PartPlan, resumed_bytes: int = 0) -> None:
        for adjustment in plan.adjustments:
            log.info("%s: %s", self.name, adjustment)
        log.info(
            "%s: %s upload of %d bytes in %d parts of %d bytes%s",
            self.name,
            method,
            plan.file_size,
            plan.part_count,
            plan.part_size,
            f", resuming with {resumed_bytes} bytes already stored" if resumed_bytes else "",
        )
        self.emit(Started(self.job_id, method, plan.part_size, plan.part_count, resumed_bytes, plan.adjustments))

    def new_record(self, method: str, **fields: Any) -> UploadRecord:
        """This job's resume record for ``method``: the file's side filled in, the server's side given."""
        fields.setdefault("server", self.server_id)
        return UploadRecord(
            id=self.job_id,
            path=str(self.path),
            display_name=self.display_name,
            identity=self.identity,
            method=method,
            **fields,
        )

    def completing(self) -> None:
        """Say that every byte is stored and storage is assembling the object (minutes for big files)."""
        if self.on_status is not None:
            self.on_status(Status.COMPLETING, "Finishing…")

    def save(self, write: Callable[[], object]) -> None:
        """Write resume state; a full disk costs resumability, not the upload."""
        try:
            write()
        except DiskFullError as exc:
            self.notice(exc.message, "warning")
        except RecordMissingError as exc:  # its cause (a full disk when the record was due) was said then
            log.info("%s: progress not saved: %s", self.name, exc.message)
        except StateError as exc:
            self.notice(f"{exc.message} The upload goes on, but may not resume after a crash.", "warning")


class UploadMethod(Protocol):
    name: str

    def run(self, ctx: JobContext) -> Completion: ...

    def abort(self, ctx: JobContext, record: UploadRecord) -> None:
        """Remove the server-side upload behind ``record`` (nothing to do if there is none)."""


@dataclass(frozen=True)
class Completion:
    """What a method hands back; the manager adds timing and turns it into an UploadResult."""

    s3_key: str
    unique_file_name: str
    comfyui_path: str | None
    network_volume_path: str | None
    etag: str
    size: int
    bytes_sent: int
