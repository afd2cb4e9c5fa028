"""What one row of the upload queue shows, folded from engine events: pure, so it is tested without Qt.

The GUI's model holds one :class:`Row` per job and calls :meth:`Row.apply` for each event; the
delegate only paints what the properties here return. The wording lives here too, so the CLI, the
tray and the window tell the same story.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from desktop_uploader.engine import events
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.filenames import shown
from desktop_uploader.engine.limits import human_bytes


class RowAction(Enum):
    PAUSE = "Pause"
    RESUME = "Resume"
    RETRY = "Retry"
    CANCEL = "Cancel"
    DISCARD = "Discard"
    REMOVE = "Remove from list"
    COPY_COMFYUI = "Copy ComfyUI path"
    COPY_S3 = "Copy S3 path"
    COPY_MESSAGE = "Copy message"


def human_speed(bytes_per_second: float) -> str:
    """In KiB/s and MiB/s, like every size the app shows and the bandwidth limit in Settings.

    MiB/s from 1000 KiB/s on, not from 1024: a 1 MiB/s limit reads 1004-1024 KiB/s, which showed as
    "1015 KiB/s" one moment and "1.0 MiB/s" the next.
    """
    if bytes_per_second <= 0:
        return ""
    if bytes_per_second < 1000 * 1024:
        return f"{bytes_per_second / 1024:.0f} KiB/s"
    return f"{bytes_per_second / (1024 * 1024):.1f} MiB/s"


def plural(count: int, word: str, words: str = "") -> str:
    """ "1 file", "2 files": a person reads "1 upload(s)" as a program that didn't care to count."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def human_duration(seconds: float | None) -> str:
    if seconds is None or math.isinf(seconds) or seconds < 0:
        return ""
    whole = max(1, round(seconds)) if seconds > 0 else 0  # bytes still to send never read "0 s left"
    if whole < 60:
        return f"{whole} s"
    minutes, seconds_left = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min" if minutes >= 10 or not seconds_left else f"{minutes} min {seconds_left} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@dataclass
