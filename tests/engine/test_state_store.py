"""The resume store: durable parts, thread-safe writes, and damaged files set aside instead of crashing."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from desktop_uploader.engine.fileid import FileIdentity
from desktop_uploader.engine.http import Sessions
from desktop_uploader.engine.state import SavedPart, StateStore, UploadRecord
from tests.support.waiting import wait_until


def record(job: str = "job1") -> UploadRecord:
    return UploadRecord(
        id=job,
        path="/tmp/x.safetensors",
        display_name="x",
        identity=FileIdentity(10, 1, "a", "b"),
        method="presigned-s3",
        server="sandbox:/d",
        upload_id="u",
        s3_key="k",
        part_size=5,
        part_count=2,
    )


def test_records_and_parts_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = StateStore.open(path)
    store.create(record())
    store.record_part("job1", 1, '"etag1"', 5)
    store.update("job1", status="paused", message="Paused.")
    store.close()
    again = StateStore.open(path)
    assert again.notices == []
    saved = again.get("job1")
    assert saved is not None and saved.status == "paused" and saved.identity == FileIdentity(10, 1, "a", "b")
    assert again.parts("job1") == {1: SavedPart(1, '"etag1"', 5)}
    again.replace_parts("job1", [SavedPart(2, "e2", 5)])
    assert list(again.parts("job1")) == [2]
    again.delete("job1")
    assert again.get("job1") is None and again.parts("job1") == {}


def test_parts_recorded_from_many_threads_all_land(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path / "state.sqlite3")
    store.create(record())
    threads = [threading.Thread(target=store.record_part, args=("job1", n, f"e{n}", 5)) for n in range(1, 65)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(store.parts("job1")) == list(range(1, 65))


@pytest.mark.allow_log(r"desktop_uploader\.engine\.state: Resume store .* is unusable \(file is not a database\)")
def test_a_damaged_store_is_set_aside_with_a_notice(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    damaged = b"this is not a database" * 100
    path.write_bytes(damaged)
    store = StateStore.open(path)
    assert store.persistent and len(store.notices) == 1 and "set aside" in store.notices[0]
    [aside] = tmp_path.glob("state.sqlite3.damaged-*[0-9]")
    assert aside.read_bytes() == damaged, "the old file is kept as it was"
    reason = Path(f"{aside}.reason").read_text(encoding="utf-8")
    assert "Set aside by Desktop Uploader" in reason and "it could not be used (file is not a database)" in reason
    store.create(record())
    assert store.get("job1") is not None


@pytest.mark.allow_log(r"engine\.state: Resume store .* is from a newer app \(schema 99\); left alone")
def test_a_store_from_a_newer_app_is_left_untouched_not_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as newer:
        newer.executescript("CREATE TABLE uploads (id TEXT PRIMARY KEY, future TEXT); PRAGMA user_version = 99;")
        newer.execute("INSERT INTO uploads VALUES ('theirs', 'x')")
        newer.commit()
    before = path.read_bytes()
    store = StateStore.open(path)
    try:
        assert not store.persistent and len(store.notices) == 1
        assert "written by a newer version of Desktop Uploader" in store.notices[0]
        assert "damaged" not in store.notices[0]
        store.create(record())  # this session still works, in memory
        assert store.get("job1") is not None
    finally:
        store.close()
    assert path.read_bytes() == before, "not written to"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite3"], "nothing set aside, no -wal or -shm"


@pytest.mark.allow_log(r"^WARNING desktop_uploader\.engine\.state: Resume store .* can.t be opened")
def test_an_unusable_location_falls_back_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = StateStore.open(blocker / "sub" / "state.sqlite3")  # parent is a file: can't be created
    assert not store.persistent and "can't be resumed" in store.notices[0]
    store.create(record())
    assert store.get("job1") is not None


# The layout an app before part checksums wrote (schema 1).
_SCHEMA_1 = """
CREATE TABLE uploads (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, display_name TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, head_sha256 TEXT NOT NULL, tail_sha256 TEXT NOT NULL, method TEXT NOT NULL,
    server TEXT NOT NULL, upload_id TEXT, s3_key TEXT, unique_file_name TEXT, comfyui_path TEXT,
    part_size INTEGER NOT NULL DEFAULT 0, part_count INTEGER NOT NULL DEFAULT 0,
    chunk_offset INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE parts (
    upload TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE, number INTEGER NOT NULL,
    etag TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (upload, number)
) WITHOUT ROWID;
CREATE TABLE urls (
    upload TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE, number INTEGER NOT NULL,
    url TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (upload, number)
) WITHOUT ROWID;
INSERT INTO uploads VALUES ('old', '/tmp/x.safetensors', 'x', 10, 1, 'a', 'b', 'presigned-s3', 'sandbox:/d',
    'u', 'k', NULL, NULL, 5, 2, 0, 'paused', 'Paused.', 1.0, 2.0);
INSERT INTO parts VALUES ('old', 1, '"etag1"', 5);
PRAGMA user_version = 1;
"""


def test_a_store_from_the_previous_version_is_upgraded_and_keeps_its_uploads(tmp_path: Path) -> None:
    """An interrupted upload from before part checksums still resumes (without checksums) after an update, and
    from before the change time (0: unknown, never read as "touched")."""
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(_SCHEMA_1)
    old.close()
    store = StateStore.open(path)
    assert store.notices == []
    saved = store.get("old")
    assert saved is not None and saved.status == "paused" and saved.checksum == ""
    assert saved.identity.ctime_ns == 0
    assert store.parts("old") == {1: SavedPart(1, '"etag1"', 5, "")}
    fresh = record("new")
    store.create(fresh.with_changes(checksum="crc32c", identity=replace(fresh.identity, ctime_ns=7)))
    store.record_part("new", 1, '"e1"', 5, "AAAAAA==")
    store.close()
    again = StateStore.open(path)
    assert again.notices == []
    new = again.get("new")
    assert new is not None and new.checksum == "crc32c" and new.identity.ctime_ns == 7
    assert again.parts("new") == {1: SavedPart(1, '"e1"', 5, "AAAAAA==")}
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 3
    check.close()
    again.close()


def test_a_failure_inside_a_write_rolls_back_and_lets_other_writers_on(tmp_path: Path) -> None:
    """A value SQLite can't take (a name that isn't UTF-8) must not leave the write lock held."""
    path = tmp_path / "state.sqlite3"
    store = StateStore.open(path)
    store.create(record("kept"))
    bad = record("bad").with_changes(path=os.fsdecode(b"/tmp/caf\xe9.safetensors"))
    with pytest.raises(UnicodeEncodeError):
        store.create(bad)
    # Another writer gets the lock at once: with timeout=0 a held lock fails instead of waiting.
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert store.get("bad") is None and store.get("kept") is not None, "the half-done write was rolled back"
    store.record_part("kept", 1, "e1", 5)
    assert list(store.parts("kept")) == [1]


def test_a_threads_connection_and_session_close_when_the_thread_ends(tmp_path: Path) -> None:
    """The command line's pools (standard threads) keep one of each per live thread, and no more."""
    store = StateStore.open(tmp_path / "state.sqlite3")
    sessions = Sessions()
    store.unfinished()  # this thread's, which stays

    def work(_: int) -> None:
        store.unfinished()
        sessions.get()

    for _ in range(3):  # pools come and go, as threads would in a long session
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(work, range(16)))
            assert store.open_connections() <= 5 and sessions.open_count() <= 4
        wait_until(lambda: store.open_connections() == 1 and sessions.open_count() == 0, 10, "the threads' to close")
    store.close()
    assert store.open_connections() == 0


def test_upload_links_are_kept_only_while_they_can_still_be_used(tmp_path: Path) -> None:
    """A link is a bearer credential for a part: gone once its part is stored, or once it has expired."""
    store = StateStore.open(tmp_path / "state.sqlite3")
    try:
        store.create(record())
        later, past = time.time() + 3600, time.time() - 1
        store.save_urls(
            "job1", {1: ("https://s/1?sig", later), 2: ("https://s/2?sig", later), 3: ("https://s/3", past)}
        )
        store.record_part("job1", 1, "etag-1", 5)
        assert sorted(store.urls("job1")) == [2]
        with sqlite3.connect(tmp_path / "state.sqlite3") as db:
            assert db.execute("SELECT number FROM urls").fetchall() == [(2,)], "nothing else is left on disk"
    finally:
        store.close()
