"""Dropping files, uploading, and acting on rows, as a person would in the real window."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import RowAction
from desktop_uploader.gui.queue_delegate import row_text, secondary_action
from desktop_uploader.gui.queue_model import Role
from tests.gui.conftest import answer, run, until
from tests.support.logfail import UPLOAD_FAILED
from tests.support.storage import object_sha256, open_multipart_uploads


def drop(window: Any, paths: list[Path]) -> None:
    """A drag entering the window, moving, and dropping: the events a person's drag produces."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    rest = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter, move = QDragEnterEvent(QPoint(200, 200), *rest), QDragMoveEvent(QPoint(200, 200), *rest)
    for event in (enter, move, QDropEvent(QPointF(200, 200), *rest)):
        QApplication.sendEvent(window, event)
        assert event.isAccepted(), f"{type(event).__name__} refused"


def statuses(desktop: Any) -> dict[str, Status]:
    return {row.file_name: row.status for row in desktop.session.model.rows()}


def test_a_real_drop_of_files_and_folders_queues_them(
    make_desktop: Any, make_file: Any, aloop: Any, tmp_path: Path
) -> None:
    desktop = make_desktop(auto_start=False)
    window = desktop.window
    assert window.pages.currentIndex() == 0, "the empty state invites a drop"
    single = make_file(1000, name="solo.safetensors")
    nested = make_file(2000, name="pack/inner/deep.ckpt")
    notes = single.path.parent / "pack" / "readme.txt"
    notes.write_text("not a model")
    make_file(1000, name="pack/.cache/kept-aside.safetensors")  # hidden: skipped, and said
    make_file(1000, name="pack/.hidden.ckpt")

    async def scenario() -> None:
        drop(window, [single.path, single.path.parent / "pack"])  # no question for the folder's readme
        await until(lambda: desktop.session.model.rowCount() == 2, what="two rows")
        await until(lambda: "Added 2 files" in window.statusBar().currentMessage(), what="the drop's sentence")
        assert window.findChild(QMessageBox, "otherFilesQuestion") is None
        assert window.statusBar().currentMessage() == (
            "Added 2 files. Skipped 1 file that isn't a model. Skipped 2 hidden model files, e.g. pack/.hidden.ckpt."
        )
        drop(window, [single.path])  # the same file again is not queued twice
        await until(lambda: "Already in the queue" in window.statusBar().currentMessage(), what="duplicate note")
        (tmp_path / "just made").mkdir()
        drop(window, [tmp_path / "just made"])  # it read only "Added 0 files."
        await until(lambda: "has no files" in window.statusBar().currentMessage(), what="the empty folder's sentence")
        assert window.statusBar().currentMessage() == "Added 0 files. The folder just made has no files in it."

    run(aloop, scenario())
    assert set(statuses(desktop)) == {"solo.safetensors", "deep.ckpt"}
    assert all(s == Status.PAUSED for s in statuses(desktop).values())  # "start automatically" is off
    assert window.pages.currentIndex() == 1
    # The folder's model file was found two levels down, and its row points at that file, at its size.
    rows = {row.file_name: row for row in desktop.session.model.rows()}
    assert (rows["deep.ckpt"].path, rows["deep.ckpt"].size) == (nested.path, nested.size)
    assert (rows["solo.safetensors"].path, rows["solo.safetensors"].size) == (single.path, single.size)


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_file_the_server_refuses_offers_remove_not_a_retry_that_would_be_refused_again(
    make_desktop: Any, make_file: Any, aloop: Any
) -> None:
    """A first-time user's .txt: the server turns its type down, and another try can only be turned down again."""
    desktop = make_desktop()
    window, model = desktop.window, desktop.session.model
    notes = make_file(1000, name="notes.txt")

    async def scenario() -> None:
        drop(window, [notes.path])
        await answer(window, "otherFilesQuestion", "Add it")
        await until(lambda: model.rowCount() == 1 and model.rows()[0].status == Status.FAILED, 60, "the refusal")
        window.view.setCurrentIndex(model.index(0))

    run(aloop, scenario())
    row = model.rows()[0]
    assert row.status_text(0).startswith("Failed: Files of type '.txt' are not accepted.")
    assert row.actions() == [RowAction.REMOVE, RowAction.COPY_MESSAGE]
    assert (row.primary_action(), secondary_action(row)) == (None, RowAction.REMOVE), "the row's own buttons"
    assert window.row_actions.visible_actions() == [RowAction.REMOVE], "the keyboard's buttons"
    # The sentence, cut to the row's width, can be passed on whole (an audit found it only in a tooltip).
    dict(window.menu_entries(row))["Copy message"]()
    assert row.status_text(0) == f"Failed: {QGuiApplication.clipboard().text()}"
    assert QGuiApplication.clipboard().text().endswith(".safetensors, .ckpt, .pt, .pth, .bin, .gguf, .onnx.")
    assert window.statusBar().currentMessage() == "Message copied."
    window.row_actions.buttons[RowAction.REMOVE].click()
    run(aloop, until(lambda: model.rowCount() == 0, 10, "the row to go"))