class Row:
    job_id: str
    path: Path
    display_name: str
    size: int
    status: Status = Status.QUEUED
    method: str = ""
    confirmed: int = 0
    in_flight: int = 0
    sent: int = 0  # on the wire: stored plus parts in flight (``confirmed`` is what a pause keeps)
    resumed: int = 0  # what a resumed attempt found stored: "Resuming…" until bytes beyond it are sent
    speed: float = 0.0
    eta: float | None = None
    message: str = ""
    resumable: bool = False
    retry_helps: bool = True  # a failure another try can't change (a refused file type) offers no Retry
    failed_kind: str = ""  # the failure's error class, as events carry it (a changed file is checked again)
    retry_until: float | None = None
    reconnect_at: float | None = None  # a failure's own next try, after a lost connection (gui/reconnect.py)
    retry_attempt: int = 0
    retry_max: int = 0
    # Stored bytes at a part's first retry; None once more is stored. On a dead link each new try takes a timeout:
    # the row said a bare "Uploading" for a minute while every part failed (a network audit), and now says why.
    retried_at: int | None = None
    falling_back_to: str = ""
    result: events.UploadResult | None = None
    notices: list[str] = field(default_factory=list)
    # What a queued row waits for, as a sentence ("Waiting for a server…"); empty means a free slot.
    # The window sets it from the connection: a row never sits at a bare, silent "Queued".
    wait_reason: str = ""

    @property
    def file_name(self) -> str:
        """The file's name as the window shows it: a line break or tab in it drew the row's name as two lines
        over each other, or a gap (an audit); they read as \\n and \\t, as the command line shows them."""
        return shown(self.path.name)

    @property
    def fraction(self) -> float:
        if self.status == Status.COMPLETED:
            return 1.0
        return min(1.0, self.confirmed / self.size) if self.size else 0.0

    @property
    def s3_path(self) -> str:
        """Where the object is in storage. A server's ``networkVolumePath`` is only that when it is an
        ``s3://`` URL: a RunPod-style server answers the volume's file path there, the ComfyUI path again."""
        result = self.result
        if result is None:
            return ""
        volume = result.network_volume_path or ""
        return volume if volume.startswith("s3://") else result.s3_key

    def clipboard_text(self, action: RowAction) -> str:
        """What a copy action puts on the clipboard; empty when the row has nothing to copy for it."""
        if action is RowAction.COPY_COMFYUI:
            return (self.result.comfyui_path or "") if self.result is not None else ""
        if action is RowAction.COPY_MESSAGE:
            return self.message if self.has_message else ""
        return self.s3_path if action is RowAction.COPY_S3 else ""

    @property
    def has_message(self) -> bool:
        """A failure's or a stop's sentence, which a row cuts to its width and someone may need to pass on: a
        route's checksum fix, in an audit, was whole only in a tooltip, which can't be copied."""
        return bool(self.message) and self.status in (Status.FAILED, Status.CANCELLED, Status.INTERRUPTED)

    @property
    def never_started(self) -> bool:
        """Added with automatic start off and not started since: "Paused" and "Resume" would say otherwise."""
        return self.status is Status.PAUSED and self.message == events.NOT_STARTED and not self.confirmed

    def action_label(self, action: RowAction) -> str:
        """The action's name on this row's buttons and menu: a file nobody started is started, not resumed, and
        a cancelled one is started again (from its first byte: its parts were deleted)."""
        if action is RowAction.RETRY and self.status is Status.CANCELLED:
            return "Start again"
        return "Start" if action is RowAction.RESUME and self.never_started else action.value

    @property
    def percent(self) -> int:
        return int(self.fraction * 100)

    def apply(self, event: events.Event, now: float) -> bool:
        """Fold one event into the row; False when it changed nothing visible."""
        match event:
            case events.Progress():
                self._progress(event, now)
            case events.Started():
                self.method = event.method
                self.falling_back_to = ""
                self.confirmed = self.sent = self.resumed = event.resumed_bytes
            case events.StatusChanged():
                self._status_changed(event)
            case events.Reconnecting():
                self.reconnect_at = now + event.delay
            case events.Retrying():
                self.retry_until = now + event.delay
                self.retry_attempt, self.retry_max = event.attempt, event.max_attempts
                self.message = event.reason
                self.retried_at = self.confirmed if self.retried_at is None else self.retried_at
            case events.FallingBack():
                self.falling_back_to = event.to_method
                self.confirmed = self.sent = 0
            case events.Completed():
                self.result = event.result
                self.confirmed = self.sent = self.size
                self.resumable = False
            case events.Failed():
                self._failed(event)
            case events.Notice():
                self.notices.append(event.message)
            case events.Renamed():
                self.display_name = event.display_name
            case _:
                return False
        return True

    def _progress(self, event: events.Progress, now: float) -> None:
        self.size = event.total or self.size  # a changed file, sent again, at its size now
        self.confirmed, self.in_flight = event.confirmed, event.in_flight
        self.sent = max(event.sent, event.confirmed)
        self.speed, self.eta, self.method = event.speed, event.eta, event.method
        if self.retry_until is not None and now >= self.retry_until:
            self.retry_until = None
        if self.retried_at is not None and event.confirmed > self.retried_at:
            self.retried_at = None  # stored again: the link works

    def _failed(self, event: events.Failed) -> None:
        self.message, self.resumable, self.retry_helps = event.message, event.resumable, event.retry_helps
        self.failed_kind = event.kind
        self.method = event.method or self.method  # one that failed before sending a byte is named too
        if not event.resumable:  # its parts were aborted with it (a GUI audit's row still said "15 MiB stored")
            self.confirmed = self.sent = self.in_flight = 0

    def _status_changed(self, event: events.StatusChanged) -> None:
        self.status = event.status
        if event.status in (Status.FAILED, Status.PAUSED, Status.INTERRUPTED, Status.CANCELLED):
            self.speed, self.eta, self.in_flight, self.retry_until = 0.0, None, 0, None
            self.sent = self.confirmed
        if not event.status.active or event.message == events.RESUMING:
            self.retried_at = None  # a new attempt starts with a clean slate
        if event.status is not Status.FAILED:
            self.reconnect_at = None  # tried again (by itself or by Retry), or given up
        if event.message == events.RESUMING:
            self.resumed = self.sent  # until the attempt's Started says what storage had
        self.message = event.message

    def _failed_text(self, now: float) -> str:
        """ "Failed: …", or, while a lost connection's next try is due (gui/reconnect.py), the time until it."""
        if self.reconnect_at is None:
            return f"Failed: {self.message}" if self.message else "Failed"
        wait = human_duration(self.reconnect_at - now)
        return f"Trying again in {wait}: {self.message}" if wait else f"Trying again: {self.message}"

    def status_text(self, now: float) -> str:
        match self.status:
            case Status.QUEUED:
                return self.wait_reason or "Waiting for a free slot"
            case Status.STARTING:
                return "Starting…"
            case Status.FALLING_BACK:
                return f"Falling back to {self.falling_back_to or 'another method'}…"
            case Status.COMPLETING:
                return "Finishing…"
            case Status.UPLOADING | Status.RETRYING:
                return self._uploading_text(now)
            case Status.PAUSED:
                return "Not started" if self.never_started else "Paused"
            case Status.INTERRUPTED:
                return "Interrupted: resume to go on where it stopped"
            case Status.COMPLETED:
                return self._completed_text()
            case Status.FAILED:
                return self._failed_text(now)
            case Status.CANCELLED:  # with what stays on storage, when its parts could not be removed
                return "Cancelled" if self.message in ("", events.CANCELLED) else f"Cancelled. {self.message}"
        return self.status.value

    def _uploading_text(self, now: float) -> str:
        attempt = f"attempt {self.retry_attempt + 1}/{self.retry_max}"
        if self.retry_until is not None and now < self.retry_until:
            return f"Retrying in {max(1, math.ceil(self.retry_until - now))} s ({attempt})"
        if self.retried_at is not None and self.message:
            return f"Retrying ({attempt}): {self.message}"
        # Until anything new is on the wire: a GUI audit saw it stay while 64 MiB were stored.
        if self.message == events.RESUMING and self.sent <= self.resumed:
            return events.RESUMING
        # Stored bytes are on line 2; what is on the wire beyond them shows a slow link moving
        # before its first part lands (and is what a pause now would send again).
        return f"Uploading · {human_bytes(self.sent)} sent" if self.sent > self.confirmed else "Uploading"

    def _completed_text(self) -> str:
        """ "Completed", with the name storage gave the file when it is not the file's own: what a person picks
        in ComfyUI. A GUI audit found the server's prefix and underscores only by pasting the copied path."""
        result = self.result
        if result is not None and result.method == "direct-s3" and result.network_volume_path:
            # In your own bucket the folder is the news: a direct-s3 audit's "stored as 1796…_lora.safetensors"
            # said neither the bucket nor the folder, and History has no ComfyUI path to show for it.
            return f"Completed · stored as {shown(result.network_volume_path)}"
        stored = result.unique_file_name if result is not None else ""
        return f"Completed · stored as {shown(stored)}" if stored and stored != self.path.name else "Completed"

    def progress_text(self) -> str:
        """Stored bytes and percentage; nothing for a cancelled row, whose parts were deleted from storage."""
        if self.status == Status.CANCELLED:
            return ""
        if self.status == Status.COMPLETED:
            return f"{human_bytes(self.size)} · 100%"
        # "stored": next to "34.8 MiB sent" in the status line, a GUI audit read "0 B of 60.0 MiB" as a contradiction.
        return f"{human_bytes(self.confirmed)} of {human_bytes(self.size)} stored · {self.percent}%"

    def rate_text(self) -> str:
        # While storage assembles the parts nothing moves: a speed and "0 s left" would say otherwise.
        if not self.status.active or self.status is Status.COMPLETING or not self.speed:
            return ""
        eta = human_duration(self.eta)
        return f"{human_speed(self.speed)}" + (f" · {eta} left" if eta else "")

    def actions(self) -> list[RowAction]:
        """Everything that makes sense for this row now, in menu order."""
        found: list[RowAction] = []
        # Storage's answer comes a moment before the status says Completed: once the object is
        # stored there is nothing left to pause or cancel.
        stored = self.result is not None
        if (self.status.active or self.status == Status.QUEUED) and not stored:
            found.append(RowAction.PAUSE)
        if self.status == Status.PAUSED:
            found.append(RowAction.RESUME)
        if self.status == Status.INTERRUPTED:
            found += [RowAction.RESUME, RowAction.DISCARD]
        if self.status == Status.FAILED:
            # A failure kept for resuming still has its parts on the server: giving up must remove them.
            found += [RowAction.RETRY] if self.retry_helps else []
            found.append(RowAction.DISCARD if self.resumable else RowAction.REMOVE)
        if not self.status.finished and self.status != Status.INTERRUPTED and not stored:
            found.append(RowAction.CANCEL)
        if self.status == Status.CANCELLED:  # a cancel by mistake needs no second drop (a GUI audit looked for one)
            found.append(RowAction.RETRY)
        if self.status in (Status.COMPLETED, Status.CANCELLED):
            found.append(RowAction.REMOVE)
        if self.result is not None and self.result.comfyui_path:
            found.append(RowAction.COPY_COMFYUI)
        if self.s3_path:
            found.append(RowAction.COPY_S3)
        if self.has_message:
            found.append(RowAction.COPY_MESSAGE)
        return found

    def primary_action(self) -> RowAction | None:
        """The one button a row shows: what a person most likely wants next."""
        for action in (RowAction.PAUSE, RowAction.RESUME, RowAction.RETRY, RowAction.COPY_COMFYUI, RowAction.COPY_S3):
            if action in self.actions():
                return action
        return None

    def copy(self) -> Row:
        return replace(self, notices=list(self.notices))


