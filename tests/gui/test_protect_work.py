"""Protect work (issue 14, major 2): giving up stored bytes asks first, and row buttons hold still.

The real window, offscreen, against the real sandbox. The button-under-the-pointer case feeds the
model the engine's own events and steps the guard's clock, so it depends on the order of events,
never on wall time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QAbstractItemView, QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from desktop_uploader.engine import events
from desktop_uploader.engine.events import Status, UploadResult
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import RowAction
from desktop_uploader.engine.server_uploads import ServerUpload
from desktop_uploader.gui.button_guard import GRACE
from desktop_uploader.gui.dialogs import confirm
from desktop_uploader.gui.server_uploads import confirm_discard
from tests.gui.conftest import answer, run, until
from tests.gui.test_queue import click_row_button, drop
from tests.gui.test_window_trust import JOB, fed_row, uploading
from tests.support.storage import open_multipart_uploads


def question(window: Any) -> QMessageBox | None:
    boxes = [b for b in window.findChildren(QMessageBox, "cancelQuestion") if b.isVisible()]
    return boxes[0] if boxes else None


async def asked(window: Any) -> QMessageBox:
    await until(lambda: question(window) is not None, 10, "the cancel question")
    box = question(window)
    assert box is not None
    return box


async def stored_part(desktop: Any, path: Path) -> tuple[Any, str]:
    """Drop ``path`` and wait until a part of it is stored: its row, and its key in storage."""
    model = desktop.session.model
    drop(desktop.window, [path])
    await until(lambda: model.rowCount() == 1 and model.rows()[0].confirmed >= 5 * MiB, 60, "bytes stored")
    row = model.rows()[0]
    record = desktop.session.state.get(row.job_id)
    assert record is not None and record.s3_key
    return row, record.s3_key


def test_cancelling_stored_bytes_asks_and_enter_or_esc_keep_the_upload(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    desktop = make_desktop(bandwidth_limit=6 * 1000 * 1000, chunk_size=5 * MiB, concurrency=2)
    window, model = desktop.window, desktop.session.model
    sample = make_file(40 * MiB, name="precious.safetensors")
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        row, seen["key"] = await stored_part(desktop, sample.path)
        # The ⊗ button asks; Enter answers with the default, which keeps the upload.
        click_row_button(desktop, row.job_id, "secondary")
        box = await asked(window)
        seen["text"], seen["default"] = box.text(), box.defaultButton().text()
        QtBot.keyClick(box, Qt.Key.Key_Return)
        await until(lambda: question(window) is None and not window.removal.asking, 5, "the answer")
        assert row.status.active or row.status == Status.QUEUED, row.status
        # The Del key asks the same question; Esc keeps the upload too.
        window.view.setCurrentIndex(model.index(0))
        window.activateWindow()  # the closed question gave the window back its focus
        window.view.setFocus()
        await until(lambda: window.view.hasFocus() and QApplication.activeWindow() is window, 5, "focus on the queue")
        QtBot.keyClick(window.view, Qt.Key.Key_Delete)
        box = await asked(window)
        QtBot.keyClick(box, Qt.Key.Key_Escape)
        await until(lambda: question(window) is None and not window.removal.asking, 5, "the answer")
        assert row.status.active or row.status == Status.QUEUED, row.status
        assert model.rowCount() == 1
        # The context menu's Cancel asks as well; only the destructive button, clicked, cancels.
        dict(window.menu_entries(row))["Cancel"]()
        await asked(window)
        await answer(window, "cancelQuestion", "Cancel upload")
        await until(lambda: row.status == Status.CANCELLED, 20, "the cancel")
        await until(lambda: not open_multipart_uploads(s3, sandbox.bucket, seen["key"]), 20, "the abort in storage")

    run(aloop, scenario())
    assert seen["text"].startswith("At least ") and "of precious.safetensors (" in seen["text"]
    assert "is already stored. Cancelling deletes it" in seen["text"]  # true however long the question waits
    assert seen["default"] == "Keep uploading"
    assert not open_multipart_uploads(s3, sandbox.bucket, seen["key"])  # no orphan parts left behind


def test_the_cancel_question_offers_the_pause_it_mentions(
    make_desktop: Any, make_file: Any, aloop: Any, s3: Any, sandbox: Any
) -> None:
    """It said "pausing keeps it" and offered only Cancel and Keep uploading (a network audit)."""
    desktop = make_desktop(bandwidth_limit=6 * 1000 * 1000, chunk_size=5 * MiB, concurrency=2)
    window, model = desktop.window, desktop.session.model
    sample = make_file(40 * MiB, name="keep-me.safetensors")
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        row, seen["key"] = await stored_part(desktop, sample.path)
        click_row_button(desktop, row.job_id, "secondary")
        box = await asked(window)
        seen["buttons"] = [b.text() for b in box.buttons()]
        await answer(window, "cancelQuestion", "Pause instead")
        await until(lambda: model.rows()[0].status == Status.PAUSED, 30, "the pause")

    run(aloop, scenario())
    assert set(seen["buttons"]) == {"Cancel upload", "Pause instead", "Keep uploading"}
    assert model.rows()[0].confirmed >= 5 * MiB, "what was stored is kept"
    assert open_multipart_uploads(s3, sandbox.bucket, seen["key"]), "its parts wait on storage to go on"


def test_a_row_with_nothing_stored_cancels_without_a_question(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    desktop = make_desktop(auto_start=False)
    window, model = desktop.window, desktop.session.model

    async def scenario() -> None:
        drop(window, [make_file(1000, name="idle.safetensors").path])
        await until(lambda: model.rowCount() == 1, 10, "the row")
        row = model.rows()[0]
        assert row.confirmed == 0 and RowAction.CANCEL in row.actions()
        click_row_button(desktop, row.job_id, "secondary")
        await until(lambda: row.status == Status.CANCELLED, 10, "the cancel")

    run(aloop, scenario())
    assert question(window) is None


def move_to(window: Any, point: QPoint) -> None:
    """A pointer move over the queue, as the window system delivers it."""
    viewport = window.view.viewport()
    event = QMouseEvent(
        QEvent.Type.MouseMove,
        QPointF(point),
        QPointF(viewport.mapToGlobal(point)),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(viewport, event)


def secondary_point(window: Any, job_id: str, which: str = "secondary") -> QPoint:
    """The middle of a row's ⊗ (or, with which="primary", of its other button)."""
    from PySide6.QtWidgets import QStyleOptionViewItem

    option = QStyleOptionViewItem()
    window.view.initViewItemOption(option)
    option.rect = window.view.visualRect(window.session.model.index_of(job_id))
    point: QPoint = getattr(window.delegate.layout(option), which).center()
    return point


