"""Notifications, keeping the computer awake, shortcuts, the tray's tooltip, following the palette."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QKeySequence, QPalette
from PySide6.QtWidgets import QApplication

from desktop_uploader.engine.events import Completed, Failed, Queued, Status, StatusChanged, UploadResult
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import QueueSummary, RowAction
from desktop_uploader.gui.tray import tooltip
from desktop_uploader.system.keep_awake import inhibit_command
from tests.gui.conftest import in_thread, run, until
from tests.gui.test_queue import drop
from tests.gui.test_settings_trust import open_dialog
from tests.support.logfail import UPLOAD_FAILED


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_finished_batch_and_a_failed_file_are_notified(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    desktop = make_desktop()
    session = desktop.session
    notes: list[tuple[str, str]] = []
    session.notify.connect(lambda title, text: notes.append((title, text)))
    good = make_file(2 * MiB, name="good.safetensors")
    bad = make_file(100, name="bad.txt")

    async def yes(_: object) -> bool:
        return True

    async def scenario() -> None:
        await session.add_paths([str(good.path), str(bad.path)], yes)
        await until(
            lambda: len(session.model.rows()) == 2 and all(r.status.finished for r in session.model.rows()),
            60,
            "both to finish",
        )
        await until(lambda: any(t == "Uploads finished" for t, _ in notes), 5, "the batch notification")

    run(aloop, scenario())
    assert ("Upload failed: bad.txt", notes[0][1]) in notes and "not accepted" in notes[0][1]
    assert any(t == "Uploads finished" and "1 of 2 done" in text for t, text in notes)


def test_a_file_that_finishes_between_two_refreshes_is_still_announced(
    make_desktop: Any, make_file: Any, aloop: Any
) -> None:
    """The summary is refreshed on a timer; holding the timer makes the upload start and end unseen by it."""
    desktop = make_desktop()
    session = desktop.session
    notes: list[tuple[str, str]] = []
    session.notify.connect(lambda title, text: notes.append((title, text)))
    refresh = session.model.findChild(QTimer)
    assert refresh is not None and refresh.isActive()
    refresh.stop()

    async def yes(_: object) -> bool:
        return True

    async def scenario() -> None:
        await session.add_paths([str(make_file(1 * MiB).path)], yes)
        await until(
            lambda: session.model.rows() and session.model.rows()[0].status is Status.COMPLETED, 60, "the upload"
        )
        session.model.flush()

    run(aloop, scenario())
    assert notes == [("Uploads finished", "1 of 1 done")]


def test_one_file_at_a_time_is_announced_once_when_the_last_one_ends(
    make_desktop: Any, make_file: Any, aloop: Any
) -> None:
    desktop = make_desktop(files_at_once=1)
    session = desktop.session
    notes: list[tuple[str, str]] = []
    session.notify.connect(lambda title, text: notes.append((title, text)))
    files = [str(make_file(1 * MiB, name=f"lora-{n}.safetensors").path) for n in range(3)]

    async def yes(_: object) -> bool:
        return True

    async def scenario() -> None:
        await session.add_paths(files, yes)
        await until(
            lambda: (
                len(session.model.rows()) == 3
                and all(r.status is Status.COMPLETED for r in session.model.rows())
                and not session.model.summary.active
            ),
            60,
            "all three",
        )
        await until(lambda: notes, 5, "the batch notification")

    run(aloop, scenario())
    assert notes == [("Uploads finished", "3 of 3 done")]


def test_pausing_the_last_running_file_announces_nothing(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    """A small file completed while a big one ran; pausing the big one is not "Uploads finished"."""
    desktop = make_desktop(bandwidth_limit=4 * 1000 * 1000)
    session = desktop.session
    notes: list[tuple[str, str]] = []
    session.notify.connect(lambda title, text: notes.append((title, text)))
    big, small = make_file(40 * MiB, name="big.safetensors"), make_file(1 * MiB, name="small.safetensors")

    async def yes(_: object) -> bool:
        return True

    def status(name: str) -> Status | None:
        return next((r.status for r in session.model.rows() if r.file_name == name), None)

    async def scenario() -> None:
        await session.add_paths([str(big.path), str(small.path)], yes)
        await until(lambda: status("small.safetensors") is Status.COMPLETED, 60, "the small file")
        await until(lambda: session.model.summary.active == 1, 10, "the big file running")
        [running] = [r for r in session.model.rows() if r.file_name == "big.safetensors"]
        session.act(running.job_id, RowAction.PAUSE)
        await until(lambda: status("big.safetensors") is Status.PAUSED, 30, "the pause")
        await until(lambda: not session.model.summary.active, 5, "the summary")

    run(aloop, scenario())
    assert notes == []


def test_notifications_can_be_turned_off(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    desktop = make_desktop(notifications=False)
    notes: list[tuple[str, str]] = []
    desktop.session.notify.connect(lambda title, text: notes.append((title, text)))

    async def scenario() -> None:
        drop(desktop.window, [make_file(1 * MiB).path])
        await until(
            lambda: desktop.session.model.rowCount() and desktop.session.model.rows()[0].status == Status.COMPLETED,
            60,
            "the upload",
        )
        await until(lambda: not desktop.session.model.summary.active, 5, "the summary")

    run(aloop, scenario())
    assert notes == []


def test_keep_awake_uses_the_platforms_inhibitor() -> None:
    def installed(*tools: str) -> Callable[[str], str | None]:
        return lambda name: f"/usr/bin/{name}" if name in tools else None

    linux = inhibit_command("linux", 42, "Uploading", installed("systemd-inhibit"))
    assert linux is not None
    assert linux[:2] == ["systemd-inhibit", "--what=sleep:idle"] and "--why=Uploading" in linux
    assert inhibit_command("darwin", 42, "x", installed("caffeinate")) == ["caffeinate", "-i", "-w", "42"]
    assert inhibit_command("linux", 42, "x", installed()) is None  # no systemd: nothing to hold
    assert inhibit_command("plan9", 42, "x", installed("systemd-inhibit", "caffeinate")) is None


def test_the_shortcuts_people_expect(make_desktop: Any) -> None:
    window = make_desktop(connect=False).window
    assert window.add_files_action.shortcut() == QKeySequence("Ctrl+O")
    assert window.settings_action.shortcut() == QKeySequence("Ctrl+,")
    assert window.view.accessibleName() == "Upload queue"
    assert window.add_folder_action.shortcut() == QKeySequence("Ctrl+Shift+O")


def test_the_tray_tooltip_shows_overall_progress() -> None:
    busy = QueueSummary(total=3, done=1, active=2, failed=0, speed=5e6, fraction=0.42)
    assert tooltip(busy) == "Desktop Uploader: 42% · 1 of 3 done · 2 uploading · 4.8 MiB/s"
    assert tooltip(QueueSummary(0, 0, 0, 0, 0.0, 0.0)) == "Desktop Uploader"


def test_icons_follow_a_dark_palette(make_desktop: Any) -> None:
    window = make_desktop(connect=False).window
    dark = QPalette(QApplication.palette())
    dark.setColor(QPalette.ColorRole.Window, QColor("#202020"))
    dark.setColor(QPalette.ColorRole.WindowText, QColor("#f0f0f0"))
    original = QApplication.palette()
    QApplication.setPalette(dark)
    try:
        QApplication.processEvents()  # the palette change is an event, as it is when the desktop switches
        image = window.settings_action.icon().pixmap(20, 20).toImage()
        lightest = max(
            image.pixelColor(x, y).lightness()
            for x in range(20)
            for y in range(20)
            if image.pixelColor(x, y).alpha() > 200
        )
        assert lightest > 200, "the gear is drawn light on a dark window"
    finally:
        QApplication.setPalette(original)


def test_an_inhibitor_that_dies_is_not_respawned_on_every_update(tmp_path: Any) -> None:
    from desktop_uploader.system.keep_awake import KeepAwake

    spawned: list[int] = []

    def failing(platform: str, pid: int, reason: str) -> list[str]:
        spawned.append(pid)
        return ["sh", "-c", "exit 1"]  # like systemd-inhibit without a system bus

    awake = KeepAwake("linux", failing)
    assert awake.hold()
    awake._process.wait(5)  # type: ignore[union-attr]
    for _ in range(20):
        awake.hold()
    assert len(spawned) == 1 and awake.unavailable and not awake.holding


@pytest.mark.parametrize("inhibitor", ["false", "true"])
def test_settings_offer_only_what_works_on_this_desktop(make_desktop: Any, aloop: Any, inhibitor: str) -> None:
    """A user found tray, notifications and keep-awake offered where they silently did nothing (issue 14)."""
    from PySide6.QtWidgets import QCheckBox, QLabel

    from desktop_uploader.system.keep_awake import KeepAwake

    desktop = make_desktop(connect=False, keep_awake=True)
    window = desktop.window
    # An inhibitor that holds by running a child, like systemd-inhibit: ``false`` refuses (no system bus).
    desktop.session.keep_awake = KeepAwake("linux", lambda *_: [inhibitor, "sleep", "infinity"])
    run(aloop, in_thread(desktop.session.keep_awake.probe))
    window.tray_available = False  # offscreen has no tray; said explicitly, as on a desktop without one
    dialog = open_dialog(desktop)

    def box(name: str) -> QCheckBox:
        found = dialog.findChild(QCheckBox, name)
        assert found is not None, name
        return found

    def note(name: str) -> str:
        label = dialog.findChild(QLabel, f"{name}Unavailable")
        return "" if label is None else label.text()

    for name in ("notifications", "minimizeToTray"):
        assert not box(name).isEnabled()
        assert "no system tray" in note(name), note(name)
    refused = inhibitor == "false"
    assert box("keepAwake").isEnabled() is not refused
    assert ("refuses to let apps keep it awake" in note("keepAwake")) is refused, note("keepAwake")
    assert box("keepAwake").isChecked(), "the saved choice is kept, only greyed out"
    dialog.reject()


def test_a_batch_that_a_failure_ends_is_announced_too(make_desktop: Any, qtbot: Any) -> None:
    """A CI run under load finished the good file first and the refused one after it: "Uploads finished" never
    came, because only a completion could end a batch. The events come in that order here, as the engine
    sends them, with the summary refreshed between them."""
    desktop = make_desktop(connect=False)
    session = desktop.session
    notes: list[tuple[str, str]] = []
    session.notify.connect(lambda title, text: notes.append((title, text)))
    send = session.bridge.engineEvent.emit  # to the model and the session, as the engine's events go
    result = UploadResult("presigned-s3", 200, "u_1_good.safetensors", "loras/u/u_1_good.safetensors", "/c", "s", "e")
    for job, name in (("good", "good.safetensors"), ("bad", "bad.txt")):
        send(Queued(job, f"/tmp/{name}", name, 100))
    qtbot.waitUntil(lambda: session.model.rowCount() == 2)  # arrivals are inserted together, on the next turn
    for job in ("good", "bad"):
        send(StatusChanged(job, Status.UPLOADING))
    session.model.flush()
    send(Completed("good", result))
    send(StatusChanged("good", Status.COMPLETED))
    session.model.flush()
    assert notes == [], "one file is still uploading"
    send(Failed("bad", "Files of type '.txt' are not accepted.", False, retry_helps=False))
    send(StatusChanged("bad", Status.FAILED))
    session.model.flush()
    assert ("Uploads finished", "1 of 2 done · 1 failed") in notes, notes


def test_a_refresh_between_the_last_file_s_completion_and_its_status_still_announces(
    make_desktop: Any, qtbot: Any
) -> None:
    """The engine says Completed, then the status: the summary, refreshed between the two, still saw the file
    uploading, and the completion it had been told of was spent on that refresh (a flaky CI run)."""
    desktop = make_desktop(connect=False)
    session = desktop.session
    notes: list[tuple[str, str]] = []
    session.notify.connect(lambda title, text: notes.append((title, text)))
    send = session.bridge.engineEvent.emit
    send(Queued("only", "/tmp/only.safetensors", "only.safetensors", 100))
    qtbot.waitUntil(lambda: session.model.rowCount() == 1)
    send(StatusChanged("only", Status.UPLOADING))
    session.model.flush()
    send(Completed("only", UploadResult("presigned-s3", 100, "u_1_only", "loras/u/u_1_only", "/c", "s", "e")))
    session.model.flush()  # the refresh that came between the two
    send(StatusChanged("only", Status.COMPLETED))
    session.model.flush()
    assert notes == [("Uploads finished", "1 of 1 done")]
