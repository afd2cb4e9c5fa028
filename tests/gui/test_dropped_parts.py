"""Parts a pool drops when it shuts down: the upload must stop, resumable, not wait for ever.

The window's Qt pool, and the standard library's (the command line's), which cancels the futures
it drops under a lock of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.manager import ServerConnection, UploadManager
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore
from desktop_uploader.gui.executors import QtPoolExecutor
from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.storage import object_sha256, open_multipart_uploads
from tests.support.waiting import wait_until

PART = 5 * MiB


@pytest.fixture
def pools(qapp: QApplication) -> Iterator[list[Executor]]:
    made: list[Executor] = []
    yield made
    for pool in made:
        pool.shutdown()


def pool(kind: str, threads: int) -> Executor:
    return QtPoolExecutor(threads, "test-pool") if kind == "qt" else ThreadPoolExecutor(threads)


def make_manager(
    sandbox: SandboxInfo, state: StateStore, pools: list[Executor], kind: str, part_threads: int, **changes: Any
) -> tuple[UploadManager, Executor]:
    """An upload manager on pools of the given kind, as the window (or the command line) wires it."""
    files, parts = pool(kind, 4), pool(kind, part_threads)
    pools += [files, parts]
    connection = ServerConnection(sandbox.api_url, sandbox.token, sandbox.server_id, "test")
    settings = Settings(chunk_size=PART, **changes)
    return UploadManager(settings, state, connection, file_executor=files, part_executor=parts), parts


# Four parts: the two dropped are the last, so nothing more is submitted (before the fix, a hang for
# ever). Eight: parts are still to start after the pool shut down, and submitting them fails.
@pytest.mark.parametrize("count", [4, 8], ids=["the-last-parts-dropped", "parts-left-to-start"])
@pytest.mark.parametrize("kind", ["qt", "stdlib"])
def test_parts_a_shut_down_pool_drops_leave_the_upload_paused_and_resume_completes_it(
    sandbox: SandboxInfo, s3: Any, make_file: Any, tmp_path: Path, pools: list[Executor], count: int, kind: str
) -> None:
    state = StateStore.open(tmp_path / "state.sqlite3")
    # One pool thread and three parts in flight: while parts remain, two of them always wait in the queue.
    manager, parts = make_manager(sandbox, state, pools, kind, 1, concurrency=3, bandwidth_limit=4 * 1000 * 1000)
    sample = make_file(count * PART)
    job = manager.add(sample.path)
    wait_until(lambda: len(state.parts(job)) >= 1, 60, "a stored part")
    parts.shutdown(wait=False, cancel_futures=True)  # the queued parts will never run

    assert manager.wait([job], 60), "the upload waited for parts that will never run"
    view = manager.job(job)
    assert view.status == Status.PAUSED and view.resumable
    record = state.get(job)
    assert record is not None and record.status == "paused" and record.upload_id and record.s3_key
    stored = state.parts(job)
    assert 1 <= len(stored) < count  # some parts were dropped, so this is the case under test
    listed = s3.list_parts(Bucket=sandbox.bucket, Key=record.s3_key, UploadId=record.upload_id)["Parts"]
    on_storage = {p["PartNumber"]: p["ETag"].strip('"') for p in listed}
    assert all(on_storage.get(n) == p.etag.strip('"') for n, p in stored.items()), (stored, on_storage)
    manager.close()

    # The next window resumes it from what the record says is stored, and it completes.
    second, _ = make_manager(sandbox, state, pools, kind, 4, concurrency=3)
    assert second.restore_interrupted() == [job]
    second.resume(job)
    assert second.wait([job], 60)
    done = second.job(job)
    assert done.status == Status.COMPLETED and done.result is not None
    assert object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    # Its own key: the bucket is shared with the rest of the suite, whose uploads are not this test's.
    assert open_multipart_uploads(s3, sandbox.bucket, record.s3_key) == []
    second.close()
    state.close()