def test_a_20_mib_file_uploads_and_its_row_shows_method_and_100_percent(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    desktop = make_desktop()
    sample = make_file(20 * MiB, name="lora.safetensors")
    model = desktop.session.model

    async def scenario() -> None:
        drop(desktop.window, [sample.path])
        await until(lambda: model.rowCount() == 1 and model.rows()[0].status == Status.COMPLETED, 60, "completion")
        await until(lambda: model.data(model.index(0), Role.PERCENT) == 100, 5, "the row to repaint at 100%")
        await until(lambda: "1 of 1 done" in desktop.window.summary_label.text(), 5, "the status bar summary")

    run(aloop, scenario())
    index = model.index(0)
    assert model.data(index, Role.METHOD) == "presigned-s3"
    row = model.rows()[0]
    assert row.result is not None and object_sha256(s3, sandbox.bucket, row.result.s3_key) == sample.sha256
    # The name storage gave it (the server makes it unique), which is what ComfyUI lists, is on the row.
    stored_as = row.result.s3_key.rsplit("/", 1)[-1]
    assert stored_as != sample.path.name and stored_as.endswith("lora.safetensors")
    assert model.data(index, Role.STATUS_TEXT) == f"Completed · stored as {stored_as}"
    assert desktop.window.server_label.text().startswith("Server: 127.0.0.1:")


def click_row_button(desktop: Any, job_id: str, which: str) -> None:
    """Click the painted button of a row, where a person would."""
    window = desktop.window
    index = desktop.session.model.index_of(job_id)
    option = window.view.viewOptions() if hasattr(window.view, "viewOptions") else None
    from PySide6.QtWidgets import QStyleOptionViewItem

    option = QStyleOptionViewItem()
    window.view.initViewItemOption(option)
    option.rect = window.view.visualRect(index)
    geometry = window.delegate.layout(option)
    point: QPoint = getattr(geometry, which).center()
    from pytestqt.qtbot import QtBot

    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)


