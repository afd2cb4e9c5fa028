"""Every way an upload can fail, as exceptions that know whether trying again can help.

Foreign errors (``requests``, ``botocore``, ``sqlite3``, ``OSError``) are translated into these at the
boundary with ``raise ... from exc``, so the retry policy, the fallback chain and the GUI only ever
look at this tree, and the original stays attached for the log::

    UploaderError                      .message is a sentence a non-technical person can act on
    ├── TransientError                 trying again may work
    │   ├── NetworkError               refused, reset, DNS, TLS
    │   │   └── StalledError           no bytes moved within the read timeout
    │   ├── ServerBusyError            5xx, 408, 429 (may carry Retry-After)
    │   ├── IntegrityError             storage saw other bytes than we sent (BadDigest, ETag != MD5)
    │   ├── ProtocolError              the server answered something we can't read
    │   └── UrlExpiredError            a presigned URL ran out: re-sign, not a retry attempt
    ├── PermanentError                 trying the same thing again will fail the same way
    │   ├── AuthError                  401: token wrong or missing
    │   │   └── MovedError             3xx: the server address redirects; use the one it names
    │   ├── TakenElsewhereError        its record went while it waited: finished or discarded elsewhere
    │   ├── ForbiddenError             403 that is not an expired URL
    │   ├── NotFoundError              the upload is gone on the server
    │   │   └── NotOfferedError        the server has no such route (404/405 page, Next.js's 409)
    │   ├── RejectedError              any other 4xx, with the server's own reason
    │   ├── UnsupportedError           this server doesn't offer that method or action
    │   │   ├── PinnedChecksumError    its links demand a checksum no part can match
    │   │   └── LinksExpiredError      its links expired and it can't renew them
    │   ├── FileTooLargeError
    │   ├── LocalFileError             the file on this computer is the problem
    │   │   ├── FileUnreadableError
    │   │   └── FileChangedError
    │   ├── DiskFullError              no room to write our own state or logs
    │   └── StateError                 the resume record can't be used
    │       └── RecordMissingError     progress for a record that was never written
    └── SettingsError                  a setting is out of range (also a ValueError)

``Interrupted`` is not an error: it unwinds a part when the user pauses or cancels.
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop_uploader.engine.limits import human_bytes


@dataclass(frozen=True)
class Origin:
    """Where an error came from, as fields for code and the log (people get ``message``)."""

    side: str  # "storage" or "api"
    host: str
    action: str = ""  # the API action, or the S3 operation
    status: int | None = None
    code: str = ""  # S3's error code, when storage gave one


# Every sentence about a fault the server's keeper must fix (its storage, its SDK, its links) says so in these
# words, so that Settings' line beside "Save anyway" can point there rather than at the address and token.
TELL_ITS_KEEPER = "tell whoever runs"


def for_the_servers_keeper(sentence: str) -> bool:
    """Whether a sentence says its fault is on the server, for whoever runs it to fix."""
    return TELL_ITS_KEEPER in sentence


# A server that answered 408, 429 or 5xx without saying why may only be busy: nothing typed in Settings is
# wrong, so its line beside "Save anyway" says to test again rather than to fix the address and token.
BUSY_OR_IN_TROUBLE = "busy or having trouble"


def maybe_only_busy(sentence: str) -> bool:
    """Whether a sentence says the server was busy or in trouble, without a reason that points anywhere."""
    return BUSY_OR_IN_TROUBLE in sentence


class UploaderError(Exception):
    """Base of the tree. ``message`` is for people; ``str()`` adds nothing beyond it."""

    transient = False
    origin: Origin | None = None
    # Set on a create call the server refused with its only answer (4xx, never retried): it made nothing to
    # clear up, so no search for leftovers runs (on a server without 'list' that search only warns).
    created_nothing = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def at(self, origin: Origin) -> UploaderError:
        """This error, marked with where it came from (for ``raise ...at(...)`` chains)."""
        self.origin = origin
        return self

    @property
    def from_storage(self) -> bool:
        return self.origin is not None and self.origin.side == "storage"


def refused(error: UploaderError) -> bool:
    """Whether ``error`` is a server's own answer turning the request down (HTTP 4xx), not a call lost on the way."""
    origin = error.origin
    return origin is not None and origin.status is not None and 400 <= origin.status < 500


class TransientError(UploaderError):
    transient = True


class NetworkError(TransientError):
    pass


