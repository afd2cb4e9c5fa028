"""Sending a file's parts in parallel, each retried on its own, shared by presigned and direct-S3 uploads.

The coordinator (the upload's own thread) keeps up to N parts in flight on the worker pool and
waits; workers stream their part from disk, retry with backoff, and record every confirmed part in
the resume store before reporting it. N is asked for before each part starts, so Auto mode can
change it while the upload runs. In Auto mode the coordinator also feeds the policy, asks it whether
the bytes the parts in flight still owe leave room for one more, and sheds the youngest parts when
it takes back a probe (autotune.py): a shed part stops and goes back to the front of the queue.

When one part fails for good, no new parts start and the other workers stop retrying, but parts
already on the wire may still land: that is work a resume won't have to repeat.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import threading
import time
from collections import deque
from concurrent.futures import Future
from functools import partial
from typing import Protocol

from desktop_uploader.engine.control import Control
from desktop_uploader.engine.errors import (
    ForbiddenError,
    IntegrityError,
    Interrupted,
    ServerBusyError,
    TransientError,
    UploaderError,
    UrlExpiredError,
)
from desktop_uploader.engine.events import Retrying
from desktop_uploader.engine.fileid import changed_midway, quick_unchanged
from desktop_uploader.engine.methods.base import JobContext
from desktop_uploader.engine.partbody import SHED, PartBody, block_for
from desktop_uploader.engine.planner import PartPlan, PartSpan
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.retry import RetryQuota, RetryRun
from desktop_uploader.engine.state import SavedPart

log = logging.getLogger(__name__)

_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
MAX_URL_REFRESHES = 5
FILE_CHECK_SECONDS = 2.0
LIMIT_SECONDS = 6.0  # of a bandwidth limit you set, what the parts in flight may owe (Auto's horizon on a cap)


def plain_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


class PartSender(Protocol):
    hashes_body: bool  # does the sender need the body to hash what it reads (for an ETag check)?

    def send(self, span: PartSpan, body: PartBody) -> str:
        """Send one part and return storage's ETag, or raise an engine error."""

    def forget(self, number: int) -> None:
        """Drop what was prepared for ``number`` (a URL that expired, an MD5 that didn't match)."""

    def part_checksum(self, number: int) -> str:
        """The checksum a stored part was sent with ("" when the upload has none), kept for completing."""


class PartQueue:
    """Part numbers not yet started, in order; the signer peeks ahead to sign in batches."""

    def __init__(self, numbers: list[int]) -> None:
        self._pending = deque(numbers)
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            return self._pending.popleft() if self._pending else None

    def give_back(self, number: int) -> None:
        """A part that was started and stopped (shed): it is the next to start again."""
        with self._lock:
            self._pending.appendleft(number)

    def upcoming(self, count: int) -> list[int]:
        with self._lock:
            return list(itertools.islice(self._pending, count))

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


class EtagCheck:
    """Compares each part's ETag with its MD5, for stores that prove their ETags are MD5s.

    S3 and SeaweedFS answer a part's MD5 as its ETag; MinIO and encrypted buckets don't. Until a
    match is seen, a mismatch is retried once and then taken as "this store's ETags aren't MD5s".
    After a match, every mismatch is corruption in transit and the part is sent again.
    """

    def __init__(self) -> None:
        self.trusted: bool | None = None
        self._suspects: set[int] = set()
        self._lock = threading.Lock()

    def verify(self, number: int, md5_hex: str | None, etag: str) -> None:
        tag = plain_etag(etag)
        with self._lock:
            if md5_hex is None or self.trusted is False:
                return
            if not _PLAIN_MD5.match(tag):
                self.trusted = False
                log.info("Storage ETags are not MD5s (%s...); relying on transport checks", tag[:8])
                return
            if tag == md5_hex:
                self.trusted = True
                self._suspects.discard(number)
                return
            if self.trusted is None and number in self._suspects:
                self.trusted = False
                log.info("Storage ETags don't match part MD5s twice in a row; they are not MD5s here")
                return
            self._suspects.add(number)
        raise IntegrityError(f"Part {number} arrived damaged (its checksum doesn't match); sending it again.")


def multipart_etag(parts: list[SavedPart]) -> str | None:
    """The ETag S3 gives a multipart object, computable when every part's ETag is its MD5."""
    tags = [plain_etag(p.etag) for p in sorted(parts, key=lambda p: p.number)]
    if not tags or not all(_PLAIN_MD5.match(t) for t in tags):
        return None
    return f"{hashlib.md5(b''.join(bytes.fromhex(t) for t in tags)).hexdigest()}-{len(tags)}"


