"""An upload's resume record made on another target than this session's: what Retry does with it.

A GUI audit's user sent a file direct to their own S3 with a wrong secret, switched the method back
to Automatic and pressed Retry: "This upload was started on another server (s3:http://…/uploads).
Connect to that server to resume it, or cancel it." Nothing had been stored, so there was nothing to
go back for. Now an upload with nothing stored over there starts afresh here (its upload there is
aborted, or owed to that target), and one with parts stored there says how much, where, in words.
"""

from __future__ import annotations

import logging

from desktop_uploader.engine.errors import StateError
from desktop_uploader.engine.jobs import stored_bytes
from desktop_uploader.engine.ledger import AbortLedger, where
from desktop_uploader.engine.limits import human_bytes
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