def test_pause_then_resume_completes_and_cancel_leaves_nothing(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    desktop = make_desktop(bandwidth_limit=8 * 1000 * 1000, chunk_size=5 * MiB, concurrency=2)
    model, session = desktop.session.model, desktop.session
    keep = make_file(30 * MiB, name="keep.safetensors")
    drop_it = make_file(30 * MiB, name="drop.safetensors")

    async def scenario() -> None:
        drop(desktop.window, [keep.path, drop_it.path])
        await until(
            lambda: model.rowCount() == 2 and all(r.confirmed >= 5 * MiB for r in model.rows()),
            60,
            "both uploads under way",
        )
        kept, dropped = model.rows()
        click_row_button(desktop, kept.job_id, "primary")  # the Pause button
        await until(lambda: kept.status == Status.PAUSED, 10, "pause")
        assert RowAction.RESUME in kept.actions() and kept.status_text(0) == "Paused"
        click_row_button(desktop, kept.job_id, "secondary")  # paused: nothing to "keep uploading"
        await until(lambda: desktop.window.findChild(QMessageBox, "cancelQuestion") is not None, 10, "the question")
        box = desktop.window.findChild(QMessageBox, "cancelQuestion")
        asked = (box.windowTitle(), box.defaultButton().text(), [b.text() for b in box.buttons()])
        await answer(desktop.window, "cancelQuestion", "Keep it")
        assert asked[:2] == ("Discard this upload?", "Keep it") and sorted(asked[2]) == ["Discard upload", "Keep it"]
        record = session.state.get(dropped.job_id)
        assert record is not None and record.s3_key
        click_row_button(desktop, dropped.job_id, "secondary")  # the Cancel button
        await answer(desktop.window, "cancelQuestion", "Cancel upload")  # it has bytes stored: asked first
        await until(lambda: dropped.status == Status.CANCELLED, 15, "cancel")
        await until(lambda: not open_multipart_uploads(s3, sandbox.bucket, record.s3_key), 10, "abort in storage")
        click_row_button(desktop, kept.job_id, "primary")  # now the Resume button
        await until(lambda: kept.status == Status.COMPLETED, 60, "resumed upload to complete")

    run(aloop, scenario())
    kept = model.rows()[0]
    assert kept.result is not None and object_sha256(s3, sandbox.bucket, kept.result.s3_key) == keep.sha256


def test_a_cancelled_upload_is_started_again_from_its_row_and_stored_once(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    """A GUI audit cancelled an upload and found only a bin on its row: starting it again meant adding it again."""
    desktop = make_desktop(bandwidth_limit=8 * 1000 * 1000, chunk_size=5 * MiB, concurrency=2)
    model = desktop.session.model
    sample = make_file(24 * MiB, name=f"cancelled-by-mistake-{uuid.uuid4().hex[:8]}.safetensors")
    seen: list[object] = []

    async def scenario() -> None:
        drop(desktop.window, [sample.path])
        await until(lambda: model.rowCount() == 1 and model.rows()[0].confirmed >= 5 * MiB, 60, "a stored part")
        row = model.rows()[0]
        click_row_button(desktop, row.job_id, "secondary")  # Cancel
        await answer(desktop.window, "cancelQuestion", "Cancel upload")
        await until(lambda: row.status == Status.CANCELLED, 15, "the cancel")
        seen.append((row.primary_action(), row.action_label(RowAction.RETRY)))
        click_row_button(desktop, row.job_id, "primary")  # Start again
        await until(lambda: row.status == Status.COMPLETED, 60, "the upload, started again")

    run(aloop, scenario())
    assert seen == [(RowAction.RETRY, "Start again")]
    [row] = model.rows()
    assert row.result is not None and object_sha256(s3, sandbox.bucket, row.result.s3_key) == sample.sha256
    stem = sample.path.stem
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=sandbox.bucket)
    keys = [item["Key"] for page in pages for item in page.get("Contents", []) if stem in item["Key"]]
    assert keys == [row.result.s3_key], "exactly one object"
    assert not [u for u in open_multipart_uploads(s3, sandbox.bucket) if stem in u["Key"]], "no orphan upload"


def test_a_dropped_pipe_is_named_for_what_it_is(make_desktop: Any, make_file: Any, aloop: Any, tmp_path: Path) -> None:
    desktop = make_desktop(auto_start=False)
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    model = make_file(1000, name="fine.ckpt")
    outcomes = []

    async def scenario() -> None:
        outcomes.append(await desktop.session.add_paths([str(fifo), str(model.path)]))

    run(aloop, scenario())
    [outcome] = outcomes
    assert outcome.added == 1 and outcome.problems == ["pipe.safetensors is a named pipe (FIFO), not a file."]
    assert "pipe.safetensors is a named pipe (FIFO), not a file." in desktop.window.statusBar().currentMessage()


def test_a_line_break_or_tab_in_a_file_name_shows_as_an_escape_on_one_line(
    make_desktop: Any, make_file: Any, aloop: Any
) -> None:
    """An audit's new<LF>line.safetensors drew as two clipped lines over each other, and a tab as a wide gap."""
    desktop = make_desktop(auto_start=False)
    sample = make_file(1000, name="new\nline\tand tab.safetensors")
    drop(desktop.window, [sample.path])
    run(aloop, until(lambda: desktop.session.model.rowCount() == 1, 10, "the row"))
    row = desktop.session.model.rows()[0]
    assert row_text(row, 0.0).name == "new\\nline\\tand tab.safetensors"
    index = desktop.session.model.index(0, 0)
    assert desktop.session.model.data(index, Qt.ItemDataRole.AccessibleTextRole).startswith(
        "new\\nline\\tand tab.safetensors, "
    )


def test_a_cut_short_model_is_asked_about_before_it_is_queued(
    make_desktop: Any, make_file: Any, aloop: Any, tmp_path: Path
) -> None:
    desktop = make_desktop(auto_start=False)
    window = desktop.window
    cut = make_file(3 * MiB, name="cut.safetensors")
    with open(cut.path, "r+b") as handle:
        handle.truncate(2 * MiB)
    whole = make_file(1 * MiB, name="whole.safetensors")

    asked: list[tuple[str, str, str]] = []

    async def scenario() -> None:
        drop(window, [cut.path, whole.path])
        await until(lambda: window.findChild(QMessageBox, "damagedFilesQuestion") is not None, 10, "the question")
        box = window.findChild(QMessageBox, "damagedFilesQuestion")
        asked.append((box.text(), box.informativeText(), box.defaultButton().text()))
        await answer(window, "damagedFilesQuestion", "Skip it")
        refused = "cut.safetensors was not added because it looks damaged"
        await until(lambda: refused in window.statusBar().currentMessage(), what="the refusal")
        assert set(statuses(desktop)) == {"whole.safetensors"}
        drop(window, [cut.path])
        await answer(window, "damagedFilesQuestion", "Send anyway")
        await until(lambda: desktop.session.model.rowCount() == 2, what="the damaged file, queued as asked")

    run(aloop, scenario())
    assert set(statuses(desktop)) == {"whole.safetensors", "cut.safetensors"}
    [(text, details, default)] = asked
    assert text == "cut.safetensors looks damaged."
    assert details.startswith("It is 2.0 MiB, but its header describes") and details.endswith("Send it anyway?")
    assert default == "Skip it", "Enter keeps the damaged file out, as the warning advises"


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_retry_of_a_file_cut_short_while_it_uploaded_asks_as_a_drop_does(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    """An audit truncated a model mid-upload and pressed Retry: the cut file was stored as "Completed"."""
    desktop = make_desktop(bandwidth_limit=2 * 1000 * 1000, chunk_size=5 * MiB, concurrency=1)
    window, rows = desktop.window, desktop.session.model.rows
    sample = make_file(30 * MiB, name=f"shrinks-{uuid.uuid4().hex[:8]}.safetensors")

    async def scenario() -> None:
        drop(window, [sample.path])
        await until(lambda: rows() and rows()[0].confirmed >= 5 * MiB, 60, "a part stored")
        with open(sample.path, "r+b") as handle:
            handle.truncate(12 * MiB)
        await until(lambda: rows()[0].status is Status.FAILED, 60, "the change to be noticed")
        assert "was changed while it was uploading" in rows()[0].message
        window.act(rows()[0].job_id, RowAction.RETRY)
        await answer(window, "damagedFilesQuestion", "Skip it")
        await until(lambda: "was not sent again: it looks damaged" in window.statusBar().currentMessage())
        assert rows()[0].status is Status.FAILED
        window.view.setCurrentIndex(desktop.session.model.index(0, 0))
        [space] = [k for k in window.view.findChildren(QShortcut) if k.key() == QKeySequence(Qt.Key.Key_Space)]
        space.activated.emit()  # the Space bar's Retry asks too; then it is sent as the person says
        await answer(window, "damagedFilesQuestion", "Send anyway")
        await until(lambda: rows()[0].status is Status.COMPLETED, 60, "the cut file, sent as asked")

    run(aloop, scenario())
    done = rows()[0]
    now = hashlib.sha256(sample.path.read_bytes()).hexdigest()
    assert done.result is not None and object_sha256(s3, sandbox.bucket, done.result.s3_key) == now


def test_several_damaged_files_are_each_named_with_their_own_reason(
    make_desktop: Any, make_file: Any, aloop: Any
) -> None:
    """A GUI audit's drop read "empty.safetensors (and 4 more) looks damaged: It is only 0 B…", for all five."""
    desktop = make_desktop(auto_start=False)
    window = desktop.window
    empty = make_file(0, name="empty.safetensors")
    cut = make_file(3 * MiB, name="cut.safetensors")
    with open(cut.path, "r+b") as handle:
        handle.truncate(2 * MiB)
    seen: list[tuple[str, list[str]]] = []

    async def scenario() -> None:
        drop(window, [empty.path, cut.path])
        await until(lambda: window.findChild(QMessageBox, "damagedFilesQuestion") is not None, 10, "the question")
        box = window.findChild(QMessageBox, "damagedFilesQuestion")
        seen.append((box.text(), [b.text() for b in box.buttons()]))
        await answer(window, "damagedFilesQuestion", "Skip them")

    run(aloop, scenario())
    [(text, buttons)] = seen
    lines = text.splitlines()
    assert lines[0] == "2 files look damaged:" and sorted(buttons) == ["Send anyway", "Skip them"]
    assert {line.split(":")[0] for line in lines[1:]} == {"• empty.safetensors", "• cut.safetensors"}
    assert len(set(line.split(":", 1)[1] for line in lines[1:])) == 2, "each with its own reason"
