"""The window offers the server's unfinished uploads once the resume store that knew them is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint

from desktop_uploader.engine.events import Started, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.saved_queue import FILE_NAME as QUEUE_FILE
from desktop_uploader.paths import resolve_paths
from tests.gui.conftest import answer, run, until
from tests.gui.test_queue import drop
from tests.support.api_servers import OwnUser, own_user_server
from tests.support.storage import object_sha256, open_multipart_uploads


@pytest.fixture
def user(sandbox: Any, tmp_path: Path) -> Iterator[OwnUser]:
    with own_user_server(sandbox, tmp_path / "api") as own:
        yield own


def test_after_the_store_is_lost_the_window_offers_to_continue_or_discard(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any, user: OwnUser
) -> None:
    first_file, second_file = make_file(30 * MiB, name="first.safetensors"), make_file(30 * MiB, name="second.ckpt")
    first = make_desktop(user.url, user.token, bandwidth_limit=16 * 1000 * 1000, chunk_size=5 * MiB, concurrency=2)
    assert not first.window.server_uploads_notice.isVisible(), "nothing on the server yet: nothing said"

    async def interrupt() -> None:
        drop(first.window, [first_file.path, second_file.path])
        await until(
            lambda: (
                first.session.model.rowCount() == 2
                and all(row.confirmed >= 10 * MiB for row in first.session.model.rows())
            ),
            60,
            "some parts of both stored",
        )
        await first.session.shutdown()  # quitting with "Pause and quit"

    run(aloop, interrupt())
    first.window.close()
    state_db = resolve_paths().state_db
    for suffix in ("", "-wal", "-shm"):  # the resume store is lost
        Path(f"{state_db}{suffix}").unlink(missing_ok=True)
    (state_db.parent / QUEUE_FILE).unlink(missing_ok=True)  # and the saved queue beside it (another computer)
    assert len(open_multipart_uploads(s3, sandbox.bucket, user.prefix)) == 2

    second = make_desktop(user.url, user.token, bandwidth_limit=0)
    notice = second.window.server_uploads_notice
    assert second.session.model.rowCount() == 0, "the store that knew them is gone"
    assert notice.isVisible()
    # Above the page, full width; in the status bar it crushed every other message there to "Adc".
    window = second.window
    assert not window.statusBar().isAncestorOf(notice)
    assert notice.mapTo(window, notice.rect().bottomLeft()).y() <= window.pages.mapTo(window, QPoint(0, 0)).y()
    assert notice.width() >= window.pages.width()
    assert notice.label.text() == (
        "2 unfinished uploads on the server from earlier. Drop the same file again to continue it, or discard."
    )
    events: list[Any] = []
    second.session.manager.subscribe(events.append)

    async def continue_first() -> None:
        drop(second.window, [first_file.path])
        await until(
            lambda: second.session.model.rowCount() == 1 and second.session.model.rows()[0].status == Status.COMPLETED,
            60,
            "the continued upload",
        )
        await until(lambda: notice.label.text().startswith("1 unfinished upload on the server"), 10, "one left")

    run(aloop, continue_first())
    [done] = second.session.model.rows()
    assert done.result is not None and object_sha256(s3, sandbox.bucket, done.result.s3_key) == first_file.sha256
    [started] = [e for e in events if isinstance(e, Started)]
    assert started.resumed_bytes >= 10 * MiB and done.result.bytes_sent <= first_file.size - started.resumed_bytes
    [left] = open_multipart_uploads(s3, sandbox.bucket, user.prefix)
    assert left["Key"].endswith("_second.ckpt")

    async def discard_the_rest() -> None:
        notice.button.click()
        await answer(second.window, "discardServerUploadsQuestion", "Discard")
        await until(lambda: not notice.isVisible(), 20, "the notice to go")

    run(aloop, discard_the_rest())
    assert open_multipart_uploads(s3, sandbox.bucket, user.prefix) == []
    assert "Removed 1 unfinished upload from the server." in second.window.statusBar().currentMessage()