def test_a_cancel_button_that_turns_into_remove_under_the_pointer_does_not_remove(
    make_desktop: Any, aloop: Any
) -> None:
    desktop = make_desktop(connect=False)
    window, model = desktop.window, desktop.session.model
    now = [1000.0]
    window.button_guard.clock = lambda: now[0]
    triggered: list[tuple[str, RowAction]] = []
    window.delegate.actionTriggered.connect(lambda job, action: triggered.append((job, action)))
    desktop.session.act = lambda *_: None  # a fed row has no job in the engine to act on
    row = fed_row(desktop, aloop, *uploading(0.0, speed=0.0))  # nothing stored yet: Cancel needs no question
    row.confirmed = 0
    point = secondary_point(window, JOB)
    move_to(window, point)  # the pointer rests on ⊗, which means Cancel
    assert window.button_guard.seen is not None and window.button_guard.seen.action is RowAction.CANCEL
    # The upload finishes under the pointer: the same button now means "Remove from list".
    result = UploadResult("presigned-s3", row.size, "anime.safetensors", "loras/anime.safetensors", None, None, "e")
    model.apply_event(events.StatusChanged(JOB, Status.COMPLETED))
    model.apply_event(events.Completed(JOB, result))
    model.flush()
    now[0] += GRACE / 3
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)  # meant for Cancel
    assert triggered == []  # swallowed: the just-completed row is not removed
    assert model.rowCount() == 1 and model.rows()[0].status == Status.COMPLETED
    now[0] += GRACE / 3
    move_to(window, point + QPoint(1, 0))  # a jiggle doesn't rearm it early
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert triggered == []
    now[0] += GRACE  # after a pause the person sees what the button is now: it works
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert triggered == [(JOB, RowAction.REMOVE)]