class StalledError(NetworkError):
    pass


class ServerBusyError(TransientError):
    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class IntegrityError(TransientError):
    pass


class ProtocolError(TransientError):
    pass


class UrlExpiredError(TransientError):
    pass


class PermanentError(UploaderError):
    pass


class AuthError(PermanentError):
    pass


class MovedError(AuthError):
    """The upload server's address answers with a redirect, which is not followed: the token would not
    go with it to another host (so it read as a wrong token), and a POST would lose its body. Like a
    wrong token, it is the address in the settings to fix, then Retry."""


class TakenElsewhereError(PermanentError):
    """The upload's record went while it waited here: another window or command finished or discarded it.

    A resume audit's window, its row interrupted, was pressed Resume after ``desktop-uploader resume``
    had finished the upload: it sent the whole file again and stored it twice. Another Retry would do
    the same, so none is offered; adding the file again asks whether it is already uploaded."""

    def __init__(self) -> None:
        super().__init__(
            "Another Desktop Uploader window or command finished or discarded this upload meanwhile, so "
            "nothing was sent. To send the file again, add it again."
        )


class ForbiddenError(PermanentError):
    pass


class NotFoundError(PermanentError):
    pass


class NotOfferedError(NotFoundError):
    """The server has no route for this: an HTML 404 page, a 405, or Next.js's 409 for a missing action.

    A fallback method answered this way was never going to work here; it must not replace the error
    that made us fall back.
    """


class RejectedError(PermanentError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnsupportedError(PermanentError):
    pass


class PinnedChecksumError(UnsupportedError):
    """The server signs a checksum into its part links that our parts can't carry (AWS SDK v3's defaults).

    Storage would answer ``400 BadDigest`` to every part: not damage in transit, so never retried.
    """


class LinksExpiredError(UnsupportedError):
    """The upload's part links expired and the server has no ``sign`` to renew them.

    The upload can only be started again (lifecycle.py does so once); ``lifetime`` is how long the
    links lived, in seconds (0 when not known, as for links lost with a paused upload).
    """

    def __init__(self, message: str, *, lifetime: float = 0.0) -> None:
        super().__init__(message)
        self.lifetime = lifetime


class FileTooLargeError(PermanentError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"This file is {human_bytes(size)}, larger than the {human_bytes(limit)} this storage accepts."
        )
        self.size = size
        self.limit = limit


class LocalFileError(PermanentError):
    pass


class FileUnreadableError(LocalFileError):
    pass


class FileChangedError(LocalFileError):
    pass


DISK_FULL = "Your disk is full, so upload progress can't be saved for resuming. Free some space."


class DiskFullError(PermanentError):
    def __init__(self, message: str = DISK_FULL) -> None:
        super().__init__(message)


class StorageFullError(PermanentError):
    """Storage has no room left (MinIO's ``507 XMinioStorageFull``, a quota, a disk full behind the store).

    Trying the part again only sends it again to be refused, and another method writes to the same
    store; but what is stored stays, so freeing space there and pressing Retry finishes the upload.
    """


# The answers that mean "no room": MinIO's own code and status, Ceph's and others' quota code.
STORAGE_FULL_CODES = frozenset({"XMinioStorageFull", "QuotaExceeded", "InsufficientStorage"})
STORAGE_FULL_WORDS = ("no space left", "storage full", "disk full", "insufficient storage")


def storage_full(status: int, code: str, message: str, host: str) -> StorageFullError | None:
    """A StorageFullError for an S3 error answer that says storage is full, else None.

    SeaweedFS says nothing of the kind: with no writable volume left it answers ``500 InternalError``
    ("please try again"), which stays a busy store (retried) because nothing in it tells the two apart.
    """
    said = message.lower()
    if status != 507 and code not in STORAGE_FULL_CODES and not any(word in said for word in STORAGE_FULL_WORDS):
        return None
    return StorageFullError(
        f"Storage at {host} is full ({code or f'HTTP {status}'}): it has no room for the rest of this file. "
        "What is already stored is kept: free some space there, then retry."
    )


class StateError(PermanentError):
    pass


class RecordMissingError(StateError):
    """Progress of an upload whose record was never written (the disk was full then): nothing to add to."""


class SettingsError(UploaderError, ValueError):
    pass


class Interrupted(Exception):  # noqa: N818 - control flow, deliberately not named *Error
    """Raised inside a part's body read when the upload is paused or cancelled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
