"""Uploads to your own S3 storage as the window tells of them afterwards: a copy dropped again is asked
about as "in your S3 storage", not "on this server", and History says where each file is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_uploader.engine.limits import MiB
from tests.gui.conftest import answer, run, until
from tests.gui.test_history import a_copy_of_an_upload, already_uploaded_question, open_history, stored_keys, unique
from tests.gui.test_queue import drop
from tests.gui.test_settings_and_server import save_button, settings_going_direct, type_keys


def test_a_copy_of_a_file_in_your_own_s3_storage_is_asked_about_as_in_it(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A direct-S3 audit was told its bucket was "this server"."""
    desktop, dialog = settings_going_direct(make_desktop)
    type_keys(dialog, sandbox, sandbox.secret_key)
    save_button(dialog).click()  # the keys are tested first
    run(aloop, until(lambda: desktop.session.manager.direct is not None, 30, "the direct target"))
    original, copy = a_copy_of_an_upload(desktop, aloop, make_file(2 * MiB, unique("original")), tmp_path)
    messages: list[str] = []
    desktop.session.message.connect(messages.append)
    seen: dict[str, str] = {}

    async def offer() -> None:
        drop(desktop.window, [copy])
        seen["text"] = (await already_uploaded_question(desktop)).text()
        await answer(desktop.window, "alreadyUploadedQuestion", "Skip")

    run(aloop, offer())
    [row] = desktop.session.model.rows()
    assert row.result is not None and row.method == "direct-s3"
    stored_as = f"s3://{sandbox.bucket}/{row.result.s3_key}"
    assert seen["text"].startswith(
        f"{copy.name} has the same contents as {original.path.name}, which is already in "
        "your S3 storage: it was uploaded on "
    )
    assert seen["text"].endswith(f" as {stored_as}.")
    assert f"Checking whether {copy.name} is already in your S3 storage…" in messages
    assert (
        stored_keys(s3, sandbox.bucket, copy.stem) == []
        and len(stored_keys(s3, sandbox.bucket, original.path.stem)) == 1
    )
    host = sandbox.s3_endpoint.split("//", 1)[1]
    dialog = open_history(desktop, aloop)
    [item] = [dialog.list.topLevelItem(i) for i in range(dialog.list.topLevelItemCount())]
    # A direct-S3 audit's History had an empty ComfyUI column, and the endpoint with the bucket pasted on as a path.
    assert dialog.list.headerItem().text(1) == "Stored at" and item.text(1) == stored_as
    assert item.text(5) == item.toolTip(5) == f"your S3 bucket {sandbox.bucket}/loras ({host})"
