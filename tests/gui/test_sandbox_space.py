"""File › Empty test storage…: the space test uploads took on this computer, given back on request.

A first-time user tries the app on the local sandbox with a few checkpoints; the sandbox keeps each
one, whole, in the user data folder, and nothing in the window said so or offered to free it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox

from desktop_uploader.connection import launch_sandbox, sandbox_stored
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import RowAction
from desktop_uploader.gui.sandbox_space import EMPTY_IT, QUESTION
from desktop_uploader.gui.session import Link
from desktop_uploader.paths import resolve_paths
from desktop_uploader.sandbox.storage_use import IN_USE
from tests.gui.conftest import answer, run, until
from tests.gui.test_queue import drop
from tests.support.storage import object_sha256, s3_client


def test_emptying_the_window_s_own_sandbox_deletes_its_uploads_and_starts_it_again_empty(
    make_desktop: Any, aloop: Any, make_file: Any
) -> None:
    desktop = make_desktop(server="", connect=True, use_sandbox=True)
    window, session = desktop.window, desktop.session
    sample = make_file(24 * MiB, name="tried-once.safetensors")
    messages: list[str] = []
    session.message.connect(messages.append)
    held: list[int] = []

    async def scenario() -> None:
        await until(lambda: session.link == Link.CONNECTED and session.sandbox is not None, 60, "the sandbox")
        held.append(sandbox_stored(session.paths))
        drop(window, [sample.path])
        await until(lambda: session.model.rowCount() and session.model.rows()[0].status is Status.COMPLETED, 120, "up")
        first = session.sandbox
        held.append(sandbox_stored(session.paths))
        assert held[1] > held[0], "the sandbox keeps what was uploaded, on this computer"
        window.empty_test_storage_action.trigger()
        await answer(window, QUESTION, EMPTY_IT)
        await until(lambda: any(m.startswith("Emptied the test storage: ") for m in messages), 120, "emptied")
        await until(lambda: session.link == Link.CONNECTED, 60, "the sandbox started again")
        assert session.sandbox is not None and session.sandbox is not first and not session.sandbox.stopped()
        assert sandbox_stored(session.paths) < held[1]
        # Its file is gone: the row no longer offers to copy the path of a deleted file (a GUI audit's was left).
        await until(lambda: session.model.rowCount() == 0, 10, "the finished row cleared")

        # Tried again after emptying: it is not "already on this server" any more, so it is simply sent.
        drop(window, [sample.path])
        await until(lambda: session.model.rowCount() == 1, 30, "the new row")
        await until(lambda: session.model.rows()[0].status is Status.COMPLETED, 120, "the upload, sent again")
        assert window.findChild(QMessageBox, "alreadyUploadedQuestion") is None

    run(aloop, scenario())
    [said] = [m for m in messages if m.startswith("Emptied")]
    assert said.endswith(" freed. 1 finished upload was cleared from the list.") and "MiB" in said, said
    assert session.sandbox is not None
    storage, bucket = s3_client(session.sandbox.info), session.sandbox.info.bucket
    second = session.model.rows()[0].result
    assert second is not None and object_sha256(storage, bucket, second.s3_key) == sample.sha256
    keys = [o["Key"] for o in storage.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [second.s3_key], "the first upload went with the emptied store; the second is the only one"


def test_a_sandbox_someone_else_uses_is_not_emptied(make_desktop: Any, aloop: Any) -> None:
    """A command or a terminal's `desktop-uploader sandbox` uploads to it: nothing is taken from under it."""
    desktop = make_desktop()  # on a server of its own: the sandbox is someone else's business here
    window, session = desktop.window, desktop.session
    other = launch_sandbox(resolve_paths().ensure())
    try:
        storage = s3_client(other.info)
        storage.put_object(Bucket=other.info.bucket, Key="loras/theirs.safetensors", Body=b"x" * MiB)
        messages: list[str] = []
        session.message.connect(messages.append)

        async def scenario() -> None:
            window.empty_test_storage_action.trigger()
            await answer(window, QUESTION, EMPTY_IT)
            await until(lambda: IN_USE in messages, 30, "the refusal")

        run(aloop, scenario())
        body = storage.get_object(Bucket=other.info.bucket, Key="loras/theirs.safetensors")["Body"].read()
        assert body == b"x" * MiB and not other.stopped()
    finally:
        other.stop()


def test_uploads_still_in_the_list_keep_the_window_s_sandbox_as_it_is(
    make_desktop: Any, aloop: Any, make_file: Any
) -> None:
    """Emptying would take the parts an upload stored from under it: the window says what to do first."""
    desktop = make_desktop(server="", connect=True, use_sandbox=True, bandwidth_limit=2 * 1000 * 1000)
    window, session = desktop.window, desktop.session
    messages: list[str] = []
    session.message.connect(messages.append)

    async def scenario() -> None:
        await until(lambda: session.link == Link.CONNECTED and session.sandbox is not None, 60, "the sandbox")
        drop(window, [make_file(16 * MiB, name="still-going.safetensors").path])
        await until(lambda: session.model.rowCount() and session.model.rows()[0].confirmed > 0, 60, "a stored part")
        window.empty_test_storage_action.trigger()
        await until(lambda: any(m.startswith("Finish or remove the uploads") for m in messages), 10, "the refusal")

        assert window.findChild(QMessageBox, QUESTION) is None, "nothing was asked"
        assert session.sandbox is not None and not session.sandbox.stopped()
        [row] = session.model.rows()
        assert row.status is Status.UPLOADING
        session.act(row.job_id, RowAction.CANCEL)  # so that closing the window asks nothing
        await until(lambda: session.model.rows()[0].status is Status.CANCELLED, 30, "the cancel")

    run(aloop, scenario())