def test_a_pointer_arriving_on_a_button_clicks_at_once(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(connect=False)
    window = desktop.window
    now = [50.0]
    window.button_guard.clock = lambda: now[0]
    triggered: list[RowAction] = []
    window.delegate.actionTriggered.connect(lambda _job, action: triggered.append(action))
    desktop.session.act = lambda *_: None  # a fed row has no job in the engine to act on
    fed_row(desktop, aloop, events.StatusChanged(JOB, Status.PAUSED))
    point = secondary_point(window, JOB)
    move_to(window, QPoint(5, 5))
    move_to(window, point)
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert triggered == [RowAction.CANCEL]  # no grace period for a button that didn't change


def guarded(make_desktop: Any) -> tuple[Any, list[float], list[RowAction]]:
    """A window whose button guard runs on a clock the test steps, noting the actions its rows' buttons ask
    for; the engine is left out (the test plays it by feeding the row)."""
    desktop = make_desktop(connect=False)
    now = [1000.0]
    desktop.window.button_guard.clock = lambda: now[0]
    triggered: list[RowAction] = []
    desktop.window.delegate.actionTriggered.connect(lambda _job, action: triggered.append(action))
    desktop.session.act = lambda *_: None
    return desktop, now, triggered


@pytest.mark.parametrize("wait", [0.0, GRACE / 3, 10 * GRACE])
def test_a_pause_button_turned_into_resume_by_its_own_click_resumes_at_once(
    make_desktop: Any, aloop: Any, wait: float
) -> None:
    """The audit's case: Pause, then Resume without moving the pointer; the first click on Resume was ignored."""
    desktop, now, triggered = guarded(make_desktop)  # a fed row has no job in the engine: the test plays it
    window, model = desktop.window, desktop.session.model
    fed_row(desktop, aloop, *uploading(0.3))
    point = secondary_point(window, JOB, "primary")
    move_to(window, point)
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert triggered == [RowAction.PAUSE]
    model.apply_event(events.StatusChanged(JOB, Status.PAUSED, "Paused."))  # the engine pauses, as asked
    model.flush()
    now[0] += wait  # the pointer never moves
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert triggered == [RowAction.PAUSE, RowAction.RESUME]  # the first click on Resume counts
    model.apply_event(events.StatusChanged(JOB, Status.QUEUED))  # and Resume's own Pause works as well
    model.flush()
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert triggered == [RowAction.PAUSE, RowAction.RESUME, RowAction.PAUSE]
    model.apply_event(events.StatusChanged(JOB, Status.PAUSED, "Paused."))  # nothing running: closes quietly
    model.flush()


def second_half_of_a_double_click(window: Any, point: QPoint) -> None:
    """What Qt 6 delivers after a double-click's first press and release: a press, a double-click, a release."""
    viewport = window.view.viewport()
    for kind, buttons in (
        (QEvent.Type.MouseButtonPress, Qt.MouseButton.LeftButton),
        (QEvent.Type.MouseButtonDblClick, Qt.MouseButton.LeftButton),
        (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton),
    ):
        event = QMouseEvent(
            kind,
            QPointF(point),
            QPointF(viewport.mapToGlobal(point)),
            Qt.MouseButton.LeftButton,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(viewport, event)


def test_a_double_click_on_pause_pauses_once(make_desktop: Any, aloop: Any) -> None:
    """A double-click on Pause is one click: its second half neither resumes nor opens the name's editor.

    A window audit reported Pause then Resume from a double-click; with the press, double-click and release
    Qt 6 delivers, the view drops a double-click's release and the delegate takes the double-click itself.
    This keeps it so (a double-click also opens a row's name for editing, but not on its buttons)."""
    desktop, _now, triggered = guarded(make_desktop)
    window, model = desktop.window, desktop.session.model
    fed_row(desktop, aloop, *uploading(0.3))
    point = secondary_point(window, JOB, "primary")
    move_to(window, point)
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)  # the first half
    model.apply_event(events.StatusChanged(JOB, Status.PAUSED, "Paused."))  # the engine pauses between the halves
    model.flush()
    second_half_of_a_double_click(window, point)
    assert triggered == [RowAction.PAUSE]
    assert window.view.state() != QAbstractItemView.State.EditingState, "the double-click opened the name's editor"
    assert model.rows()[0].status == Status.PAUSED
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)  # a click of its own still works
    assert triggered == [RowAction.PAUSE, RowAction.RESUME]
    model.apply_event(events.StatusChanged(JOB, Status.PAUSED, "Paused."))  # nothing running: closes quietly
    model.flush()


