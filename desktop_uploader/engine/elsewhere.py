"""An upload's resume record made on another target than this session's: what Retry does with it.

A GUI audit's user sent a file direct to their own S3 with a wrong secret, switched the method back
to Automatic and pressed Retry: "This upload was started on another server (s3:http://…/uploads).
Connect to that server to resume it, or cancel it." Nothing had been stored, so there was nothing to
go back for. Now an upload with nothing stored over there starts afresh here (its upload there is
aborted, or owed to that target), and one with parts stored there says how much, where, in words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from desktop_uploader.engine.errors import StateError, TakenElsewhereError
from desktop_uploader.engine.jobs import stored_bytes
from desktop_uploader.engine.ledger import AbortLedger, where
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.methods.base import DIRECT
from desktop_uploader.engine.state import StateStore, UploadRecord

log = logging.getLogger(__name__)


class StartedElsewhereError(StateError):
    """Kept for Retry (a StateError keeps its record): the upload goes on once its target is back."""


def record_to_go_on_with(
    record: UploadRecord | None, here: set[str], state: StateStore, ledger: AbortLedger
) -> UploadRecord | None:
    """``record`` if the upload may go on from it in this session, None to start afresh here.

    Raises StartedElsewhereError when parts of it are stored on a target this session doesn't reach.
    """
    if record is None or record.server in here:
        return record
    for moved in ledger.adopt([record]):  # the same storage, at a new address: go on there
        return moved
    stored = stored_bytes(state, record)
    if stored:
        raise StartedElsewhereError(
            f"{human_bytes(stored)} of this file is stored on {where(record.server)}, where its upload started. "
            "Switch back to it to go on, or discard the upload to start again here."
        )
    log.info("Upload %s began on %s with nothing stored there; starting afresh here", record.id, record.server)
    ledger.settle(record)  # aborted there now if that target is reachable, else owed to it
    return None


def go_on_from(
    record: UploadRecord | None,
    chain: list[str],
    reached: tuple[str, str | None, bool],
    state: StateStore,
    ledger: AbortLedger,
    *,
    expected: bool = False,
) -> tuple[UploadRecord | None, list[str]]:
    """The record a run goes on from (None: afresh) and the methods it tries, given what this session
    reaches: ``(its server's id, your own S3's id or None, whether an upload API is connected)``.

    ``expected``: the job's last stop left a record; none now raises TakenElsewhereError."""
    if record is None and expected:
        raise TakenElsewhereError
    server_id, direct_id, has_api = reached
    record = record_to_go_on_with(record, {server_id, direct_id or ""}, state, ledger)
    return route_for(record, chain, state, ledger, lambda name: direct_id is not None if name == DIRECT else has_api)


def route_for(
    record: UploadRecord | None,
    chain: list[str],
    state: StateStore,
    ledger: AbortLedger,
    runs_here: Callable[[str], bool],
) -> tuple[UploadRecord | None, list[str]]:
    """The record to go on from and the methods to try, for a record made with one of ``chain``'s or another.

    One made by another method than the settings now choose (the person changed it since) goes on its
    own way when it holds stored parts: a GUI audit switched a paused upload's method to direct-s3, and
    its 119 MiB were left behind, an orphan, as the file started again. If that way can't run in this
    session, the upload is kept for later, never given up. One with nothing stored gives its upload up
    (aborted, or owed) and the chain starts afresh.
    """
    if record is None:
        return None, chain
    if record.method in chain:
        return record, chain[chain.index(record.method) :]
    stored = stored_bytes(state, record)
    if stored and runs_here(record.method):
        log.info("Upload %s goes on with %s, which stored %d bytes of it", record.id, record.method, stored)
        return record, [record.method]
    if stored:
        raise StartedElsewhereError(
            f"{human_bytes(stored)} of this file was sent by {record.method}, which can't run now. "
            "Switch back to it to go on, or discard the upload to start again."
        )
    log.info("Upload %s began with %s, nothing of it usable here; starting afresh", record.id, record.method)
    ledger.settle(record)
    return None, chain
