"""The resume store: what has been sent, so that nothing is sent twice after a crash.

SQLite in the user data dir, in WAL mode with ``synchronous=FULL``: a part is only reported as
confirmed once its row is on disk, so kill -9, a reboot or a power cut lose at most the parts that
were in flight. Every change is one transaction, so a crash at any point leaves either the old or
the new state, never half of one.

Each thread gets its own connection (SQLite connections are not meant to be shared across
threads, and a lock around one shared connection would serialise every part on the hot path);
WAL lets them read concurrently and ``busy_timeout`` queues their writes. A thread's connection is
closed when the thread ends (on Qt's pool threads, when each task ends: see ``engine/perthread.py``).

A damaged file never stops the app: it is renamed aside (``uploads.sqlite3.damaged-<time>``, with a
``.reason`` file saying why), a notice says so, and a fresh store takes its place. If even that fails
(read-only disk), the store lives in memory for the session and uploads still work, only without
resume. A store written by a newer version of the app is not damaged: it is left untouched, and this
session's store is in memory.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from desktop_uploader.engine.errors import DiskFullError, RecordMissingError, StateError
from desktop_uploader.engine.perthread import PerThread
from desktop_uploader.engine.private import make_private, private_dir, private_file
from desktop_uploader.engine.records import (
    OWED_ABORT,
    RECORD_COLUMNS,
    UPDATABLE_COLUMNS,
    SavedPart,
    UploadRecord,
    record_from_row,
    record_values,
)
from desktop_uploader.engine.state_files import NewerStoreError, newer_schema, set_aside
from desktop_uploader.engine.state_schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION

log = logging.getLogger(__name__)

__all__ = ["OWED_ABORT", "SavedPart", "StateStore", "UploadRecord"]

_memory_names = itertools.count()


class StateStore:
    def __init__(self, target: str, *, uri: bool = False) -> None:
        self._target = target
        self._uri = uri
        # A connection per thread, closed as its thread ends: Qt's pool replaces idle threads, and
        # connections kept for every thread that ever lived ran the app out of file descriptors.
        self._connections: PerThread[sqlite3.Connection] = PerThread(self._open_connection, sqlite3.Connection.close)
        self.notices: list[str] = []
        self.persistent = not uri
        self._keepalive: sqlite3.Connection | None = None

    @property
    def data_dir(self) -> Path | None:
        """The folder the database is in, where the app's other small files live; None for an in-memory store."""
        return Path(self._target).parent if self.persistent else None

    @property
    def lock_dir(self) -> Path | None:
        """Where per-upload lock files live: beside the database, so every process of this user shares them."""
        return self.data_dir / "locks" if self.data_dir is not None else None

    # -- opening --------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> StateStore:
        """Open (or create) the store at ``path``; a damaged one is set aside with a notice.

        A store from a newer version of the app is left exactly as it is (that version's uploads are
        in it): this session keeps its records in memory instead, and says so.
        """
        newer = newer_schema(path)
        if newer is not None:
            return cls._beside_newer(path, newer)
        try:
            private_dir(path.parent)
            private_file(path)  # SQLite gives its -wal and -shm files the database's mode
            store = cls(str(path))
            store._prepare()
            store._make_private()
            return store
        except NewerStoreError as exc:  # became newer between the peek and the opening
            return cls._beside_newer(path, exc.version)
        except (sqlite3.DatabaseError, StateError) as exc:
            log.warning("Resume store %s is unusable (%s); setting it aside", path, exc)
            aside = set_aside(path, f"it could not be used ({exc}).")
        except OSError as exc:
            log.warning("Resume store %s can't be opened (%s)", path, exc)
            aside = None
        if aside is not None:
            try:
                private_file(path)
                store = cls(str(path))
                store._prepare()
                store._make_private()
            except (sqlite3.DatabaseError, StateError, OSError):
                pass
            else:
                store.notices.append(
                    f"The list of interrupted uploads was damaged and has been set aside as {aside.name}. "
                    "New uploads work normally; uploads interrupted earlier have to be started again."
                )
                return store
        store = cls.in_memory()
        store.notices.append(
            f"The list of interrupted uploads at {path} can't be used, so uploads in this session can't be "
            "resumed after the app closes."
        )
        return store

    @classmethod
    def _beside_newer(cls, path: Path, version: int) -> StateStore:
        log.warning("Resume store %s is from a newer app (schema %d); left alone", path, version)
        store = cls.in_memory()
        store.notices.append(
            f"The list of interrupted uploads at {path} was written by a newer version of Desktop Uploader, "
            "so this version leaves it untouched. Uploads in this session can't be resumed after the app "
            "closes; use the newer version to resume the uploads listed there."
        )
        return store

    def _make_private(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            make_private(Path(self._target + suffix))

    @classmethod
    def in_memory(cls) -> StateStore:
        store = cls(f"file:desktop-uploader-{next(_memory_names)}?mode=memory&cache=shared", uri=True)
        # A shared-cache memory DB lives while a connection does: one of its own, whatever thread opened it.
        store._keepalive = store._open_connection()
        store._prepare()
        return store

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    def _open_connection(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._target, uri=self._uri, timeout=30, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA busy_timeout = 30000")
        connection.execute("PRAGMA foreign_keys = ON")
        if self.persistent:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
        return connection

    def open_connections(self) -> int:
        """How many connections are open now (at most one per thread alive): for tests to watch."""
        return self._connections.open_count()

    def _prepare(self) -> None:
        connection = self._connection()
        check = connection.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StateError(f"integrity check failed: {check}")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with self._transaction() as db:
                db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif version > SCHEMA_VERSION:
            raise NewerStoreError(version)
        elif version < SCHEMA_VERSION:
            self._upgrade()
        columns = {row[1] for row in connection.execute("PRAGMA table_info(uploads)")}
        if not set(RECORD_COLUMNS) <= columns:
            raise StateError("unexpected layout")

    def _upgrade(self) -> None:
        """Bring an older store up to date, keeping every record (another process may be doing the same)."""
        with self._transaction() as db:
            db.execute("BEGIN IMMEDIATE")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version + 1, SCHEMA_VERSION + 1):
                log.info("Upgrading the resume store to schema %d", step)
                for statement in filter(None, (part.strip() for part in MIGRATIONS[step].split(";"))):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {step}")
            db.execute("COMMIT")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        try:
            yield connection
        except sqlite3.OperationalError as exc:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            text = str(exc).lower()
            if "full" in text:
                raise DiskFullError() from exc
            raise StateError(f"Saving upload progress failed: {exc}") from exc
        except sqlite3.IntegrityError as exc:  # a part of an upload whose record could not be written
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise RecordMissingError(f"The upload's resume record is missing ({exc}).") from exc
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise StateError(f"The resume store is damaged: {exc}") from exc
        except BaseException:
            # Anything else (a value SQLite can't take, an interrupt): this thread's connection must not
            # keep the write lock, or every other upload's next write waits out the busy timeout and fails.
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise

    def _write(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> None:
        with self._transaction() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(sql, params)
            db.execute("COMMIT")

    def close(self) -> None:
        self._connections.close()
        if self._keepalive is not None:
            with contextlib.suppress(sqlite3.Error):
                self._keepalive.close()
            self._keepalive = None

    # -- records --------------------------------------------------------------------------------------

    def create(self, record: UploadRecord) -> UploadRecord:
        now = time.time()
        record = record.with_changes(created_at=record.created_at or now, updated_at=now)
        values = record_values(record)
        names = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        with self._transaction() as db:
            db.execute("BEGIN IMMEDIATE")
            # A new attempt of the same job starts from a clean slate.
            db.execute("DELETE FROM parts WHERE upload = ?", (record.id,))
            db.execute("DELETE FROM urls WHERE upload = ?", (record.id,))
            db.execute(f"INSERT OR REPLACE INTO uploads ({names}) VALUES ({marks})", values)  # noqa: S608
            db.execute("COMMIT")
        return record

    def update(self, upload: str, **changes: Any) -> None:
        unknown = set(changes) - UPDATABLE_COLUMNS
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        self._write(
            f"UPDATE uploads SET {assignments}, updated_at = :now WHERE id = :id",  # noqa: S608
            {**changes, "now": time.time(), "id": upload},
        )

    def get(self, upload: str) -> UploadRecord | None:
        with self._transaction() as db:
            row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload,)).fetchone()
        return record_from_row(row) if row else None

    def unfinished(self) -> list[UploadRecord]:
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM uploads ORDER BY created_at").fetchall()
        return [record_from_row(row) for row in rows]

    def delete(self, upload: str) -> None:
        self._write("DELETE FROM uploads WHERE id = ?", (upload,))

    # -- parts ------------------------------------------------------------------------------------------

    def record_part(self, upload: str, number: int, etag: str, size: int, checksum: str = "") -> None:
        """A part storage confirmed; its upload link, if one was kept, is no longer needed and goes."""
        with self._transaction() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT OR REPLACE INTO parts (upload, number, etag, size, checksum) VALUES (?, ?, ?, ?, ?)",
                (upload, number, etag, size, checksum),
            )
            db.execute("DELETE FROM urls WHERE upload = ? AND number = ?", (upload, number))
            db.execute("COMMIT")

    def replace_parts(self, upload: str, parts: list[SavedPart]) -> None:
        """Make the saved parts exactly ``parts`` (after reconciling with the server)."""
        with self._transaction() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM parts WHERE upload = ?", (upload,))
            db.executemany(
                "INSERT INTO parts (upload, number, etag, size, checksum) VALUES (?, ?, ?, ?, ?)",
                [(upload, p.number, p.etag, p.size, p.checksum) for p in parts],
            )
            db.execute("COMMIT")

    def parts(self, upload: str) -> dict[int, SavedPart]:
        with self._transaction() as db:
            rows = db.execute("SELECT number, etag, size, checksum FROM parts WHERE upload = ?", (upload,)).fetchall()
        return {row["number"]: SavedPart(row["number"], row["etag"], row["size"], row["checksum"]) for row in rows}

    # -- URLs from a server that can't re-sign ----------------------------------------------------------

    def save_urls(self, upload: str, urls: dict[int, tuple[str, float]]) -> None:
        with self._transaction() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR REPLACE INTO urls (upload, number, url, expires_at) VALUES (?, ?, ?, ?)",
                [(upload, n, url, expires) for n, (url, expires) in urls.items()],
            )
            db.execute("COMMIT")

    def urls(self, upload: str) -> dict[int, tuple[str, float]]:
        """The kept links of parts not yet sent that still work (wall-clock expiry); expired ones are dropped."""
        with self._transaction() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM urls WHERE upload = ? AND expires_at <= ?", (upload, time.time()))
            rows = db.execute("SELECT number, url, expires_at FROM urls WHERE upload = ?", (upload,)).fetchall()
            db.execute("COMMIT")
        return {row["number"]: (row["url"], row["expires_at"]) for row in rows}

    def links_expire_at(self, uploads: list[str]) -> float | None:
        """When the first kept link of ``uploads`` runs out (wall clock), or None when none is kept: links
        are kept only for a server that can't renew them, so a pause past then means starting over."""
        query = "SELECT MIN(expires_at) AS first FROM urls WHERE upload = ? AND expires_at > ?"
        now = time.time()
        with self._transaction() as db:
            firsts = [db.execute(query, (upload, now)).fetchone()["first"] for upload in uploads]
        kept = [float(first) for first in firsts if first is not None]
        return min(kept) if kept else None
