"""Retry of an upload whose file went missing: it says so while the file is still gone, and goes on once it is back.

The row's sentence ("… was deleted or moved. Put it back to go on …") was the same before and after
Retry, which flashed Queued and failed again at once: a person pressing it saw nothing happen. The real
window, offscreen, against the real sandbox; the file is moved away and back as a person would.
"""

from __future__ import annotations

from typing import Any

import pytest

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import RowAction
from tests.gui.conftest import run, until
from tests.gui.test_queue import click_row_button, drop
from tests.support.logfail import UPLOAD_FAILED
from tests.support.storage import object_sha256, open_multipart_uploads


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_retry_while_the_file_is_still_gone_says_so_and_after_it_is_back_completes(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    desktop = make_desktop(bandwidth_limit=6 * 1000 * 1000, chunk_size=5 * MiB, concurrency=2)
    window, model = desktop.window, desktop.session.model
    sample = make_file(30 * MiB, name="wandering.safetensors")
    away = sample.path.parent.parent / "elsewhere" / sample.path.name
    away.parent.mkdir()
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        drop(window, [sample.path])
        await until(lambda: model.rowCount() == 1 and model.rows()[0].confirmed >= 5 * MiB, 60, "a part stored")
        job_id = model.rows()[0].job_id
        window.act(job_id, RowAction.PAUSE)
        await until(lambda: model.rows()[0].status == Status.PAUSED, 30, "paused")
        sample.path.rename(away)
        window.act(job_id, RowAction.RESUME)
        await until(lambda: model.rows()[0].status == Status.FAILED, 30, "the missing file's failure")
        seen["stored"] = model.rows()[0].confirmed
        assert model.rows()[0].actions()[0] is RowAction.RETRY
        click_row_button(desktop, job_id, "primary")  # Retry, with the file still away
        await until(lambda: "still not in" in window.statusBar().currentMessage(), 30, "the still-missing sentence")
        seen["said"] = window.statusBar().currentMessage()
        seen["after"] = (model.rows()[0].status, model.rows()[0].confirmed, desktop.window.removal.asking)
        away.rename(sample.path)
        click_row_button(desktop, job_id, "primary")
        await until(lambda: model.rows()[0].status == Status.COMPLETED, 60, "the upload, file back")

    run(aloop, scenario())
    assert seen["said"] == (
        f"wandering.safetensors is still not in {sample.path.parent}. Put it back there, then press Retry."
    )
    assert seen["after"] == (Status.FAILED, seen["stored"], set())  # nothing sent, nothing given up
    done = model.rows()[0]
    assert done.result is not None and object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=sandbox.bucket).get("Contents", [])]
    assert keys.count(done.result.s3_key) == 1
    assert not [u for u in open_multipart_uploads(s3, sandbox.bucket) if u["Key"] == done.result.s3_key]
