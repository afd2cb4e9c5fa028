"""How an upload ends, and what is left: rules decided from the error alone, kept apart so they read as a table.

========================  ===============================  ==================================
Ending                    Server-side upload               Resume state
========================  ===============================  ==================================
completed                 completed                        deleted
cancelled / discarded     aborted (or owed, see ledger)    deleted
paused / quit             kept                             kept
failed, transient         kept                             kept: Retry resumes
failed, permanent         aborted (or owed, see ledger)    deleted: Retry starts afresh
========================  ===============================  ==================================

Between methods of the fallback chain, one more rule: the failure a person reads is the one that
made us leave the first method, never a fallback that this server simply doesn't have.
"""

from __future__ import annotations

import logging

from desktop_uploader.engine.errors import (
    AuthError,
    DiskFullError,
    FileUnreadableError,
    ForbiddenError,
    NotFoundError,
    NotOfferedError,
    StateError,
    TransientError,
    UnsupportedError,
    UploaderError,
)

log = logging.getLogger(__name__)


def may_fall_back(error: UploaderError, confirmed: int) -> bool:
    """Whether the next method of the chain may try after ``error``, with ``confirmed`` bytes stored."""
    if isinstance(error, NotFoundError) and error.from_storage:
        return False  # no such bucket, or the upload is gone: no other method fixes that
    if isinstance(error, UnsupportedError | ForbiddenError | NotFoundError):
        return True
    # Transient trouble with nothing stored yet: this method doesn't work from here. With parts
    # already stored it is more likely the network, and the upload stays resumable instead.
    return isinstance(error, TransientError) and confirmed == 0


def keeps_state(error: UploaderError) -> bool:
    """Whether a failure keeps the upload (and its record) for Retry, rather than aborting it."""
    return isinstance(error, TransientError | AuthError | FileUnreadableError | StateError | DiskFullError)


def root_cause(cause: UploaderError | None, last: UploaderError) -> UploaderError:
    """The error to tell: a fallback that isn't offered here never hides the failure that led to it."""
    if cause is not None and isinstance(last, UnsupportedError | NotOfferedError):
        log.info("Reporting the first failure (%s), not the fallback's: %s", cause.message, last.message)
        return cause
    return last
