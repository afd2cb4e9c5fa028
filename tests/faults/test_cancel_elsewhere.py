"""A cancel whose abort can't reach the upload's own server says what stays there, and when it goes.

Before, the row read "Cancelled" (and no stored size, as for parts deleted) while the parts stayed on
the server the upload began on: the person had switched servers since, and only the log said so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Event, Status, StatusChanged
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.manager import ServerConnection, UploadManager
from desktop_uploader.engine.rows import Row
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore
from tests.faults.harness import World, open_uploads
from tests.support.logfail import FAULTS
from tests.support.proxy import Respond
from tests.support.waiting import wait_until

pytestmark = pytest.mark.allow_log(*FAULTS)

FAST = Settings(
    method="presigned",
    chunk_size=5 * MiB,
    concurrency=2,
    retries=1,
    backoff_base=0.05,
    backoff_cap=0.1,
    connect_timeout=1.0,
    read_timeout=1.0,
)
BUSY = Respond(503, b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>")


def test_cancelling_an_upload_held_by_another_server_says_its_parts_stay_there(
    world: World, tmp_path: Path, make_file: Any
) -> None:
    sample = make_file(7 * MiB, name="cancel-elsewhere.safetensors")
    home = ServerConnection(world.api_url, world.sandbox.token, world.api_url, "faults")
    elsewhere = ServerConnection(world.seed_api_proxy.url, world.sandbox.token, world.seed_api_proxy.url, "seed")
    world.install(None)
    world.storage_proxy.set_fault_plan(
        lambda r: BUSY if r.method == "PUT" and r.query.get("partNumber") == "2" else None
    )
    state = StateStore.open(tmp_path / "state.sqlite3")
    manager = UploadManager(FAST, state, home)
    seen: list[Event] = []
    manager.subscribe(seen.append)
    try:
        job = manager.add(sample.path)
        assert manager.wait([job], 60)
        assert manager.job(job).resumable, manager.job(job).message
        world.storage_proxy.set_fault_plan(None)
        [upload_id] = open_uploads(world, sample.path.name)

        manager.set_connection(elsewhere)  # the person switched servers, then discards the failed upload
        manager.cancel(job)
        wait_until(lambda: manager.owed_aborts() != [], timeout=30)
        wait_until(lambda: isinstance(seen[-1], StatusChanged) and seen[-1].status is Status.CANCELLED, timeout=10)
    finally:
        manager.close(timeout=10)
        state.close()

    row = Row(job, sample.path, sample.path.name, sample.path.stat().st_size)
    for event in seen:
        if event.job_id == job:
            row.apply(event, 0.0)
    assert row.status is Status.CANCELLED
    assert row.status_text(0) == (
        f"Cancelled. Its partial upload on {world.api_url} could not be removed now; "
        "the app tries again each time it connects there."
    )
    assert list(open_uploads(world, sample.path.name)) == [upload_id], "kept for its own server to abort"