@dataclass(frozen=True)
class QueueSummary:
    total: int
    done: int
    active: int
    failed: int
    speed: float
    fraction: float
    cancelled: int = 0  # not counted in ``total``: a cancelled file is no longer one to upload
    waiting: int = 0
    paused: int = 0
    interrupted: int = 0
    not_started: int = 0  # paused before anything was sent, as the rows say: "Not started", never "paused"
    # Failed on a lost connection, its next try counting down ("Trying again in 25 s"): the bar said "1 failed"
    # beside that row, which went on by itself a minute later (a network audit).
    trying_again: int = 0

    def text(self) -> str:
        if not self.total:  # "No uploads" beside a listed Cancelled row read as a contradiction (a GUI audit)
            return f"{self.cancelled} cancelled" if self.cancelled else "No uploads"
        parts = [f"{self.done} of {self.total} done"]
        # "2 of 3 done · 1 cancelled" left a paused third unexplained (an audit): each row is counted somewhere.
        for count, said in (
            (self.active, "uploading"),
            (self.waiting, "waiting"),
            (self.not_started, "not started"),
            (self.paused, "paused"),
            (self.interrupted, "interrupted"),
            (self.trying_again, "trying again soon"),
        ):
            if count:
                parts.append(f"{count} {said}")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.cancelled:  # "0 of 2 done" beside three rows left the third unexplained (an audit)
            parts.append(f"{self.cancelled} cancelled")
        if self.speed:
            parts.append(human_speed(self.speed))
        return " · ".join(parts)


def summarize(rows: list[Row]) -> QueueSummary:
    """One pass over the rows: it runs ten times a second over queues of thousands."""
    total = done = active = failed = cancelled = waiting = paused = interrupted = not_started = trying_again = 0
    size = confirmed = 0
    speed = 0.0
    for row in rows:
        status = row.status
        if status is Status.CANCELLED:
            cancelled += 1
            continue
        total += 1
        size += row.size
        if status is Status.COMPLETED:
            done += 1
            confirmed += row.size
            continue
        confirmed += row.confirmed
        if status is Status.FAILED and row.reconnect_at is not None:
            trying_again += 1
        elif status is Status.FAILED:
            failed += 1
        elif status.active:
            active += 1
            speed += row.speed
        elif status is Status.QUEUED:
            waiting += 1
        elif row.never_started:  # a busy-machine audit's 40 "Not started" rows were summed up as "42 paused"
            not_started += 1
        elif status is Status.PAUSED:
            paused += 1
        elif status is Status.INTERRUPTED:
            interrupted += 1
    fraction = confirmed / size if size else (1.0 if total else 0.0)
    counts = (cancelled, waiting, paused, interrupted, not_started, trying_again)
    return QueueSummary(total, done, active, failed, speed, fraction, *counts)
