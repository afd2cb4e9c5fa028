"""The app's own files (settings, resume store, logs) as the real CLI finds them: damaged, or exposed."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.credentials import CredentialStore
from desktop_uploader.engine.fileid import FileIdentity
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings, save_settings
from desktop_uploader.engine.state import StateStore, UploadRecord
from tests.support.disks import fill
from tests.support.storage import object_sha256

NOTICE = "The settings file could not be read, so the default settings are in use. It was moved to"


def _record(path: str, server: str) -> UploadRecord:
    return UploadRecord(
        id="0123456789abcdef",
        path=path,
        display_name="gone",
        identity=FileIdentity(10, 1, "a", "b"),
        method="presigned-s3",
        server=server,
        status="paused",
        upload_id="no-such-upload",
        s3_key="loras/gone.ckpt",
    )


def _interrupted(home: Path, server: str) -> None:
    """A record as a killed upload leaves it (its upload id is unknown to storage)."""
    state = StateStore.open(home / "data" / "uploads.sqlite3")
    state.create(_record(str(home / "gone.ckpt"), server))
    state.close()


def test_every_command_works_with_a_damaged_settings_file_and_says_so_once(cli: Any, make_file: Any) -> None:
    settings = cli.home / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    sample = make_file(1 * MiB, name="fine.ckpt")
    _interrupted(cli.home, cli.api.server_id)
    for content, command, codes in (
        (b'{"server_url": "caf\xe9"}', ("upload", str(sample.path)), {0}),
        (b"{not json", ("list",), {0}),
        (b"\xff\xfe{}", ("discard", "01234567"), {0, 1}),
        (b"[1, 2]", ("resume", "--all"), {0}),
    ):
        settings.write_bytes(content)
        result = cli(*command)
        assert result.code in codes, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and "Something went wrong" not in result.stderr
        if command[0] != "list":  # list doesn't need settings, so it leaves the file alone
            assert result.stderr.count(NOTICE) == 1, (command, result.stderr)
            asides = sorted(settings.parent.glob("settings.json.damaged-*"))
            assert any(a.read_bytes() == content for a in asides) and not settings.exists()
            for aside in asides:
                aside.unlink()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Files created as loosely as a careless umask allows: the app's own modes must not depend on it."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_the_apps_files_are_private_after_an_upload_whatever_the_umask(
    cli: Any, make_file: Any, open_umask: None
) -> None:
    result = cli("upload", str(make_file(1 * MiB, name="private.ckpt").path))
    assert result.code == 0, result.stderr
    home = cli.home
    for folder in ("config", "data", "logs", "data/locks"):
        assert _mode(home / folder) == 0o700, folder
    database = home / "data" / "uploads.sqlite3"
    owned = [database, home / "logs" / "desktop-uploader.log", *(home / "data" / "locks").iterdir()]
    owned += [p for p in (Path(f"{database}-wal"), Path(f"{database}-shm")) if p.exists()]
    for path in owned:
        assert _mode(path) == 0o600, path
    save_settings(home / "config" / "settings.json", Settings())
    CredentialStore(home / "config" / "credentials.json", use_keyring=False).set("token", "secret")
    for name in ("settings.json", "credentials.json"):
        assert _mode(home / "config" / name) == 0o600, name


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_the_resume_stores_wal_and_shm_files_are_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "data" / "uploads.sqlite3"
    store = StateStore.open(path)
    try:
        store.create(_record(str(tmp_path / "x.ckpt"), "sandbox:/d"))
        assert _mode(path.parent) == 0o700
        for suffix in ("", "-wal", "-shm"):
            assert _mode(Path(f"{path}{suffix}")) == 0o600, suffix
    finally:
        store.close()


def test_a_store_from_a_newer_version_is_left_alone_by_every_command(cli: Any, make_file: Any) -> None:
    database = cli.home / "data" / "uploads.sqlite3"
    database.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(database)) as newer:
        newer.executescript("CREATE TABLE uploads (id TEXT PRIMARY KEY); PRAGMA user_version = 7;")
    before = database.read_bytes()
    for command in (("upload", str(make_file(1 * MiB, name="n.ckpt").path)), ("list",), ("resume", "--all")):
        result = cli(*command)
        assert result.code == 0, (command, result.stderr)
        assert "written by a newer version of Desktop Uploader" in result.stderr, command
    discarded = cli("discard", "abc")
    assert discarded.code == 2 and "written by a newer version of Desktop Uploader" in discarded.stderr
    assert database.read_bytes() == before
    assert sorted(p.name for p in database.parent.iterdir() if p.name.startswith("uploads")) == ["uploads.sqlite3"]


def test_a_full_log_folder_costs_the_log_and_nothing_else(
    cli: Any, make_file: Any, small_disk: Path, s3: Any, sandbox: Any
) -> None:
    """Logging into a full folder used to print a 'Logging error' traceback for every line."""
    logs = cli.home / "logs"
    logs.parent.mkdir(parents=True, exist_ok=True)
    logs.symlink_to(small_disk, target_is_directory=True)
    fill(small_disk)
    sample = make_file(6 * MiB, name="full-logs.safetensors")
    result = cli("upload", str(sample.path), "--json")
    assert result.code == 0, result.stderr
    [upload] = result.json()["uploads"]
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sample.sha256
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