class PartScheduler:
    def __init__(
        self,
        ctx: JobContext,
        plan: PartPlan,
        sender: PartSender,
        queue: PartQueue,
        tracker: ProgressTracker,
        method: str,
        done: dict[int, SavedPart],
        quota: RetryQuota | None = None,
    ) -> None:
        self.ctx = ctx
        self.plan = plan
        self.sender = sender
        self.queue = queue
        self.tracker = tracker
        self.method = method
        self.results = dict(done)
        self.policy = ctx.policy()
        self.quota = quota or ctx.quota()  # direct-s3 shares one with its control-plane calls
        self.halt = Control()  # stops retries once the upload as a whole has failed
        self._failure: BaseException | None = None
        self._in_flight: set[int] = set()
        self._bodies: dict[int, PartBody] = {}  # the body each part in flight is sending, for shedding
        self._order: list[int] = []  # parts in flight, oldest first
        self._cond = threading.Condition()

    def target(self) -> int:
        return max(1, self.ctx.concurrency() if self.ctx.concurrency else self.ctx.settings.concurrency)

    def run(self) -> dict[int, SavedPart]:
        control = self.ctx.control
        last_check = time.monotonic()
        while True:
            self._pace()
            number = self._take()
            if number is not None:
                self._submit(number)
                continue
            with self._cond:
                if not self._in_flight and (self._failure or control.stopping or not len(self.queue)):
                    break
                if not self._may_start():
                    self._cond.wait(0.25)
            self.tracker.tick()
            if time.monotonic() - last_check > FILE_CHECK_SECONDS:
                last_check = time.monotonic()
                if not quick_unchanged(self.ctx.path, self.ctx.identity):
                    self._fail(changed_midway(self.ctx.path, self.ctx.name))
        # Coalescing may have held back the event for the last parts stored: a pause or a failure must show
        # them too (a Ctrl-C's summary said 5 MiB stored where the resume record held 10).
        self.tracker.flush()
        if self._failure is not None:
            raise self._failure
        control.check()
        return self.results

    def _may_start(self) -> bool:
        return (
            self._failure is None
            and not self.ctx.control.stopping
            and len(self._in_flight) < self.target()
            and len(self.queue) > 0
            and self._room()
        )

    def _room(self) -> bool:
        """Auto's byte budget, and a bandwidth limit's: do the parts in flight leave room for the next one?

        A limit you set is known from the first byte: parts may owe ``LIMIT_SECONDS`` of this file's share. Six
        parts of 5 MiB shared 1 MiB/s, and for 30 s nothing was stored for a pause to keep (a network audit)."""
        if not self._in_flight:
            return True
        upcoming = self.queue.upcoming(1)
        if not upcoming:
            return False
        owed = sum(self.plan.span(n).size - self.tracker.part_sent(n) for n in self._in_flight)
        part, settings = self.plan.span(upcoming[0]).size, self.ctx.settings
        if settings.bandwidth_limit and owed + part > LIMIT_SECONDS * settings.bandwidth_limit / settings.files_at_once:
            return False
        pacing = self.ctx.pacing
        return pacing is None or pacing.admits(len(self._in_flight), owed, part)

    def _pace(self) -> None:
        """Feed Auto what the link carried, and shed the youngest parts when it takes back a probe."""
        pacing = self.ctx.pacing
        if pacing is None:
            return
        with self._cond:
            running = len(self._in_flight)
        t = self.tracker
        pacing.observe(t.run_sent(), running, stored=t.parts_stored, stored_bytes=t.stored_bytes, mature=t.mature())
        keep = pacing.shed()
        if keep is None:
            return
        with self._cond:
            extra = self._order[max(1, keep) :]
            for number in extra:
                body = self._bodies.get(number)
                if body is not None:
                    body.shed = True
        if extra:
            log.info("%s: shedding %d parts a probe started (keeping %d)", self.ctx.name, len(extra), keep)

    def _take(self) -> int | None:
        """The next part to start, now counted in flight, if one may start now."""
        with self._cond:
            number = self.queue.take() if self._may_start() else None
            if number is not None:
                self._in_flight.add(number)
                self._order.append(number)
            return number

    def _submit(self, number: int) -> None:
        """Hand a part to the pool, and learn if the pool drops it instead of running it.

        Outside the lock: an executor cancels its futures (and so calls back here) under a lock of
        its own, which ``submit`` takes too.
        """
        try:
            future = self.ctx.part_executor.submit(self._task, number)
        except RuntimeError:  # the pool is shutting down
            self._dropped(number)
            return
        future.add_done_callback(partial(self._settled, number))

    def _settled(self, number: int, future: Future[None]) -> None:
        # ``_task`` catches everything, so a future that is cancelled or holds an error never ran it.
        if future.cancelled() or future.exception() is not None:
            self._dropped(number)

    def _dropped(self, number: int) -> None:
        """A part the pool will never run (it was shut down): waiting for it would hang the upload for ever.

        The upload stops as if paused (or cancelled, if that was asked): what is stored stays, and
        resuming sends the rest.
        """
        log.info("%s: part %d was dropped by the worker pool; stopping the upload", self.ctx.name, number)
        with self._cond:
            self._forget(number)
            self._cond.notify_all()
        self._fail(Interrupted("dropped"))

    def _forget(self, number: int) -> None:
        """A part is no longer in flight. (Called under the lock.)"""
        self._in_flight.discard(number)
        self._bodies.pop(number, None)
        self._order = [n for n in self._order if n != number]

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            if self._failure is None:
                self._failure = error
            self._cond.notify_all()
        self.halt.request("failed")

    def _task(self, number: int) -> None:
        try:
            saved = self._send(self.plan.span(number))
            with self._cond:
                self.results[number] = saved
        except Interrupted as stop:
            if stop.reason == SHED:
                self.tracker.restarted(number)
                self.queue.give_back(number)
            elif not self.ctx.control.stopping and stop.reason != "failed":
                self._fail(stop)
        except BaseException as exc:  # any failure ends the upload; the coordinator reports it
            self._fail(exc)
        finally:
            with self._cond:
                self._forget(number)
                self._cond.notify_all()

    def _retry_run(self, number: int) -> RetryRun:
        """One part's retries, on the upload's quota; each is logged and becomes a Retrying event with its delay."""
        ctx = self.ctx

        def say(attempt: int, exc: UploaderError, delay: float) -> None:
            log.warning(
                "%s: part %d failed (attempt %d/%d), retrying in %.1f s: %s",
                ctx.name,
                number,
                attempt,
                self.policy.attempts,
                delay,
                exc.message,
            )
            busy = isinstance(exc, ServerBusyError) and exc.status in (429, 503)
            ctx.emit(Retrying(ctx.job_id, self.method, number, attempt, self.policy.attempts, delay, exc.message, busy))

        return RetryRun(self.policy, self.quota, announce=say, sleep=self._wait)

    def _wait(self, seconds: float) -> None:
        """Wait before a part's retry, in slices, so a pause or another part failing for good cuts it short.

        Once the upload has failed (``halt``), the wait ends with ``Interrupted("failed")``: the part
        gives up quietly, as the upload's failure is already reported.
        """
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            self.ctx.control.sleep(min(left, 0.25))
            self.halt.check()

    def _send(self, span: PartSpan) -> SavedPart:
        ctx, tracker = self.ctx, self.tracker
        run = self._retry_run(span.number)
        refreshes = 0
        while True:
            ctx.control.check()
            run.next_attempt()
            body = PartBody(
                ctx.path,
                span.offset,
                span.size,
                control=ctx.control,
                on_sent=lambda amount: tracker.sent(span.number, amount),
                on_rewind=lambda: tracker.restarted(span.number),
                limiter=ctx.limiter,
                hash_md5=self.sender.hashes_body,
                max_block=block_for(self.target()),  # memory stays flat however many parts run
            )
            with self._cond:
                self._bodies[span.number] = body
            try:
                etag = self.sender.send(span, body)
            except UrlExpiredError:
                tracker.restarted(span.number)
                self.sender.forget(span.number)
                run.free_attempt()  # an expired link is not the part's fault
                refreshes += 1
                if refreshes > MAX_URL_REFRESHES:
                    raise ForbiddenError(
                        "Upload links keep expiring as soon as they are issued. Check that this computer's clock "
                        "is right."
                    ) from None
                log.info("%s: part %d: upload link expired, re-signing", ctx.name, span.number)
                continue
            except TransientError as exc:
                tracker.restarted(span.number)
                if isinstance(exc, IntegrityError):
                    self.sender.forget(span.number)
                if self.halt.stopping:  # the upload failed already: no point trying again
                    raise
                run.backoff(exc)
                continue
            finally:
                body.close()
            saved = SavedPart(span.number, etag, span.size, self.sender.part_checksum(span.number))
            ctx.save(partial(ctx.state.record_part, ctx.job_id, saved.number, saved.etag, saved.size, saved.checksum))
            tracker.confirmed_part(span.number, span.size)
            log.info(
                "%s: part %d/%d stored (%d bytes, attempt %d)",
                ctx.name,
                span.number,
                self.plan.part_count,
                span.size,
                run.attempt,
            )
            run.succeeded()
            return saved
