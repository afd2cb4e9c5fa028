"""Owed aborts: server-side uploads we gave up on, each tied to the server or S3 target that holds it.

When an upload is cancelled, discarded, or fails for good, its multipart upload must be aborted, or
storage keeps (and bills) its parts for ever. The abort can't always be sent at once: the server is
unreachable, or this session is connected somewhere else. Then the record stays in the store as an
*owed abort*, naming the target that holds the upload (``UploadRecord.server``).

Two rules keep the ledger honest:

- An abort is only ever sent to the target that holds the upload. Sent anywhere else, it would be
  answered "no such upload", which reads as "already gone", and the real one would be orphaned for
  good. A session connected elsewhere (another server, no server, ``direct-s3``) leaves it owed,
  unless its server lists the upload as its own: the same storage at a new address (same_storage.py).
- An owed abort is deleted only once its own target confirms the upload is gone: the abort was
  accepted, or that target says it has no such upload.

Every session that connects sweeps the ledger (the CLI and the window alike), and ``list`` shows
what is still owed and where.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.methods.base import JobContext, UploadMethod
from desktop_uploader.engine.state import OWED_ABORT, StateStore, UploadRecord

log = logging.getLogger(__name__)


def where(server: str) -> str:
    """A person's words for the target a record names: the sandbox, an S3 bucket, or a server's address."""
    if server.startswith("sandbox:"):
        return "the local sandbox on this computer"
    if server.startswith("s3:"):
        endpoint, _, bucket = server[3:].rpartition("/")
        return f"the S3 bucket {bucket} ({'AWS' if endpoint == 'aws' else endpoint})"
    return server or "an unknown server"


def not_removed(record: UploadRecord, target: str) -> str:
    """The sentence for an upload given up whose abort is owed: what stays on which target."""
    held = "Its partial upload" if record.upload_id else "A partial upload its unanswered start may have left"
    return f"{held} on {where(target)} could not be removed now"


@dataclass(frozen=True)
class Sweep:
    """What one sweep of the ledger did."""

    settled: int  # aborted (or found gone) on their own target, and forgotten
    still_owed: int  # their target is connected but did not answer: tried again next time
    elsewhere: int  # owed to a server or S3 target this session is not connected to


@dataclass(frozen=True)
class Settled:
    """The outcome of giving up one upload."""

    aborted: bool  # the target confirmed it gone
    target: str  # where it lives, for a sentence when it is owed


class AbortLedger:
    """Gives up server-side uploads, now where their target is connected, or later where it is not.

    ``context_for`` returns the context to abort a record with, or None when this session is not
    connected to the record's target; ``methods`` returns the upload methods available right now;
    ``adopt`` moves to the connected server those records whose upload it lists as its own (the same
    storage at a new address, same_storage.py) and returns them.
    """

    def __init__(
        self,
        state: StateStore,
        methods: Callable[[], Mapping[str, UploadMethod]],
        context_for: Callable[[UploadRecord], JobContext | None],
        adopt: Callable[[list[UploadRecord]], list[UploadRecord]] = lambda _: [],
    ) -> None:
        self.state = state
        self._methods = methods
        self._context_for = context_for
        self._adopt = adopt

    def adopt(self, records: list[UploadRecord]) -> list[UploadRecord]:
        """Those of ``records`` the connected server holds, now recorded as its (see ``adopt`` above)."""
        return self._adopt(records)

    def owed(self) -> list[UploadRecord]:
        """The aborts still owed, wherever they are owed."""
        return [r for r in self.state.unfinished() if r.status == OWED_ABORT]

    def settle(self, record: UploadRecord, ctx: JobContext | None = None) -> Settled:
        """Abort ``record``'s server-side upload and forget the record, or leave the abort owed.

        ``ctx`` is the running job's context, which talks to the target the job ran against; without
        one, the record's own target must be the connected one.
        """
        ctx = ctx or self._context_for(record)
        if ctx is None:
            for moved in self._adopt([record]):
                record, ctx = moved, self._context_for(moved)
        method = self._methods().get(record.method)
        if ctx is None or method is None:
            log.info("Abort of %s owed to %s, which this session is not connected to", record.s3_key, record.server)
            self._owe(record)
            return Settled(False, record.server)
        try:
            method.abort(ctx, record)
        except UploaderError as exc:
            log.warning("Could not abort %s now (%s); will try again later", record.s3_key, exc.message)
            self._owe(record)
            return Settled(False, record.server)
        log.info("Aborted %s (%s)", record.s3_key, record.method)
        with contextlib.suppress(UploaderError):
            self.state.delete(record.id)
        return Settled(True, record.server)

    def _owe(self, record: UploadRecord) -> None:
        """Turn ``record`` into an owed abort under a fresh id (the job's id may start a new upload)."""
        if record.status == OWED_ABORT:
            return
        try:
            self.state.create(record.with_changes(id=uuid.uuid4().hex, status=OWED_ABORT))
        except UploaderError:
            # No room for a new row: mark the old one instead, so the debt is never dropped.
            with contextlib.suppress(UploaderError):
                self.state.update(record.id, status=OWED_ABORT)
            return
        with contextlib.suppress(UploaderError):
            self.state.delete(record.id)

    def sweep(self) -> Sweep:
        """Send the aborts owed to the targets this session is connected to.

        A target that fails one abort is not asked for the others this time: each failure costs its
        retries (seconds), the session's upload waits for the sweep, and a server in trouble keeps
        answering the same. Before, every failed start on a broken server added that wait to every
        later session's start.
        """
        settled = still_owed = elsewhere = 0
        failing: set[str] = set()
        owed = self.owed()
        moved = {r.id: r for r in self._adopt([r for r in owed if self._context_for(r) is None])}
        for record in (moved.get(r.id, r) for r in owed):
            ctx = self._context_for(record)
            method = self._methods().get(record.method)
            if ctx is None or method is None:
                elsewhere += 1
                continue
            if record.server in failing:
                still_owed += 1
                continue
            try:
                method.abort(ctx, record)
            except UploaderError as exc:
                log.info("Owed abort of %s still failing: %s", record.s3_key, exc.message)
                failing.add(record.server)
                still_owed += 1
                continue
            log.info("Aborted %s (owed by an earlier session)", record.s3_key)
            with contextlib.suppress(UploaderError):
                self.state.delete(record.id)
            settled += 1
        if settled or still_owed or elsewhere:
            log.info("Owed aborts: %d done, %d still failing, %d owed elsewhere", settled, still_owed, elsewhere)
        return Sweep(settled, still_owed, elsewhere)
