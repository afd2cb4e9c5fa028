"""The first run can't get stuck (issue 14, major 1): a file added with no server asks where to go, once.

The real window, offscreen, with no server set up and the sandbox not chosen yet. "Try it on this
computer" starts a real local sandbox and the queued file goes there; "Connect to my server" opens
the settings. Queued rows always say what they wait for.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox

from desktop_uploader.connection import Link
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.gui.app import start
from desktop_uploader.gui.dialogs import FirstRunChoice
from desktop_uploader.gui.first_run import wait_reason
from desktop_uploader.gui.queue_model import Role
from tests.gui.conftest import answer, run, until
from tests.gui.test_queue import drop
from tests.support.storage import object_sha256, s3_client


def first_run_boxes(window: Any) -> list[QMessageBox]:
    return [b for b in window.findChildren(QMessageBox, "firstRunQuestion") if b.isVisible()]


def test_a_drop_with_no_server_asks_once_and_the_sandbox_answer_uploads_the_file(
    make_desktop: Any, make_file: Any, aloop: Any
) -> None:
    desktop = make_desktop(server="")
    window, session = desktop.window, desktop.session
    assert session.link == Link.NEEDS_SETUP
    sample = make_file(6 * MiB, name="first.safetensors")
    said: list[str] = []
    while_starting: list[str] = []

    def link_changed() -> None:  # connected after the window's own slots: it sees what they made of it
        if session.link == Link.CONNECTING and session.model.rowCount():
            while_starting.append(session.model.data(session.model.index(0), Role.STATUS_TEXT))

    session.linkChanged.connect(link_changed)

    async def scenario() -> None:
        drop(window, [sample.path])
        await until(lambda: first_run_boxes(window), 10, "the first-run question")
        [box] = first_run_boxes(window)
        said.append(box.text())
        # While the question is open the file is queued, and its row says why it doesn't move.
        row = session.model.rows()[0]
        said.append(session.model.data(session.model.index(0), Role.STATUS_TEXT))
        assert row.status == Status.QUEUED
        await answer(window, "firstRunQuestion", FirstRunChoice.SANDBOX.value)
        await until(lambda: session.link == Link.CONNECTED, 90, "the local sandbox")
        await until(lambda: session.model.rows()[0].status == Status.COMPLETED, 60, "the upload to the sandbox")

    run(aloop, scenario())
    assert "No upload server is set up yet" in said[0] and "waits in the queue" in said[0]
    assert said[1] == "Waiting for a server: choose one in Settings"
    assert while_starting == ["Waiting for the sandbox to start"]
    row = session.model.rows()[0]
    assert session.sandbox is not None and row.result is not None
    s3 = s3_client(session.sandbox.info)
    assert object_sha256(s3, session.sandbox.info.bucket, row.result.s3_key) == sample.sha256
    assert session.settings.use_sandbox  # the choice is kept: the next start doesn't ask again


def test_the_server_answer_opens_settings_and_the_question_is_not_asked_twice(
    make_desktop: Any, make_file: Any, aloop: Any
) -> None:
    desktop = make_desktop(server="")
    window, session = desktop.window, desktop.session

    async def scenario() -> None:
        drop(window, [make_file(1000, name="one.safetensors").path])
        await answer(window, "firstRunQuestion", FirstRunChoice.SERVER.value)
        await until(lambda: getattr(window, "settings_dialog", None) is not None, 10, "the settings dialog")
        dialog = window.settings_dialog
        await until(dialog.isVisible, 10, "the settings dialog to show")
        dialog.reject()  # the person closes it without saving
        await until(lambda: not dialog.isVisible(), 10, "settings to close")
        drop(window, [make_file(1000, name="two.safetensors").path])
        await until(lambda: session.model.rowCount() == 2, 10, "the second row")

    run(aloop, scenario())
    assert window.first_run.choices == [FirstRunChoice.SERVER]  # asked once, not for the second file
    assert not first_run_boxes(window)
    # Still no server: the rows wait, and say so, instead of a bare "Queued".
    texts = {session.model.data(session.model.index(i), Role.STATUS_TEXT) for i in range(2)}
    assert texts == {"Waiting for a server: choose one in Settings"}
    assert all(r.status == Status.QUEUED for r in session.model.rows())
    run(aloop, session.shutdown())  # the window closes after the test without asking about the waiting files


def test_a_queued_row_behind_a_running_one_waits_for_a_free_slot(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    desktop = make_desktop(files_at_once=1, bandwidth_limit=4 * 1000 * 1000, chunk_size=5 * MiB)
    session = desktop.session
    first, second = make_file(20 * MiB, name="a.safetensors"), make_file(1000, name="b.safetensors")

    async def scenario() -> None:
        drop(desktop.window, [first.path, second.path])
        await until(
            lambda: session.model.rowCount() == 2 and session.model.rows()[0].status.active, 30, "the first upload"
        )

    run(aloop, scenario())
    waiting = session.model.rows()[1]
    assert waiting.status == Status.QUEUED
    assert session.model.data(session.model.index(1), Role.STATUS_TEXT) == "Waiting for a free slot"
    assert not first_run_boxes(desktop.window)  # a server is set up: nothing to ask
    run(aloop, session.shutdown(cancel=True))  # nothing of this test stays on the shared sandbox


def test_every_connection_state_gives_a_queued_row_a_reason() -> None:
    assert wait_reason(Link.CONNECTING) == "Waiting for the sandbox to start"
    assert wait_reason(Link.NEEDS_SETUP) == "Waiting for a server: choose one in Settings"
    assert wait_reason(Link.FAILED).startswith("Waiting for the server to answer")
    assert wait_reason(None) == "Waiting for the connection to the server"
    assert wait_reason(Link.CONNECTED) == ""  # then only a free slot, which the row says itself
    assert wait_reason(Link.NEEDS_SETUP, direct=True) == ""  # direct-to-S3 needs no upload server


def test_files_named_on_the_command_line_with_no_server_ask_too(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    desktop = make_desktop(server="", connect=False)
    window, session = desktop.window, desktop.session
    sample = make_file(1000, name="opened-with.safetensors")

    async def scenario() -> None:
        await start(desktop, [str(sample.path)])  # as `desktop-uploader file.safetensors` does
        await answer(window, "firstRunQuestion", FirstRunChoice.LATER.value)
        await until(lambda: window.first_run.choices, 5, "the answer")

    run(aloop, scenario())
    assert window.first_run.choices == [FirstRunChoice.LATER]
    [row] = session.model.rows()
    assert row.status == Status.QUEUED and row.status_text(0) == "Waiting for a server: choose one in Settings"
    run(aloop, session.shutdown())