def test_a_click_on_cancel_that_the_upload_completing_overtakes_does_not_remove(make_desktop: Any, aloop: Any) -> None:
    """Cancel turns into Remove either way; only a cancel that landed is the person's doing."""
    desktop, now, triggered = guarded(make_desktop)  # the cancel never lands: the upload completes first
    window, model = desktop.window, desktop.session.model
    row = fed_row(desktop, aloop, *uploading(0.0, speed=0.0))
    point = secondary_point(window, JOB)
    move_to(window, point)
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert triggered == [RowAction.CANCEL]
    result = UploadResult("presigned-s3", row.size, "anime.safetensors", "loras/anime.safetensors", None, None, "e")
    model.apply_event(events.StatusChanged(JOB, Status.COMPLETED))
    model.apply_event(events.Completed(JOB, result))
    model.flush()
    now[0] += GRACE / 3
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)  # meant for Cancel again
    assert triggered == [RowAction.CANCEL]  # swallowed: the completed row stays
    assert model.rowCount() == 1 and model.rows()[0].status == Status.COMPLETED
    now[0] += GRACE
    QtBot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert triggered == [RowAction.CANCEL, RowAction.REMOVE]


def test_enter_never_means_the_destructive_answer_in_any_question(make_desktop: Any, aloop: Any) -> None:
    """Every question that can delete stored work: its default is the safe answer, and Enter picks it."""
    desktop = make_desktop(connect=False)
    window = desktop.window
    upload = ServerUpload("u-1", "loras/u/old.safetensors", "old.safetensors", None, 10 * MiB)
    questions = [
        ("cancelQuestion", lambda: confirm(window, "t", "x", "Cancel upload", name="cancelQuestion")),
        ("discardServerUploadsQuestion", lambda: confirm_discard(window, [upload])),
    ]
    for name, ask in questions:

        async def scenario(name: str = name, ask: Any = ask) -> tuple[bool, str]:
            task = asyncio.ensure_future(ask())
            await until(lambda: [b for b in window.findChildren(QMessageBox, name) if b.isVisible()], 5, name)
            [box] = [b for b in window.findChildren(QMessageBox, name) if b.isVisible()]
            default = box.defaultButton().text()
            QtBot.keyClick(box, Qt.Key.Key_Return)
            return await task, default

        chosen, default = run(aloop, scenario())
        assert not chosen, f"Enter destroyed work in {name}"
        assert default in ("Keep it", "Keep them"), default
