"""Dropping a file again whose upload stopped short goes on with it; one still running or paused is left be."""

from __future__ import annotations

import uuid
from typing import Any

from desktop_uploader.engine.events import Started, Status
from desktop_uploader.engine.limits import MiB
from tests.gui.conftest import run, until
from tests.gui.test_lifecycle import interrupted_then_opened_again
from tests.gui.test_queue import drop
from tests.support.storage import object_sha256, open_multipart_uploads


def test_dropping_an_interrupted_file_again_goes_on_from_where_it_stopped(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    """A resume audit opened a file again after a crash: the window said "Already in the queue" and the
    interrupted row sat there unsent, as if the drop had been ignored (``desktop-uploader upload`` goes on)."""
    sample = make_file(30 * MiB, name=f"again-{uuid.uuid4().hex[:8]}.safetensors")
    second = interrupted_then_opened_again(make_desktop, aloop, sample.path)
    [row] = second.session.model.rows()
    assert row.status == Status.INTERRUPTED
    messages: list[str] = []
    second.session.message.connect(messages.append)
    events: list[Any] = []
    second.session.manager.subscribe(events.append)

    async def drop_again() -> None:
        drop(second.window, [sample.path])
        await until(lambda: second.session.model.rows()[0].status == Status.COMPLETED, 60, "the upload to go on")

    run(aloop, drop_again())
    assert messages[-1] == f"Going on with {sample.path.name} from where it stopped."
    [done] = second.session.model.rows()
    assert done.job_id == row.job_id, "the same row went on; no second row started over"
    [started] = [e for e in events if isinstance(e, Started)]
    assert started.resumed_bytes >= 10 * MiB, "what was stored before the crash was not sent again"
    assert done.result is not None
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=sandbox.bucket, Prefix="loras/sandbox-user/")
    stored = [item["Key"] for page in pages for item in page.get("Contents", []) if sample.path.stem in item["Key"]]
    assert stored == [done.result.s3_key], "stored once"
    assert object_sha256(s3, sandbox.bucket, stored[0]) == sample.sha256
    left = [
        u for u in open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/") if sample.path.stem in u["Key"]
    ]
    assert left == [], "no orphan of this file"


def test_dropping_a_paused_file_again_leaves_it_paused(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    """A row the person paused stays as they left it: the drop says it is already in the queue."""
    sample = make_file(12 * MiB, name=f"paused-{uuid.uuid4().hex[:8]}.safetensors")
    desktop = make_desktop(bandwidth_limit=2 * 1000 * 1000, chunk_size=5 * MiB, concurrency=1)
    session = desktop.session
    messages: list[str] = []
    session.message.connect(messages.append)

    async def scenario() -> None:
        drop(desktop.window, [sample.path])
        await until(lambda: session.model.rowCount() == 1 and session.model.rows()[0].status.active, 30, "the start")
        session.manager.pause(session.model.rows()[0].job_id)
        await until(lambda: session.model.rows()[0].status == Status.PAUSED, 60, "the pause")
        drop(desktop.window, [sample.path])
        await until(lambda: messages[-1] == f"Already in the queue: {sample.path.name}.", 30, "the answer to the drop")
        assert session.model.rows()[0].status == Status.PAUSED
        session.manager.cancel(session.model.rows()[0].job_id)  # tidy: what it stored is deleted with it
        await until(lambda: session.model.rows()[0].status == Status.CANCELLED, 60, "the cancel")
        await until(lambda: not mine_open(), 60, "its parts deleted")

    def mine_open() -> list[Any]:
        found = open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/")
        return [u for u in found if sample.path.stem in u["Key"]]

    run(aloop, scenario())
    assert session.model.rowCount() == 1
