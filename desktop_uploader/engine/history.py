"""The history of completed uploads: what was sent, where it is now, and to which server.

People come back days later for a ComfyUI path, or drop the same 20 GB model again without
remembering it is already stored. So every completed upload is kept here, in SQLite beside the
resume store (``history.sqlite3``, 0600: it names the user's files), until the person clears it.

Each call opens and closes its own connection: the history is written once per completed upload
(on that upload's worker thread) and read when the window shows it (on a worker thread too), so a
connection per call costs nothing that matters and no connection is ever shared across threads.
Nothing here touches the disk before the first call, so the window can make a store on its thread.

A damaged history never stops an upload: it is set aside (``history.sqlite3.damaged-<time>``) and a
new one started; a history that can't be written at all is logged and skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from desktop_uploader.engine.private import make_private, private_dir, private_file
from desktop_uploader.engine.state_files import set_aside

log = logging.getLogger(__name__)

THIS_COMPUTER = "this computer"
HISTORY_FILE = "history.sqlite3"  # in the user data dir, beside the resume store
HASH_BLOCK = 4 * 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_name TEXT NOT NULL,
    local_path TEXT NOT NULL,
    comfyui_path TEXT NOT NULL,
    s3_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    method TEXT NOT NULL,
    completed_at REAL NOT NULL,
    server TEXT NOT NULL,
    server_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_size ON history (server_key, size);
"""


@dataclass(frozen=True)
class HistoryEntry:
    """One completed upload. ``sha256`` is "" until someone hashed the file (see ``duplicate_of``)."""

    file_name: str  # the stored object's file name (the server may have made the name unique)
    local_path: str
    comfyui_path: str
    s3_path: str
    size: int
    method: str
    completed_at: float  # seconds since the epoch
    server: str  # what a person reads: the server's URL, or "this computer" for the sandbox
    server_key: str  # what identifies it across sessions (the sandbox's URL changes, its identity does not)
    sha256: str = ""
    mtime_ns: int = 0  # the local file's, when it was uploaded: is a later hash of it still this upload's?
    id: int = 0

    def other_name(self, path: Path) -> str:
        """The name of the file this upload was sent from, when it is not ``path``'s: the same bytes under
        another name (an audit's folder of copies was told its files were "already on this server" by
        names never uploaded). Empty when the names are the same."""
        sent_from = Path(self.local_path).name if self.local_path else ""
        return sent_from if sent_from and sent_from != path.name else ""

    def matches(self, text: str) -> bool:
        """The search box: every word appears in the name, a path or the server (case-insensitive)."""
        haystack = " ".join((self.file_name, self.local_path, self.comfyui_path, self.s3_path, self.server)).lower()
        return all(word in haystack for word in text.lower().split())


def file_sha256(path: Path) -> str:
    """The whole file's sha256: minutes for a big model, so only on a worker thread and only when needed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class HistoryStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> HistoryStore:
        """The user's history (no disk access until it is first used)."""
        return cls(data_dir / HISTORY_FILE)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self._prepare()
        connection = self._connect()
        try:
            yield connection
        finally:
            connection.close()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA busy_timeout = 30000")
        return connection

    def _prepare(self) -> None:
        """Create the file (0600) and its table; a damaged file is set aside, as the resume store's is."""
        private_dir(self.path.parent)
        private_file(self.path)
        try:
            self._create()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            log.warning("The upload history %s is damaged (%s); setting it aside", self.path, exc)
            if set_aside(self.path, f"it could not be used ({exc}).") is None:
                raise
            private_file(self.path)
            self._create()
        self._ready = True

    def _create(self) -> None:
        connection = self._connect()
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executescript(SCHEMA)
        finally:
            connection.close()
        for suffix in ("-wal", "-shm"):
            make_private(Path(f"{self.path}{suffix}"))

    def record(self, entry: HistoryEntry) -> int:
        """Keep a completed upload; its id."""
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO history (file_name, local_path, comfyui_path, s3_path, size, mtime_ns, sha256, method,"
                " completed_at, server, server_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.file_name,
                    entry.local_path,
                    entry.comfyui_path,
                    entry.s3_path,
                    entry.size,
                    entry.mtime_ns,
                    entry.sha256,
                    entry.method,
                    entry.completed_at or time.time(),
                    entry.server,
                    entry.server_key,
                ),
            )
            return int(cursor.lastrowid or 0)

    def entries(self, search: str = "") -> list[HistoryEntry]:
        """Newest first; only those matching ``search`` when it is given."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM history ORDER BY completed_at DESC, id DESC").fetchall()
        found = [_entry(row) for row in rows]
        return [e for e in found if e.matches(search)] if search.strip() else found

    def same_size(self, server_key: str, size: int) -> list[HistoryEntry]:
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM history WHERE server_key = ? AND size = ? ORDER BY completed_at DESC",
                (server_key, size),
            ).fetchall()
        return [_entry(row) for row in rows]

    def set_sha256(self, entry_id: int, sha256: str) -> None:
        with self._db() as db:
            db.execute("UPDATE history SET sha256 = ? WHERE id = ?", (sha256, entry_id))

    def clear(self) -> None:
        with self._db() as db:
            db.execute("DELETE FROM history")

    def forget_server(self, server_key: str) -> None:
        """The uploads to a store that was emptied: they are gone, so no later drop is "already uploaded"."""
        with self._db() as db:
            db.execute("DELETE FROM history WHERE server_key = ?", (server_key,))

    def duplicate_of(self, server_key: str, path: Path) -> tuple[HistoryEntry | None, str]:
        """The completed upload of these very bytes to this server, if there is one (by size and sha256),
        and the file's sha256 ("" when no size matched, so it was not hashed).

        The file is hashed only when its size matches an entry. An entry recorded without a hash
        gets one from its own local file, if that file still has the size and mtime it had when it
        was uploaded (then its bytes are most likely the uploaded ones); the hash is kept for next time.
        """
        size = path.stat().st_size
        candidates = self.same_size(server_key, size)
        if not candidates:
            return None, ""
        digest = file_sha256(path)
        for entry in candidates:
            known = entry.sha256 or self._hash_of_source(entry)
            if known == digest:
                return entry, digest
        return None, digest

    def _hash_of_source(self, entry: HistoryEntry) -> str:
        source = Path(entry.local_path)
        try:
            stat = source.stat()
            if stat.st_size != entry.size or stat.st_mtime_ns != entry.mtime_ns:
                return ""
            digest = file_sha256(source)
        except OSError:
            return ""
        self.set_sha256(entry.id, digest)
        return digest


def _entry(row: sqlite3.Row) -> HistoryEntry:
    return HistoryEntry(
        file_name=row["file_name"],
        local_path=row["local_path"],
        comfyui_path=row["comfyui_path"],
        s3_path=row["s3_path"],
        size=row["size"],
        method=row["method"],
        completed_at=row["completed_at"],
        server=row["server"],
        server_key=row["server_key"],
        sha256=row["sha256"],
        mtime_ns=row["mtime_ns"],
        id=row["id"],
    )
