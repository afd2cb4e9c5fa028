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

from desktop_uploader.engine import errors
from desktop_uploader.engine.errors import (
    AuthError,
    DiskFullError,
    FileTooLargeError,
    FileUnreadableError,
    ForbiddenError,
    NetworkError,
    NotFoundError,
    NotOfferedError,
    RejectedError,
    ServerBusyError,
    StateError,
    StorageFullError,
    TakenElsewhereError,
    TransientError,
    UnsupportedError,
    UploaderError,
)

log = logging.getLogger(__name__)


def may_fall_back(error: UploaderError, confirmed: int) -> bool:
    """Whether the next method of the chain may try after ``error``, with ``confirmed`` bytes stored."""
    if isinstance(error, NotFoundError) and error.from_storage:
        return False  # no such bucket, or the upload is gone: no other method fixes that
    if isinstance(error, NetworkError) and error.origin is not None and error.origin.side == "api":
        # The server itself can't be reached, and every other method goes through it too: a CLI audit's
        # stopped server got "presigned-s3 failed (… refused the connection); trying chunked-s3".
        return False
    if isinstance(error, UnsupportedError | ForbiddenError | NotFoundError):
        return True
    # Transient trouble with nothing stored yet: this method doesn't work from here. With parts
    # already stored it is more likely the network, and the upload stays resumable instead.
    return isinstance(error, TransientError) and confirmed == 0


def keeps_state(error: UploaderError) -> bool:
    """Whether a failure keeps the upload (and its record) for Retry, rather than aborting it."""
    return isinstance(
        error, TransientError | AuthError | FileUnreadableError | StateError | DiskFullError | StorageFullError
    )


# The API calls that name the file, and the answers that mean "not this file" (its type, name or size),
# as the reference server and the Next.js route give them.
FILE_NAMING_ACTIONS = frozenset({"start", "chunked start", "upload"})
REFUSED_FILE_STATUSES = frozenset({400, 413, 415, 422})


def retry_can_help(error: UploaderError) -> bool:
    """Whether pressing Retry could end differently, so that the window offers it.

    An audit's first-time user dropped a .txt file: the server refused its type and the row offered
    Retry, which can only be refused again. A file too large for the storage, or one the server turned
    down at the start, needs another file (or another server), not another try. Anything else (the
    network, a token, a bucket name in Settings) may be fixed meanwhile, so Retry stays.
    """
    if isinstance(error, FileTooLargeError | TakenElsewhereError):
        return False
    origin = error.origin
    return not (
        isinstance(error, RejectedError)
        and origin is not None
        and origin.side == "api"
        and origin.action in FILE_NAMING_ACTIONS
        and origin.status in REFUSED_FILE_STATUSES
    )


def lost_connection(kind: str) -> bool:
    """Whether a failure of this kind (its error's class name, as events carry it) is a connection lost or a
    server busy: what the window tries again by itself once the link may be back, where a refused token or
    file would only be refused again."""
    error = getattr(errors, kind, None)
    return isinstance(error, type) and issubclass(error, NetworkError | ServerBusyError)


def root_cause(cause: UploaderError | None, last: UploaderError) -> UploaderError:
    """The error to tell: a fallback that isn't offered here never hides the failure that led to it."""
    if cause is not None and isinstance(last, UnsupportedError | NotOfferedError):
        log.info("Reporting the first failure (%s), not the fallback's: %s", cause.message, last.message)
        return cause
    return last
