"""Is this still the same file? Size, modification time, and hashes of its head and tail.

Hashing a 40 GB file to check it before resuming would take minutes, so the identity samples it:
size and mtime catch nearly every edit, and the first and last MiB catch an edit that preserved
both (a tool that restores mtime, a file replaced by a same-size copy). A change elsewhere that
kept all four (an audit overwrote 1 MiB in the middle and restored the mtime with ``touch -r``)
still moves the inode's change time, which no tool can set back: ``ctime_ns`` is kept beside the
identity, not in it (a file moved away and back, or chmod, moves it too, and must still resume),
and an upload whose file's change time moved has every part checked against the file before it is
completed (methods/recheck.py), so storage never assembles a mix of two versions.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from desktop_uploader.engine.errors import FileChangedError, FileUnreadableError

SAMPLE = 1024 * 1024


@dataclass(frozen=True)
class FileIdentity:
    size: int
    mtime_ns: int
    head_sha256: str
    tail_sha256: str
    ctime_ns: int = field(default=0, compare=False)  # 0: unknown (a record from an older store)


def _sample(handle: BinaryIO, offset: int, length: int) -> str:
    handle.seek(offset)
    return hashlib.sha256(handle.read(length)).hexdigest()


def gone(path: Path) -> FileUnreadableError:
    """A file deleted or moved since it was added. Its upload is kept (a FileUnreadableError keeps its
    record): put back, it goes on from the parts already stored. Until then those parts take room in
    storage, so the sentence names the way to give them up (a big-file audit's finding); "any", as there may be
    none yet ("what it has stored" was said of 0 B, a re-check audit's finding)."""
    return FileUnreadableError(
        f"{path.name} was deleted or moved. "
        "Put it back to go on, or discard the upload to delete any of it already stored."
    )


def unreadable(path: Path, exc: OSError) -> FileUnreadableError:
    if exc.errno == errno.ENOENT:
        error = gone(path)
        error.__cause__ = exc
        return error
    reason = {
        "EACCES": "you don't have permission to read it",
        "EPERM": "you don't have permission to read it",
        "EISDIR": "it is a folder",
        "EIO": "the disk reported a read error",
    }.get(errno.errorcode.get(exc.errno or 0, ""), exc.strerror or "it could not be read")
    error = FileUnreadableError(f"Can't read {path.name}: {reason}.")
    error.__cause__ = exc
    return error


def identify(path: Path) -> FileIdentity:
    try:
        stat = path.stat()
        if not path.is_file():
            raise IsADirectoryError(21, "Is a directory", str(path))
        with open(path, "rb") as handle:
            head = _sample(handle, 0, SAMPLE)
            tail = _sample(handle, max(0, stat.st_size - SAMPLE), SAMPLE)
    except OSError as exc:
        raise unreadable(path, exc) from exc
    return FileIdentity(stat.st_size, stat.st_mtime_ns, head, tail, stat.st_ctime_ns)


def quick_unchanged(path: Path, identity: FileIdentity) -> bool:
    """Size and mtime only: cheap enough to check after every few parts."""
    try:
        stat = os.stat(path)
    except OSError:
        return False
    return stat.st_size == identity.size and stat.st_mtime_ns == identity.mtime_ns


def touched_since(path: Path, *identities: FileIdentity) -> bool:
    """Whether the file's change time moved since any of ``identities`` was taken (those that know theirs)."""
    try:
        now = os.stat(path).st_ctime_ns
    except OSError:
        return True
    return any(identity.ctime_ns and identity.ctime_ns != now for identity in identities)


def shrank(name: str) -> FileChangedError:
    """A file cut shorter while it uploads (a CLI audit's truncated file was told only that, with no next step)."""
    return FileChangedError(
        f"{name} became shorter while it was uploading. Start the upload again to send the new version."
    )


def changed_midway(path: Path, name: str) -> FileChangedError | FileUnreadableError:
    """The error for a file found different while it uploads: one deleted or moved is said so, and kept for
    when it is back (a GUI audit's deleted file was told to "start the upload again to send the new version")."""
    if not path.exists():
        return gone(path)
    return FileChangedError(
        f"{name} was changed while it was uploading. Start the upload again to send the new version."
    )


def ensure_unchanged(path: Path, identity: FileIdentity) -> None:
    """Raise a clear error unless ``path`` still has ``identity``."""
    current = identify(path)
    if current != identity:
        raise FileChangedError(
            f"{path.name} has changed since the upload started, so the parts already sent no longer match it. "
            "Start the upload again to send the new version."
        )
