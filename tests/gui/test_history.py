"""History, duplicates and the queue across restarts, on the real window against the real sandbox."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox, QStyle

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.history import HistoryEntry, HistoryStore
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import RowAction
from desktop_uploader.engine.saved_queue import SavedQueue, SavedRow, save_queue
from desktop_uploader.gui.history_dialog import HistoryDialog, history_keys
from tests.gui.conftest import answer, run, until
from tests.gui.test_queue import drop
from tests.support.storage import object_sha256


def unique(stem: str) -> str:
    """A name no other test (they share the sandbox's bucket) uploads."""
    return f"{stem}-{uuid.uuid4().hex[:8]}.safetensors"


def stored_keys(s3: Any, bucket: str, stem: str) -> list[str]:
    """Keys whose file name holds ``stem`` (the server prefixes a user id and a time to make names unique)."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", []) if stem in Path(o["Key"]).name]
    return keys


def upload(desktop: Any, aloop: Any, paths: list[Path]) -> None:
    names = {p.name for p in paths}

    async def scenario() -> None:
        drop(desktop.window, paths)
        await until(
            lambda: {r.file_name for r in desktop.session.model.rows() if r.status == Status.COMPLETED} >= names,
            120,
            "the uploads to complete",
        )

    run(aloop, scenario())


def saved_paths(desktop: Any) -> list[str]:
    """The waiting files the saved queue on disk lists now (read as another process would, after a crash)."""
    try:
        text = (desktop.session.paths.data_dir / "queue.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [row["path"] for row in json.loads(text)["rows"]]


def open_history(desktop: Any, aloop: Any) -> HistoryDialog:
    assert desktop.window.history_action.shortcut() == history_keys()  # Ctrl+H (Cmd+Y on macOS)
    desktop.window.history_action.trigger()
    dialog = desktop.window.findChild(HistoryDialog, "historyDialog")
    assert dialog is not None and dialog.isVisible()
    run(aloop, until(lambda: dialog.loaded, 10, "the history to load"))
    return dialog


def test_history_survives_a_restart_and_can_be_searched_copied_and_cleared(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    first = make_desktop()
    alpha, beta = make_file(6 * MiB, unique("alpha")), make_file(1 * MiB, unique("beta"))
    upload(first, aloop, [alpha.path, beta.path])
    done = {r.file_name: r for r in first.session.model.rows()}
    alpha_row = done[alpha.path.name]
    assert alpha_row.result is not None
    run(aloop, first.session.shutdown())
    first.window.close()

    second = make_desktop()  # the same home: a restart
    assert second.session.model.rowCount() == 0  # completed rows are not the queue's any more...
    dialog = open_history(second, aloop)  # ...but the history has them
    names = [e.file_name for e in dialog.shown_entries()]
    assert sorted(names) == sorted(Path(r.result.s3_key).name for r in done.values() if r.result)
    shown = {e.local_path: e for e in dialog.shown_entries()}[str(alpha.path.resolve())]
    assert shown.comfyui_path == alpha_row.result.comfyui_path and shown.s3_path == alpha_row.s3_path
    assert shown.size == alpha.size and shown.method == alpha_row.method and shown.server == sandbox.api_url
    assert object_sha256(s3, sandbox.bucket, alpha_row.result.s3_key) == alpha.sha256
    # The list shows the file as the person knows it; the server's unique stored name is in the tooltip.
    items = [dialog.list.topLevelItem(i) for i in range(dialog.list.topLevelItemCount())]
    [item] = [i for i in items if i.data(0, Qt.ItemDataRole.UserRole).local_path == str(alpha.path.resolve())]
    assert shown.file_name != alpha.path.name  # the sandbox, like our users' servers, makes the name unique
    assert item.text(0) == alpha.path.name and f"Stored as {shown.file_name}" in item.toolTip(0)
    # A long ComfyUI path is cut at its start, so its end (the stored name) shows: cut at the end, every row
    # read "/runpod-volume/loras/sandbox-user/sand…" (an audit).
    room = dialog.list.columnWidth(1) - 2 * dialog.list.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin)
    painted = dialog.list.fontMetrics().elidedText(item.text(1), dialog.list.textElideMode(), room)
    assert "…" in painted and alpha.path.name in painted

    dialog.search.setText("alpha")
    assert [e.local_path for e in dialog.shown_entries()] == [str(alpha.path.resolve())]
    dialog.search.setText("no such model anywhere")
    assert dialog.shown_entries() == [] and "matches" in dialog.placeholder.text()
    dialog.search.setText("alpha")

    dialog.copy_comfyui.click()
    assert QGuiApplication.clipboard().text() == alpha_row.result.comfyui_path
    dialog.copy_s3.click()
    assert QGuiApplication.clipboard().text() == alpha_row.s3_path

    async def clear(button: str) -> None:
        dialog.clear_button.click()
        await until(lambda: dialog.findChild(QMessageBox, "clearHistoryQuestion") is not None, 10, "the question")
        box = dialog.findChild(QMessageBox, "clearHistoryQuestion")
        assert box.defaultButton().text() == "Keep history"  # the destructive choice is never the default
        await answer(dialog, "clearHistoryQuestion", button)

    run(aloop, clear("Keep history"))
    assert len(dialog.entries) == 2
    run(aloop, clear("Clear history"))
    run(aloop, until(lambda: dialog.entries == [], 10, "the history to clear"))
    assert dialog.shown_entries() == [] and not dialog.clear_button.isEnabled()
    assert HistoryStore.in_data_dir(second.session.paths.data_dir).entries() == []


def test_queued_and_paused_files_come_back_after_pause_and_quit(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    first = make_desktop(bandwidth_limit=4 * 1000 * 1000, files_at_once=1, chunk_size=5 * MiB)
    running, waiting = make_file(20 * MiB, unique("running")), make_file(2 * MiB, unique("waiting"))

    async def interrupt() -> None:
        drop(first.window, [running.path, waiting.path])
        await until(lambda: first.session.model.summary.active, 30, "the first upload to run")
        statuses = {r.file_name: r.status for r in first.session.model.rows()}
        assert statuses[waiting.path.name] == Status.QUEUED
        # Already on disk while the app runs, so a crash or a kill would not lose it either.
        await until(lambda: saved_paths(first) == [str(waiting.path.resolve())], 10, "the saved queue")
        await first.session.shutdown()  # "Pause and quit"

    run(aloop, interrupt())
    first.window.close()

    second = make_desktop(bandwidth_limit=0)
    rows = {r.file_name: r for r in second.session.model.rows()}
    assert set(rows) == {running.path.name, waiting.path.name}  # the queued file was not dropped
    # Started: its resume record brings it back, as "Pause and quit" left it (it came back "Interrupted",
    # as after a crash).
    assert rows[running.path.name].status == Status.PAUSED
    assert rows[running.path.name].status_text(0) == "Paused"
    # Nothing starts on its own after "Pause and quit": the file that waited its turn waits for the person too
    # (it used to start by itself while the one it queued behind stayed stopped).
    assert rows[waiting.path.name].never_started and rows[waiting.path.name].action_label(RowAction.RESUME) == "Start"
    assert not second.session.model.summary.active

    async def finish_waiting() -> None:
        await until(second.window.start_all_action.isEnabled, 10, "Start all")
        second.window.start_all_action.trigger()
        await until(
            lambda: all(r.status == Status.COMPLETED for r in second.session.model.rows()),
            60,
            "both files to upload",
        )

    run(aloop, finish_waiting())
    result = next(r.result for r in second.session.model.rows() if r.file_name == waiting.path.name)
    assert result is not None and object_sha256(s3, sandbox.bucket, result.s3_key) == waiting.sha256
    assert result.s3_key.endswith(f"_{waiting.path.name}")  # stored under its own name, as before the restart


def test_the_queue_comes_back_in_the_order_it_was_left(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    """A file started by hand ahead of the one above it came back first: started uploads were brought back
    before the files that waited, whatever their places."""
    first = make_desktop(auto_start=False, bandwidth_limit=4 * 1000 * 1000, chunk_size=5 * MiB)
    above, started = make_file(1 * MiB, unique("above")), make_file(20 * MiB, unique("started"))
    names = [above.path.name, started.path.name]

    async def start_the_second_and_quit() -> None:
        drop(first.window, [above.path, started.path])
        rows = first.session.model.rows
        await until(lambda: [r.file_name for r in rows()] == names, 10, "the rows")
        first.session.act(rows()[1].job_id, RowAction.RESUME)  # its Start button
        await until(lambda: rows()[1].confirmed >= 5 * MiB, 60, "a part of the second file stored")
        await first.session.shutdown()  # "Pause and quit"

    run(aloop, start_the_second_and_quit())
    first.window.close()
    second = make_desktop(auto_start=False)
    rows = second.session.model.rows()
    assert [r.file_name for r in rows] == names
    assert rows[0].never_started and rows[1].status == Status.PAUSED and rows[1].confirmed >= 5 * MiB


def test_a_file_waiting_to_be_started_comes_back_paused(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    first = make_desktop(auto_start=False)
    sample = make_file(1 * MiB, unique("later"))

    async def add_rename_and_quit() -> None:
        drop(first.window, [sample.path])
        await until(lambda: first.session.model.rowCount() == 1, 10, "the row")
        assert first.session.model.rows()[0].status == Status.PAUSED
        first.session.manager.rename(first.session.model.rows()[0].job_id, "my-style")
        await until(lambda: first.session.model.rows()[0].display_name == "my-style", 10, "the new name")
        await first.session.shutdown()

    run(aloop, add_rename_and_quit())
    first.window.close()
    second = make_desktop(auto_start=False)
    [row] = second.session.model.rows()
    assert row.file_name == sample.path.name and row.status == Status.PAUSED
    assert row.display_name == "my-style"  # the name it will be stored under, as the person chose it


def a_copy_of_an_upload(desktop: Any, aloop: Any, original: Any, tmp_path: Path) -> tuple[Any, Path]:
    """``original`` uploaded, and a copy of it under another name in another folder, not yet dropped."""
    upload(desktop, aloop, [original.path])
    copy = tmp_path / "elsewhere" / unique("renamed-copy")
    copy.parent.mkdir()
    shutil.copyfile(original.path, copy)
    return original, copy


async def already_uploaded_question(desktop: Any) -> QMessageBox:
    """The question about a file already uploaded, once it is open (it comes after the file is hashed)."""
    await until(
        lambda: desktop.window.findChild(QMessageBox, "alreadyUploadedQuestion") is not None,
        30,
        "the already-uploaded question",
    )
    return desktop.window.findChild(QMessageBox, "alreadyUploadedQuestion")


def test_the_same_bytes_under_another_name_offer_to_skip_and_a_same_size_file_is_not_flagged(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    desktop = make_desktop()
    original, copy = a_copy_of_an_upload(desktop, aloop, make_file(3 * MiB, unique("original")), tmp_path)
    messages: list[str] = []
    desktop.session.message.connect(messages.append)

    async def offer() -> None:
        drop(desktop.window, [copy])
        box = await already_uploaded_question(desktop)
        assert box.defaultButton().text() == "Skip"
        # Named as what it is, a copy: an audit's folder of copies was told "already on this server" by names
        # that were never uploaded.
        assert box.text().startswith(f"{copy.name} has the same contents as {original.path.name}, which is already")
        await answer(desktop.window, "alreadyUploadedQuestion", "Skip")
        await until(lambda: any("already uploaded" in m for m in messages), 10, "the sentence about it")
        said = f"{copy.name} was skipped: the same contents are already uploaded, from {original.path.name}."
        assert any(said in m for m in messages), messages

    run(aloop, offer())
    assert [r.file_name for r in desktop.session.model.rows()] == [original.path.name]
    assert stored_keys(s3, sandbox.bucket, copy.stem) == []
    assert len(stored_keys(s3, sandbox.bucket, original.path.stem)) == 1  # exactly one object

    assert any(m.startswith(f"Checking whether {copy.name}") for m in messages)  # the wait says what it is

    async def upload_again() -> None:
        drop(desktop.window, [copy])
        await answer(desktop.window, "alreadyUploadedQuestion", "Upload again", 30)
        await until(
            lambda: any(
                r.file_name == copy.name and r.status == Status.COMPLETED for r in desktop.session.model.rows()
            ),
            60,
            "the second copy",
        )

    run(aloop, upload_again())
    assert len(stored_keys(s3, sandbox.bucket, copy.stem)) == 1  # asked for, so sent

    lookalike = make_file(3 * MiB, unique("lookalike"))  # the same size, other bytes
    assert lookalike.size == original.size
    upload(desktop, aloop, [lookalike.path])  # no question: it would wait for an answer and time out
    assert desktop.window.findChild(QMessageBox, "alreadyUploadedQuestion") is None
    assert len(stored_keys(s3, sandbox.bucket, lookalike.path.stem)) == 1


def test_a_folder_of_copies_is_told_which_uploaded_file_each_is_the_same_as(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A GUI audit dropped a folder of two copies of an uploaded file and read "2 of these files are already
    on this server: a.safetensors, b.ckpt", names never uploaded, after "Checking whether 2 files is…"."""
    desktop = make_desktop()
    original = make_file(3 * MiB, unique("original"))
    upload(desktop, aloop, [original.path])
    folder = tmp_path / "copies"
    folder.mkdir()
    copies = [folder / unique("first-copy"), folder / unique("second-copy")]
    for copy in copies:
        shutil.copyfile(original.path, copy)
    messages: list[str] = []
    desktop.session.message.connect(messages.append)

    async def skip() -> None:
        drop(desktop.window, [folder])
        await until(
            lambda: desktop.window.findChild(QMessageBox, "alreadyUploadedQuestion") is not None,
            30,
            "the already-uploaded question",
        )
        text = desktop.window.findChild(QMessageBox, "alreadyUploadedQuestion").text()
        same = f"(the same as {original.path.name})"
        names = sorted(f"{copy.name} {same}" for copy in copies)
        assert text in (
            f"2 of these files are already on this server: {', '.join(order)}." for order in (names, names[::-1])
        )
        await answer(desktop.window, "alreadyUploadedQuestion", "Skip")
        await until(lambda: sum("was skipped" in m for m in messages) >= 1, 10, "the sentence about them")

    run(aloop, skip())
    assert "Checking whether 2 files are already on this server…" in messages
    assert [r.file_name for r in desktop.session.model.rows()] == [original.path.name]
    assert all(stored_keys(s3, sandbox.bucket, copy.stem) == [] for copy in copies)


def test_an_upload_the_person_paused_comes_back_paused_not_interrupted(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    first = make_desktop(bandwidth_limit=8 * 1000 * 1000, chunk_size=5 * MiB, concurrency=2)
    sample = make_file(30 * MiB, unique("paused"))

    async def pause_then_quit() -> None:
        drop(first.window, [sample.path])
        rows = first.session.model.rows
        await until(lambda: rows() and rows()[0].confirmed >= 10 * MiB, 60, "some parts stored")
        first.session.act(first.session.model.rows()[0].job_id, RowAction.PAUSE)
        await until(lambda: first.session.model.rows()[0].status == Status.PAUSED, 30, "the pause")
        await first.session.shutdown()  # "Pause and quit", with nothing running any more

    run(aloop, pause_then_quit())
    first.window.close()
    second = make_desktop(bandwidth_limit=0)
    [row] = second.session.model.rows()
    assert row.status == Status.PAUSED and "Interrupted" not in row.status_text(0)
    assert row.confirmed >= 10 * MiB  # what is stored shows
    assert RowAction.RESUME in row.actions()

    async def resume() -> None:
        second.session.act(row.job_id, RowAction.RESUME)
        await until(lambda: second.session.model.rows()[0].status == Status.COMPLETED, 60, "the resumed upload")

    run(aloop, resume())
    done = second.session.model.rows()[0]
    assert done.result is not None and object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256


def test_a_saved_file_that_completed_after_the_list_was_written_is_not_queued_again(
    make_desktop: Any, make_file: Any, private_home: Path
) -> None:
    """A crash between an upload completing and the saved queue being rewritten must not send it twice."""
    done, waiting = make_file(1 * MiB, unique("done")), make_file(1 * MiB, unique("still-waiting"))
    data = private_home / "data"
    rows = [SavedRow(str(done.path), done.path.stem, False), SavedRow(str(waiting.path), waiting.path.stem, True)]
    save_queue(data, SavedQueue(rows, saved_at=1000.0))
    HistoryStore.in_data_dir(data).record(
        HistoryEntry(done.path.name, str(done.path), "", "", done.size, "presigned-s3", 2000.0, "", "")
    )
    desktop = make_desktop()
    [row] = desktop.session.model.rows()
    assert row.file_name == waiting.path.name and row.status == Status.PAUSED


def test_a_file_opened_with_the_app_is_checked_for_duplicates_too(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    """Open With, a second launch and the command line go through the same questions as a drop."""
    from desktop_uploader.gui.app import queue_opened

    desktop = make_desktop()
    original = make_file(2 * MiB, unique("opened-original"))
    upload(desktop, aloop, [original.path])
    copy = tmp_path / "downloads" / unique("opened-copy")
    copy.parent.mkdir()
    shutil.copyfile(original.path, copy)

    async def open_with() -> None:
        opened = asyncio.ensure_future(queue_opened(desktop, [str(copy)]))
        await answer(desktop.window, "alreadyUploadedQuestion", "Skip", 30)
        await opened

    run(aloop, open_with())
    assert [r.file_name for r in desktop.session.model.rows()] == [original.path.name]
    assert stored_keys(s3, sandbox.bucket, copy.stem) == []
