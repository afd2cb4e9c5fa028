"""A window left open for hours: what the upload pools hold must not grow as their threads come and go."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.gui.executors import QtPoolExecutor
from tests.gui.conftest import run, until
from tests.gui.test_queue import drop
from tests.support.storage import object_sha256

POOLS = {"upload-files", "upload-parts"}  # Qt names a pool's threads after the pool


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def pool_threads() -> int:
    """The process's threads that belong to the upload pools (their OS name is the pool's)."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            count += (task / "comm").read_text().strip() in POOLS
        except OSError:  # the thread ended while we looked
            continue
    return count


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts open files in /proc/self/fd")
def test_the_window_keeps_a_flat_count_of_open_files_as_pool_threads_come_and_go(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Idle pool threads retire after 100 ms instead of a minute: eight rounds here are the pools of a
    # window left open for an afternoon, with an upload started now and then.
    monkeypatch.setattr(QtPoolExecutor, "expiry_ms", 100)
    desktop = make_desktop(chunk_size=5 * MiB, concurrency=3)
    session = desktop.session
    counts: list[int] = []

    async def one_round(number: int) -> None:
        sample = make_file(12 * MiB, name=f"round-{number}.safetensors")  # three parts, sent side by side
        drop(desktop.window, [sample.path])
        await until(
            lambda: any(r.file_name == sample.path.name and r.status == Status.COMPLETED for r in session.model.rows()),
            60,
            f"upload {number}",
        )
        row = next(r for r in session.model.rows() if r.file_name == sample.path.name)
        assert row.result is not None and object_sha256(s3, sandbox.bucket, row.result.s3_key) == sample.sha256
        await until(
            lambda: (
                session.file_executor.pool.activeThreadCount() == 0
                and session.part_executor.pool.activeThreadCount() == 0
            ),
            30,
            "the pools to go idle",
        )
        await until(lambda: pool_threads() == 0, 30, "the idle pool threads to retire")
        counts.append(open_fds())

    for number in range(8):
        run(aloop, one_round(number))
    # Each round ran on new pool threads. Before the fix every task on them kept a database connection
    # (the file and its WAL) and an HTTP session (a socket): 14 more open files a round, 47 to 145 over
    # the eight. With it the count is the same after every round. The tolerance covers what may grow
    # without being per pool thread: the asyncio loop's few worker threads (each keeps its own
    # connection while it lives) and a keep-alive socket or two to the sandbox.
    assert counts[-1] <= counts[0] + 4, f"open files after each round: {counts}"
