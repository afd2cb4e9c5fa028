"""A small, real tmpfs to fill up: what a full disk does to the app, without filling the machine's."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.waiting import wait_until


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def inodeless_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with room for bytes but none for another file: what a full disk does to a new lock file."""
    mount = tmp_path / "inodeless-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=8,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        for number in range(64):
            try:
                (mount / f"inode-{number}").touch()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        else:
            pytest.fail("the tmpfs never ran out of inodes")
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write until the disk refuses another byte; returns the filler, to delete when done.

    SQLite in WAL mode rewrites pages its WAL already holds without asking the disk for any, so a
    full disk would refuse its writes only now and then. Each store's WAL is emptied first (a
    checkpoint that truncates it), so the store's next write must grow it, and fails.
    """
    for wal in disk.rglob("*-wal"):
        with contextlib.closing(sqlite3.connect(wal.with_name(wal.name[: -len("-wal")]), timeout=30)) as db:
            # A reader elsewhere makes the checkpoint give up quietly (busy, WAL kept): ask until it is empty.
            wait_until(
                lambda: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[:2] == (0, 0), 30, "an empty WAL"
            )
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as handle:  # again after SQLite gave some space back: tops it up
        for block in (64 * 1024, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    try:
                        handle.write(b"\0" * block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
    return filler
