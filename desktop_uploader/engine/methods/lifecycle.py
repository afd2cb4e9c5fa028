"""One multipart lifecycle, whichever backend creates the upload and carries its parts.

    intent → created → parts → completing → done | aborted

Both multipart methods walk these phases in the same order, through :func:`run_multipart`; what
differs is only who is asked (the upload API for ``presigned-s3``, the user's own S3 through boto3
for ``direct-s3``), behind the small :class:`MultipartBackend` protocol. Each phase is written to
the resume store before the step that could lose it, so a crash or a lost answer anywhere leaves
enough to finish or to clean up:

- **intent**: the job's record without an upload id, written before create (see
  :mod:`lost_starts`). Found on the next run, it means "a create may have happened whose answer
  never came": the backend's abort finds and aborts what it left, then a fresh create follows.
- **created**: the record with its upload id, saved the moment create answers. That record is
  the upload's registered abort (as s3transfer's ``add_failure_cleanup``): whatever ends the job
  without completing it, the abort ledger settles the record on the server that owns it.
- **parts**: each part is recorded once storage confirms it; a resume asks storage which parts
  it holds and sends only the rest.
- **completing**: every part confirmed. The last run may have completed the upload and lost the
  answer, so a resume asks storage for the object before anything is sent again, on both backends.
- **done**: the record is deleted once the result is reported; **aborted**: the ledger deleted it
  after the owning server confirmed the abort, or keeps it as an owed abort until it can.

The phase is never stored twice: it follows from the record and its confirmed parts
(:func:`phase_of`), which is what makes it survive a crash at any point.

One way back from **parts** to **created**: a server without ``sign`` whose part links expire
(:class:`LinksExpiredError`) can't let the upload finish, so it is aborted, its record deleted, a
notice says so, and a new upload is created, at most once per run: links that run out twice mean
the file takes longer to send than they live, and that is the failure then.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Protocol

from desktop_uploader.engine.errors import LinksExpiredError, NotFoundError, UploaderError
from desktop_uploader.engine.fileid import ensure_unchanged
from desktop_uploader.engine.methods.base import Completion, JobContext
from desktop_uploader.engine.methods.multipart import PartQueue, PartScheduler, PartSender
from desktop_uploader.engine.methods.recheck import ensure_parts_match
from desktop_uploader.engine.planner import PartPlan
from desktop_uploader.engine.progress import ProgressTracker
from desktop_uploader.engine.signed_urls import duration
from desktop_uploader.engine.state import SavedPart, UploadRecord

log = logging.getLogger(__name__)


class Phase(Enum):
    INTENT = "intent"
    CREATED = "created"
    PARTS = "parts"
    COMPLETING = "completing"


def phase_of(record: UploadRecord, confirmed: int) -> Phase:
    """Where an interrupted upload stands, from what the store holds (``confirmed``: its saved parts)."""
    if not record.upload_id:
        return Phase.INTENT
    if record.part_count and confirmed >= record.part_count:
        return Phase.COMPLETING
    return Phase.PARTS if confirmed else Phase.CREATED


@dataclass(frozen=True)
class Resumed:
    """An interrupted upload taken up again: its plan, its record and the parts storage holds."""

    plan: PartPlan
    record: UploadRecord
    done: dict[int, SavedPart]


class MultipartBackend(Protocol):
    """One run's side of a multipart upload: create, parts, list, complete, abort, on one storage.

    ``where`` says where uploads live in a sentence ("on the server", "in storage"). A backend whose
    complete answers with the object when the upload was completed already (the upload API's)
    sets ``completes_again``: a resume that finds the upload gone with every part confirmed
    completes it again instead of asking for the object.
    """

    method: str
    where: str
    completes_again: bool

    def abort(self, record: UploadRecord) -> None:
        """Remove what ``record`` holds on storage: the upload, or for an intent whatever its create left."""

    def adopt(self) -> UploadRecord | None:
        """An unfinished upload of this file that storage holds but no record of ours does, if any."""

    def create(self, lost: UploadRecord | None) -> tuple[PartPlan, UploadRecord]:
        """Write the intent, create the upload, save its record; ``lost`` is an earlier intent just cleared."""

    def confirmed_parts(
        self, record: UploadRecord, plan: PartPlan, saved: dict[int, SavedPart]
    ) -> dict[int, SavedPart] | Completion | None:
        """The parts storage holds that are ours; a Completion if storage says the object is stored;
        None to start afresh. Raises NotFoundError when the upload is gone."""

    def stored(self, record: UploadRecord, plan: PartPlan, saved: dict[int, SavedPart]) -> Completion | None:
        """The object this upload became, if storage holds it (its complete's answer may have been lost)."""

    def sender(self, record: UploadRecord, plan: PartPlan, queue: PartQueue) -> PartSender:
        """What sends this upload's parts."""

    def complete(self, record: UploadRecord, parts: dict[int, SavedPart], tracker: ProgressTracker) -> Completion:
        """Complete the upload and check what storage assembled."""


def run_multipart(ctx: JobContext, backend: MultipartBackend) -> Completion:
    """Take the job's upload through every phase still ahead of it, on ``backend``."""
    record = ctx.record if ctx.record is not None and ctx.record.method == backend.method else None
    lost = None
    if record is not None and phase_of(record, 0) is Phase.INTENT:  # its create never answered: clear up first
        backend.abort(record)
        lost, record = record, None
    if record is None and lost is None:  # a store lost since: storage may hold this file's upload
        record = backend.adopt()
    resumed = _resume(ctx, backend, record) if record is not None else None
    if isinstance(resumed, Completion):
        return resumed
    if resumed is None:
        plan, record = backend.create(lost)
        done: dict[int, SavedPart] = {}
    else:
        plan, record, done = resumed.plan, resumed.record, resumed.done
    restarted = False
    while True:
        try:
            parts, tracker = _send_parts(ctx, backend, plan, record, done, again=resumed is not None and not restarted)
            break
        except LinksExpiredError as expired:
            if restarted:  # once is a chance; twice means the file takes longer than the links live
                raise _expired_again(expired) from expired
            _start_over(ctx, backend, record, expired)
            restarted = True
            plan, record = backend.create(None)
            done = {}
    log.info("%s: all %d parts stored; completing", ctx.name, plan.part_count)
    ensure_parts_match(ctx, record, plan, parts)
    return backend.complete(record, parts, tracker)


def _send_parts(
    ctx: JobContext,
    backend: MultipartBackend,
    plan: PartPlan,
    record: UploadRecord,
    done: dict[int, SavedPart],
    *,
    again: bool,
) -> tuple[dict[int, SavedPart], ProgressTracker]:
    """Send every part not in ``done``; every part confirmed, and the tracker that counted them. ``again``: this
    run goes on with an upload, so every part's first moments are kept from the speed (progress.py)."""
    tracker = ProgressTracker(ctx.job_id, backend.method, ctx.size, ctx.emit, parts_total=plan.part_count, again=again)
    resumed_bytes = sum(p.size for p in done.values())
    ctx.announce(backend.method, plan, resumed_bytes)
    tracker.baseline(resumed_bytes, len(done))
    queue = PartQueue([n for n in range(1, plan.part_count + 1) if n not in done])
    sender = backend.sender(record, plan, queue)
    try:
        return PartScheduler(ctx, plan, sender, queue, tracker, backend.method, done).run(), tracker
    finally:  # a pause or a lost network measured the link too: a big file on a slow link may never finish
        ctx.learn_link(record.server, tracker)


def _start_over(ctx: JobContext, backend: MultipartBackend, record: UploadRecord, expired: LinksExpiredError) -> None:
    """Abort an upload whose links ran out, forget it, and say so: the parts it holds can't be finished.

    The abort comes first and must succeed: if it can't, ``expired`` ends the run as it would without a
    start-over, and the run's failure path owes the abort (engine/ledger.py), so nothing is orphaned and
    no record promises a resume that can't happen.
    """
    try:
        backend.abort(record)
    except UploaderError as exc:
        log.info("%s: could not abort %s to start over (%s)", ctx.name, record.s3_key, exc.message)
        raise expired from exc
    ctx.save(lambda: ctx.state.delete(ctx.job_id))
    ctx.notice(f"{expired.message.removesuffix('.')}: started again.", "warning")


def _expired_again(expired: LinksExpiredError) -> LinksExpiredError:
    """The failure of a start-over whose links ran out too: the file takes longer to send than they live."""
    lived = f" after {duration(expired.lifetime)}" if expired.lifetime else ""
    return LinksExpiredError(
        f"The server's upload links expire{lived} and it can't renew them, and they ran out again after starting "
        "over: sending this file from here takes longer than that. The server needs the 'sign' action or "
        "longer-lived links.",
        lifetime=expired.lifetime,
    )


def _resume(ctx: JobContext, backend: MultipartBackend, record: UploadRecord) -> Resumed | Completion | None:
    """An interrupted upload's plan and stored parts; a Completion if storage holds it; None to start afresh."""
    ensure_unchanged(ctx.path, record.identity)
    plan = PartPlan(ctx.size, record.part_size, record.part_count)
    saved = ctx.state.parts(ctx.job_id)
    completing = phase_of(record, len(saved)) is Phase.COMPLETING
    if completing and not backend.completes_again:  # the last run may have completed it and lost the answer
        found = backend.stored(record, plan, saved)
        if found is not None:
            return found
    try:
        done = backend.confirmed_parts(record, plan, saved)
    except NotFoundError:
        if completing and backend.completes_again:
            # Every part was confirmed, so the upload most likely vanished because it was completed and
            # the answer never arrived. Completing again answers with the object instead of storing a
            # second copy.
            log.info("%s: %s is gone with every part confirmed; completing it again", ctx.name, record.s3_key)
            return Resumed(plan, record, saved)
        found = None if completing else backend.stored(record, plan, saved)
        if found is not None:
            return found
        ctx.notice(f"The interrupted upload is no longer {backend.where}; starting it again from the beginning.")
        ctx.state.delete(ctx.job_id)
        return None
    if done is None or isinstance(done, Completion):
        return done
    log.info("%s: resuming %s with %d of %d parts stored", ctx.name, record.s3_key, len(done), plan.part_count)
    # Running again: a kill now must leave it "interrupted", not the "paused" of the run before (a big-file audit).
    ctx.save(partial(ctx.state.update, ctx.job_id, status="active", message=""))
    return Resumed(plan, record, done)
