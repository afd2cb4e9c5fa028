"""Starting, quitting, coming back, and the first run without a server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from desktop_uploader.connection import launch_sandbox
from desktop_uploader.engine.events import Completed, Queued, Started, Status, StatusChanged
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import RowAction
from desktop_uploader.engine.saved_queue import FILE_NAME as QUEUE_FILE
from desktop_uploader.gui.app import start
from desktop_uploader.gui.dialogs import CloseChoice
from desktop_uploader.gui.queue_model import UploadQueueModel
from desktop_uploader.gui.session import Link
from desktop_uploader.paths import resolve_paths
from tests.gui.conftest import answer, run, until
from tests.gui.test_queue import drop
from tests.support.logfail import RETRIED, UPLOAD_FAILED
from tests.support.storage import object_sha256, open_multipart_uploads, s3_client


def interrupted_then_opened_again(make_desktop: Any, aloop: Any, path: Path) -> Any:
    """A window that uploads ``path`` and is gone with 10 MiB of it stored, as a crash leaves it; then the
    window opened again on the same home (the same settings and resume store)."""
    first = make_desktop(bandwidth_limit=8 * 1000 * 1000, chunk_size=5 * MiB, concurrency=2)

    async def interrupt() -> None:
        drop(first.window, [path])
        await until(
            lambda: first.session.model.rowCount() and first.session.model.rows()[0].confirmed >= 10 * MiB,
            60,
            "some parts stored",
        )
        await first.session.shutdown()

    run(aloop, interrupt())
    first.window.close()
    # What a crash leaves: the queue saved while the upload ran, which lists only files waiting their turn
    # (after "Pause and quit" it lists the upload as paused, and it comes back "Paused": test_history.py).
    (first.session.paths.data_dir / QUEUE_FILE).unlink()
    return make_desktop(bandwidth_limit=0)


def test_a_new_window_shows_an_interrupted_upload_and_resume_completes_it(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    sample = make_file(30 * MiB)
    second = interrupted_then_opened_again(make_desktop, aloop, sample.path)
    [row] = second.session.model.rows()
    assert row.status == Status.INTERRUPTED and row.file_name == sample.path.name
    assert row.confirmed >= 10 * MiB and row.method == "presigned-s3"  # what's stored shows, not 0%
    assert row.actions()[:2] == [RowAction.RESUME, RowAction.DISCARD]
    assert "Interrupted" in row.status_text(0)
    events: list[Any] = []
    second.session.manager.subscribe(events.append)

    async def resume() -> None:
        second.session.act(row.job_id, RowAction.RESUME)
        await until(lambda: second.session.model.rows()[0].status == Status.COMPLETED, 60, "the resumed upload")

    run(aloop, resume())
    done = second.session.model.rows()[0]
    assert done.result is not None and object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    resumed = [e for e in events if isinstance(e, Started)]
    assert resumed and resumed[0].resumed_bytes >= 10 * MiB  # it went on; it did not start again


def test_an_interrupted_upload_shows_before_the_sandbox_is_up_and_adding_its_file_again_keeps_one_row(
    make_desktop: Any, make_file: Any, aloop: Any
) -> None:
    """A busy machine took 8–35 s to start the sandbox, and the window stayed empty all that time; an audit
    added the file again meanwhile, and it was uploaded from 0 beside its interrupted upload."""
    sample = make_file(12 * MiB)
    first = make_desktop(bandwidth_limit=4 * 1000 * 1000, chunk_size=5 * MiB, concurrency=1)

    async def interrupt() -> None:
        drop(first.window, [sample.path])
        rows = first.session.model.rows
        await until(lambda: bool(rows()) and rows()[0].confirmed >= 5 * MiB, 60, "a part stored")
        await first.session.shutdown()

    run(aloop, interrupt())
    first.window.close()
    [interrupted] = [row.job_id for row in first.session.model.rows()]
    second = make_desktop(server="", use_sandbox=True, connect=False)
    session = second.session
    at_each_link: list[tuple[Link, list[str]]] = []
    session.linkChanged.connect(lambda: at_each_link.append((session.link, [r.job_id for r in session.model.rows()])))
    messages: list[str] = []
    session.message.connect(messages.append)
    run(aloop, start(second))
    assert at_each_link[0] == (Link.CONNECTING, [interrupted])  # there while the sandbox starts
    assert session.link == Link.CONNECTED
    drop(second.window, [sample.path])
    run(aloop, until(lambda: any("Already in the queue" in m for m in messages), 30, "the answer to the drop"))
    assert [row.job_id for row in session.model.rows()] == [interrupted]


def test_closing_with_uploads_running_asks_what_to_do(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    desktop = make_desktop(bandwidth_limit=4 * 1000 * 1000)
    window = desktop.window
    quits: list[bool] = []
    window.quitRequested.connect(quits.append)

    async def scenario() -> None:
        drop(window, [make_file(20 * MiB).path])
        await until(lambda: desktop.session.running() and desktop.session.model.summary.active, 30, "an upload")
        window.close()
        await answer(window, "closeQuestion", CloseChoice.STAY.value)
        assert window.isVisible() and quits == []
        window.close()
        await answer(window, "closeQuestion", CloseChoice.PAUSE_AND_QUIT.value)
        await until(lambda: quits == [False], 5, "the quit request")

    run(aloop, scenario())


def test_first_run_offers_the_sandbox_and_shows_where_files_go(make_desktop: Any, aloop: Any, make_file: Any) -> None:
    desktop = make_desktop(server="", connect=True)
    window, session = desktop.window, desktop.session
    assert session.link == Link.NEEDS_SETUP
    assert window.empty.setup.isVisible() and window.server_label.text() == "Server: No server set up"

    async def scenario() -> None:
        window.empty.setup.try_local.click()
        await until(lambda: session.link == Link.CONNECTED, 60, "the local sandbox")
        drop(window, [make_file(2 * MiB).path])
        await until(
            lambda: session.model.rowCount() and session.model.rows()[0].status == Status.COMPLETED,
            60,
            "an upload to the sandbox",
        )

    run(aloop, scenario())
    assert window.server_label.text() == "Server: Test storage (this computer)"
    assert window.banner.isVisible()
    assert window.banner.text().startswith("Files you add go to a test storage on this computer: s3://")
    assert session.settings.use_sandbox and not window.empty.setup.isVisible()


def test_row_menu_copy_rename_and_keyboard(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    desktop = make_desktop(auto_start=False)
    window, session = desktop.window, desktop.session
    sample = make_file(6 * MiB, name="anime-style.safetensors")

    async def scenario() -> None:
        drop(window, [sample.path])
        await until(lambda: session.model.rowCount() == 1, 10, "the row")
        index = session.model.index(0)
        assert session.model.setData(index, "Anime style v2")  # the editable display name
        window.view.setCurrentIndex(index)
        window.view.setFocus()
        QtBot.keyClick(window.view, Qt.Key.Key_Space)  # Space starts a waiting upload
        await until(lambda: session.model.rows()[0].status == Status.COMPLETED, 60, "the upload")

    run(aloop, scenario())
    row = session.model.rows()[0]
    assert row.result is not None
    head = s3.head_object(Bucket=sandbox.bucket, Key=row.result.s3_key)
    assert urllib.parse.unquote(head["Metadata"]["display-name"]) == "Anime style v2"
    labels = [label for label, _ in window.menu_entries(row)]
    assert labels == ["Remove from list", "Copy ComfyUI path", "Copy S3 path"]
    dict(window.menu_entries(row))["Copy ComfyUI path"]()
    assert QGuiApplication.clipboard().text() == row.result.comfyui_path
    dict(window.menu_entries(row))["Copy S3 path"]()
    assert QGuiApplication.clipboard().text() == row.result.network_volume_path
    QtBot.keyClick(window.view, Qt.Key.Key_Delete)  # Del removes a finished row
    run(aloop, until(lambda: session.model.rowCount() == 0, 5, "the row to go"))
    assert window.pages.currentIndex() == 0


def test_the_queue_model_passes_qts_model_tester(qtmodeltester: Any) -> None:
    model = UploadQueueModel()
    for number in range(5):
        model.apply_event(Queued(f"job{number}", f"/tmp/file{number}.safetensors", f"file {number}", 100 * number))
    model.apply_event(StatusChanged("job1", Status.UPLOADING))
    model.apply_event(Completed("job2", _result()))
    model.flush()
    # The Python tester fails by assertion, where Qt's only logs; its running commentary goes to stdout, and
    # from signals after the test too, so it is kept quiet.
    qtmodeltester._debug = lambda text: None
    qtmodeltester.check(model, force_py=True)


def _result() -> Any:
    from desktop_uploader.engine.events import UploadResult

    return UploadResult("presigned-s3", 200, "u_1_f.safetensors", "loras/u/u_1_f.safetensors", "/c", "s3://b/k", "e")


def test_closing_right_after_the_last_upload_finished_quits_without_asking(make_desktop: Any, qtbot: QtBot) -> None:
    """The summary is refreshed on a timer; closing must not ask about an upload that has just completed."""
    desktop = make_desktop(connect=False)
    window, model = desktop.window, desktop.session.model
    model.apply_event(Queued("job", "/tmp/done.safetensors", "done.safetensors", 100))
    qtbot.waitUntil(lambda: model.rowCount() == 1)  # arrivals are inserted together, on the next turn
    model.apply_event(StatusChanged("job", Status.UPLOADING))
    model.flush()
    assert model.summary.active == 1
    for finished in (Completed("job", _result()), StatusChanged("job", Status.COMPLETED)):  # as the engine sends
        model.apply_event(finished)  # arrived, but the summary has not been refreshed yet
    with qtbot.waitSignal(window.quitRequested, timeout=1000) as quitting:
        window.close()
    assert quitting.args == [False]  # quit, cancelling nothing, and no "uploads are running" question


@pytest.mark.allow_log(r"gui\.session: The local sandbox had stopped", *RETRIED, *UPLOAD_FAILED)
@pytest.mark.parametrize(
    ("killed", "then"),
    [("sandbox", "Retry"), ("sandbox", "the file dropped again"), ("its storage server", "its own next try")],
)
def test_a_sandbox_that_died_is_started_again_by_retry(
    make_desktop: Any, aloop: Any, make_file: Any, killed: str, then: str
) -> None:
    """A GUI audit's test storage was killed: the rows said "127.0.0.1:… refused the connection" and Retry
    failed the same way until the app was restarted. A network audit killed only its weed: the API then
    answered 503 to every Retry. Retry starts a new sandbox; without it, the upload's own next try does.
    Dropping the failed file again is a Retry too (it was "Already in the queue", and stayed unsent)."""
    desktop = make_desktop(server="", connect=True, use_sandbox=True, bandwidth_limit=2 * 1000 * 1000)
    window, session = desktop.window, desktop.session
    sample = make_file(16 * MiB, name="survivor.safetensors")
    messages: list[str] = []
    session.message.connect(messages.append)

    def status() -> Status | None:
        rows = session.model.rows()
        return rows[0].status if rows else None

    async def scenario() -> None:
        await until(lambda: session.link == Link.CONNECTED and session.sandbox is not None, 60, "the sandbox")
        first = session.sandbox
        assert first is not None and first.process is not None
        drop(window, [sample.path])
        await until(lambda: session.model.rowCount() and session.model.rows()[0].confirmed > 0, 60, "a stored part")
        if killed == "sandbox":
            first.process.kill()  # by pid: ours
        else:
            session.reconnect.delays = (0.3,) * 5  # its next try comes by itself, soon
            [weed] = [c for c in psutil.Process(first.process.pid).children() if "weed" in " ".join(c.cmdline())]
            weed.kill()
        first.process.wait(30)
        await until(lambda: status() is Status.FAILED, 120, "the failure")
        assert any("has stopped; it starts again with the upload's next try." in m for m in messages), messages
        if then == "Retry":
            session.act(session.model.rows()[0].job_id, RowAction.RETRY)  # Retry goes at once
        elif then == "the file dropped again":
            drop(window, [sample.path])
            await until(lambda: "Going on with survivor.safetensors from where it stopped." in messages, 30, "the word")
        await until(lambda: status() is Status.COMPLETED, 180, "the retried upload")
        assert session.sandbox is not None and session.sandbox is not first and not session.sandbox.stopped()
        # The dead one's lease was let go: one left, the new sandbox's, so it stops when the window does.
        assert len(list((session.paths.sandbox_dir / "users").glob("*.lock"))) == 1

    run(aloop, scenario())
    assert_stored_once_on_the_sandbox(session, sample)


@pytest.mark.allow_log(r"gui\.session: The local sandbox had stopped", *RETRIED, *UPLOAD_FAILED)
def test_someone_else_s_sandbox_that_stopped_is_replaced_by_the_window_s_own(
    make_desktop: Any, aloop: Any, make_file: Any
) -> None:
    """The window joins a sandbox that is already running, as one a `desktop-uploader sandbox` in a terminal
    runs. Ctrl-C there stopped it, and every upload of the window failed with "refused the connection" until
    the app was restarted: only a sandbox the window had started itself was known to stop."""
    other = launch_sandbox(resolve_paths().ensure())
    try:
        assert other.process is not None
        desktop = make_desktop(server="", connect=True, use_sandbox=True, bandwidth_limit=2 * 1000 * 1000)
        window, session = desktop.window, desktop.session
        sample = make_file(16 * MiB, name="outlived.safetensors")
        messages: list[str] = []
        session.message.connect(messages.append)

        async def scenario() -> None:
            await until(lambda: session.link == Link.CONNECTED and session.sandbox is not None, 60, "the sandbox")
            joined = session.sandbox
            assert joined is not None and joined.process is None, "the window joined the running sandbox"
            assert joined.info.api_url == other.info.api_url and not joined.stopped()
            session.reconnect.delays = (0.3,) * 5  # its next try comes by itself, soon
            drop(window, [sample.path])
            await until(lambda: session.model.rowCount() and session.model.rows()[0].confirmed > 0, 60, "a part")
            assert other.process is not None
            other.process.send_signal(signal.SIGINT)  # Ctrl-C in its terminal
            other.process.wait(30)
            await until(lambda: first_status(session) is Status.FAILED, 120, "the failure")
            assert any("has stopped; it starts again with the upload's next try." in m for m in messages), messages
            await until(lambda: first_status(session) is Status.COMPLETED, 180, "the upload's next try")
            assert session.sandbox is not None and session.sandbox is not joined
            assert session.sandbox.process is not None, "the window runs its own sandbox now"

        run(aloop, scenario())
        assert_stored_once_on_the_sandbox(session, sample)
    finally:
        other.stop()


def first_status(session: Any) -> Status | None:
    rows = session.model.rows()
    return rows[0].status if rows else None


def assert_stored_once_on_the_sandbox(session: Any, sample: Any) -> None:
    """What a user would check: the file's bytes, stored once, and nothing half-done left on the sandbox."""
    result = session.model.rows()[0].result
    assert result is not None and session.sandbox is not None
    storage, bucket = s3_client(session.sandbox.info), session.sandbox.info.bucket
    assert object_sha256(storage, bucket, result.s3_key) == sample.sha256
    listed = storage.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed if o["Key"].endswith(sample.path.name)] == [result.s3_key]
    assert open_multipart_uploads(storage, bucket) == []


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_resume_after_another_command_finished_the_upload_sends_nothing_again(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    """A resume audit's window showed an interrupted upload; ``desktop-uploader resume --all`` finished it in a
    terminal; the window's Resume then sent the whole file again and stored it twice."""
    sample = make_file(30 * MiB, name=f"taken-{uuid.uuid4().hex[:8]}.safetensors")
    second = interrupted_then_opened_again(make_desktop, aloop, sample.path)
    [row] = second.session.model.rows()
    assert row.status == Status.INTERRUPTED

    finished = subprocess.run(
        [sys.executable, "-m", "desktop_uploader", "resume", "--all", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr
    [elsewhere] = json.loads(finished.stdout)["uploads"]
    assert elsewhere["status"] == "completed"

    async def resume() -> None:
        second.session.act(row.job_id, RowAction.RESUME)
        await until(lambda: second.session.model.rows()[0].status == Status.FAILED, 60, "the resume to end")

    run(aloop, resume())
    ended = second.session.model.rows()[0]
    assert ended.status_text(0) == (
        "Failed: Another Desktop Uploader window or command finished or discarded this upload meanwhile, "
        "so nothing was sent. To send the file again, add it again."
    )
    assert RowAction.RETRY not in ended.actions()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=sandbox.bucket, Prefix="loras/sandbox-user/")
    stored = [item["Key"] for page in pages for item in page.get("Contents", []) if sample.path.stem in item["Key"]]
    assert stored == [elsewhere["s3Key"]], "stored once"
    assert object_sha256(s3, sandbox.bucket, stored[0]) == sample.sha256
    left = [
        u for u in open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/") if sample.path.stem in u["Key"]
    ]
    assert left == [], "no orphan of this file"
