"""What the window says and offers can be trusted (issue 14): labels, row rendering, the menu bar, the file dialog.

Rows are made by feeding the model the engine's own events, so each state (31% uploading, finishing,
cancelled, completed on a RunPod-style server) is shown exactly, without timing an upload into it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, QRect, Qt, QUrl, Slot
from PySide6.QtGui import QColor, QDesktopServices, QFont, QGuiApplication, QImage, QKeySequence, QPainter, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QListView,
    QMessageBox,
    QStyle,
    QStyleFactory,
    QStyleOptionViewItem,
    QToolBar,
)
from pytestqt.qtbot import QtBot

from desktop_uploader import APP_NAME, __version__
from desktop_uploader.engine import events
from desktop_uploader.engine.events import Status, UploadResult
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import Row
from desktop_uploader.gui import folders
from desktop_uploader.gui.bar_colours import bar_palette
from desktop_uploader.gui.palette import contrast, dark_palette
from desktop_uploader.gui.queue_delegate import UploadDelegate, row_text, status_area
from desktop_uploader.gui.queue_model import UploadQueueModel
from tests.gui.conftest import answer, run, until
from tests.gui.test_queue import drop

JOB = "job-1"


def fed_row(desktop: Any, aloop: Any, *fed: events.Event, size: int = 300 * MiB) -> Row:
    """One row in the real window's queue, brought to a state by engine events."""
    model = desktop.session.model
    model.apply_event(events.Queued(JOB, "/models/anime.safetensors", "anime", size))
    run(aloop, until(lambda: model.rowCount() == 1, 5, "the row"))
    for event in fed:
        model.apply_event(event)
    model.flush()
    row = model.row_by_id(JOB)
    assert row is not None
    return row


def uploading(fraction: float, speed: float = 4_000_000.0) -> list[events.Event]:
    confirmed = int(300 * MiB * fraction)
    return [
        events.StatusChanged(JOB, Status.UPLOADING),
        events.Progress(JOB, "presigned-s3", confirmed, 0, 300 * MiB, speed, 0.2),
    ]


def runpod_result() -> UploadResult:
    """A RunPod-style server answers the volume's file path as networkVolumePath: the ComfyUI path again."""
    volume = "/runpod-volume/loras/u/u_1_anime.safetensors"
    return UploadResult(
        "presigned-s3", 300 * MiB, "u_1_anime.safetensors", "loras/u/u_1_anime.safetensors", volume, volume, "e"
    )


# -- 1. labels ---------------------------------------------------------------------------------------------


def test_copy_s3_path_copies_the_s3_key_not_the_comfyui_path(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(connect=False)
    window = desktop.window
    row = fed_row(desktop, aloop, events.StatusChanged(JOB, Status.COMPLETED), events.Completed(JOB, runpod_result()))
    entries = dict(window.menu_entries(row))
    entries["Copy ComfyUI path"]()
    assert QGuiApplication.clipboard().text() == "/runpod-volume/loras/u/u_1_anime.safetensors"
    entries["Copy S3 path"]()
    assert QGuiApplication.clipboard().text() == "loras/u/u_1_anime.safetensors"
    assert window.statusBar().currentMessage() == "S3 path copied."


def test_the_title_shows_progress_and_the_app_name_once(make_desktop: Any, aloop: Any) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    before = app.applicationDisplayName()
    app.setApplicationDisplayName(APP_NAME)  # as the app does: Qt appends it to titles not ending with it
    try:
        desktop = make_desktop(connect=False)
        fed_row(desktop, aloop, *uploading(0.31))
        title = desktop.window.windowTitle()
        run(aloop, desktop.session.shutdown())  # the window closes after the test without asking
    finally:
        app.setApplicationDisplayName(before)
    assert "31%" in title
    assert title.endswith(APP_NAME) and title.count(APP_NAME) == 1, title


def test_one_file_that_is_not_a_model_is_told_in_the_singular(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    desktop = make_desktop(connect=False, auto_start=False)
    window = desktop.window
    model = make_file(1000, name="pack/solo.safetensors")
    readme = model.path.parent / "readme.txt"
    readme.write_text("not a model")
    seen: list[str] = []

    async def scenario() -> None:
        drop(window, [model.path, readme])  # dropped itself: asked about (in a folder it is skipped)
        await until(lambda: window.findChild(QMessageBox, "otherFilesQuestion") is not None, 10, "the question")
        box = window.findChild(QMessageBox, "otherFilesQuestion")
        seen.append(box.text())
        seen.append(box.defaultButton().text())  # Enter skips it: the safe choice stores nothing
        await answer(window, "otherFilesQuestion", "Skip it")
        await until(lambda: desktop.session.model.rowCount() == 1, 10, "the model file's row")

    run(aloop, scenario())
    assert seen == ["readme.txt isn't a model file.", "Skip it"]


def test_a_type_with_a_look_alike_letter_is_said_in_the_question(make_desktop: Any, make_file: Any, aloop: Any) -> None:
    """ ".safetensоrs" (a Cyrillic о) was asked about as not a model file, with nothing to say why."""
    desktop = make_desktop(connect=False, auto_start=False)
    window = desktop.window
    odd = make_file(1000, name="lora.safetens\u043ers")
    seen: list[str] = []

    async def scenario() -> None:
        drop(window, [odd.path])
        await until(lambda: window.findChild(QMessageBox, "otherFilesQuestion") is not None, 10, "the question")
        seen.append(window.findChild(QMessageBox, "otherFilesQuestion").informativeText())
        await answer(window, "otherFilesQuestion", "Skip it")

    run(aloop, scenario())
    assert seen == [
        "Its type, .safetens\u043ers, has characters that only look like plain letters: \u043e (cyrillic small "
        "letter o). Rename the file with plain letters to upload it as a model. The server may refuse it. "
        "Add it anyway?"
    ]


def test_a_cancelled_row_shows_cancelled_and_no_percentage(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(connect=False)
    window = desktop.window
    row = fed_row(desktop, aloop, *uploading(0.74), events.StatusChanged(JOB, Status.CANCELLED))
    shown = row_text(row, 0.0)
    assert (shown.status, shown.progress, shown.rate, shown.show_bar) == ("Cancelled", "", "", False)
    model = desktop.session.model
    assert model.data(model.index(0), Qt.ItemDataRole.AccessibleTextRole) == "anime.safetensors, Cancelled"
    assert window.summary_label.text() == "1 cancelled"  # "No uploads" beside the row read as a contradiction


# -- 2. rendering ------------------------------------------------------------------------------------------


def test_finishing_shows_no_speed_and_no_time_left(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(connect=False)
    row = fed_row(desktop, aloop, *uploading(1.0), events.StatusChanged(JOB, Status.COMPLETING))
    shown = row_text(row, 0.0)
    run(aloop, desktop.session.shutdown())  # the window closes after the test without asking
    assert shown.status == "Finishing…"
    assert shown.rate == ""


def test_a_failed_row_shows_its_whole_reason_where_the_speed_would_be(make_desktop: Any, aloop: Any) -> None:
    """A GUI audit's reason was cut at "…(SignatureDoesNotMatch). Check the…" beside the empty speed column."""
    desktop = make_desktop(connect=False)
    window = desktop.window
    window.resize(960, 620)
    reason = (
        "Storage at 127.0.0.1:32973 refused your access key or secret (SignatureDoesNotMatch). Check them in Settings."
    )
    row = fed_row(desktop, aloop, events.StatusChanged(JOB, Status.FAILED, reason), events.Failed(JOB, reason, True))
    option = QStyleOptionViewItem()
    window.view.initViewItemOption(option)
    option.rect = window.view.visualRect(desktop.session.model.index(0))
    shown = row_text(row, 0.0)
    area = status_area(window.delegate.layout(option), shown)
    assert shown.rate == "" and shown.status == f"Failed: {reason}"
    assert option.fontMetrics.elidedText(shown.status, Qt.TextElideMode.ElideRight, area.width()) == shown.status


def test_a_selected_row_draws_its_bar_in_a_colour_unlike_the_selection(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(connect=False)
    window = desktop.window
    fed_row(desktop, aloop, events.StatusChanged(JOB, Status.COMPLETED), events.Completed(JOB, runpod_result()))
    index = desktop.session.model.index(0)
    window.view.setCurrentIndex(index)
    option = QStyleOptionViewItem()
    window.view.initViewItemOption(option)
    option.state |= QStyle.StateFlag.State_Selected
    selection = option.palette.color(QPalette.ColorRole.Highlight)
    bar = bar_palette(option.palette, selected=True).color(QPalette.ColorRole.Highlight)
    assert bar != selection
    assert bar_palette(option.palette, selected=False).color(QPalette.ColorRole.Highlight) == selection


def keyboard_selected_row(qtbot: QtBot, palette: QPalette, *fed: events.Event) -> tuple[QImage, QRect]:
    """A real list, model and delegate; the second row fed ``fed`` and selected with Down, grabbed as shown."""
    view = QListView()
    qtbot.addWidget(view)
    view.setPalette(palette)
    model = UploadQueueModel(clock=lambda: 0.0, parent=view)
    delegate = UploadDelegate(lambda: 0.0, view)
    view.setItemDelegate(delegate)
    view.setModel(model)
    model.apply_event(events.Queued("above", "/models/other.safetensors", "other", 100 * MiB))
    model.apply_event(events.Queued(JOB, "/models/anime.safetensors", "anime", 300 * MiB))
    qtbot.waitUntil(lambda: model.rowCount() == 2)
    for event in fed:
        model.apply_event(event)
    model.flush()
    view.resize(900, 300)
    view.show()
    view.setCurrentIndex(model.index(0))
    QTest.keyClick(view, Qt.Key.Key_Down)
    assert view.selectionModel().selectedIndexes() == [model.index(1)]
    option = QStyleOptionViewItem()
    view.initViewItemOption(option)
    option.rect = view.visualRect(model.index(1))
    return view.viewport().grab().toImage(), delegate.layout(option).bar


@pytest.mark.parametrize("status", [Status.UPLOADING, Status.PAUSED])
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_a_selected_rows_bar_shows_stored_sent_and_remaining_apart_from_the_selection(
    qtbot: QtBot, dark: bool, status: Status
) -> None:
    """A first-time-user audit saw nothing of a selected row's bar: stored, sent and track all white on the blue."""
    fusion = QStyleFactory.create("Fusion")
    assert fusion is not None
    palette = dark_palette() if dark else fusion.standardPalette()
    total, stored, sent = 300 * MiB, 100 * MiB, 60 * MiB
    fed = [
        events.StatusChanged(JOB, Status.UPLOADING),
        events.Progress(JOB, "presigned-s3", stored, sent, total, 4e6, 50.0, sent=stored + sent),
        events.StatusChanged(JOB, status),
    ]
    image, bar = keyboard_selected_row(qtbot, palette, *fed)
    inner, ratio = bar.adjusted(1, 1, -1, -1), image.devicePixelRatio()

    def at(fraction: float, y: int = bar.center().y()) -> QColor:
        return image.pixelColor(round((inner.left() + inner.width() * fraction) * ratio), round(y * ratio))

    seen = {"stored": at(stored / 2 / total), "track": at(0.9), "highlight": at(0.9, bar.top() - 3)}
    if status is Status.UPLOADING:  # a paused row's parts in flight are dropped: it shows none
        seen["sent"] = at((stored + sent / 2) / total)
    names = list(seen)
    measured = {(a, b): contrast(seen[a], seen[b]) for i, a in enumerate(names) for b in names[i + 1 :]}
    # 1.0 is the same colour, 1.5 a step anyone sees; the progress itself is held to WCAG 1.4.11's 3:1.
    needed = {pair: 3.0 if pair == ("stored", "track") else 1.5 for pair in measured}
    failing = {" / ".join(pair): round(value, 2) for pair, value in measured.items() if value < needed[pair]}
    assert not failing, f"{ {name: colour.name() for name, colour in seen.items()} }: {failing}"
    # And it reads the way every other row's bar does: its empty part is the track they all have, the filled
    # part the one that stands out. The next audit read a dark track under a white fill at 8 % as 90 % full.
    track = palette.color(QPalette.ColorRole.Base)
    assert seen["track"] == track, (seen["track"].name(), track.name())
    assert contrast(seen["stored"], track) >= 3.0


def test_painting_a_badge_leaves_the_painters_font_as_it_was(make_desktop: Any) -> None:
    window = make_desktop(connect=False).window
    image = QImage(240, 40, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    painter.setFont(window.view.font())
    before = QFont(painter.font())
    window.delegate._badge(painter, QRect(0, 0, 230, 20), "presigned-s3", window.palette())
    after = QFont(painter.font())
    painter.end()
    assert after == before
    assert after.pointSizeF() == before.pointSizeF()


# -- 3. the menu bar ---------------------------------------------------------------------------------------


def menu(window: Any, title: str) -> list[str]:
    found = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == title)
    return [a.text() for a in found.actions() if not a.isSeparator()]


class LinkCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url)


def test_the_menu_bar_offers_every_toolbar_command_with_platform_shortcuts(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(connect=False)
    window = desktop.window
    assert [a.text().replace("&", "") for a in window.menuBar().actions()] == ["File", "Edit", "Uploads", "Help"]
    assert menu(window, "File") == ["Add files…", "Add folder…", "History…", "Empty test storage…", "Quit"]
    assert menu(window, "Edit") == ["Settings…"]
    assert menu(window, "Uploads") == ["Start all", "Pause all", "Clear finished"]
    assert menu(window, "Help") == [f"About {APP_NAME}", "Open log folder"]
    toolbar = window.findChild(QToolBar, "mainToolbar")
    in_menus = {a for top in window.menuBar().actions() for a in top.menu().actions()}
    assert {a for a in toolbar.actions() if a.text() and not a.isSeparator()} <= in_menus, (
        "a toolbar command in no menu"
    )
    file_menu = window.menuBar().actions()[0].menu()
    assert file_menu.actions()[0] is window.add_files_action  # the toolbar's own actions, not copies
    quit_keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Quit)  # none offscreen: Ctrl+Q stands in
    assert window.quit_action.shortcut() == (quit_keys[0] if quit_keys else QKeySequence("Ctrl+Q"))
    preferences = QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences)
    assert window.settings_action.shortcut() == (preferences[0] if preferences else QKeySequence("Ctrl+,"))
    catcher = LinkCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    try:
        next(a for a in window.menuBar().actions()[3].menu().actions() if a.text() == "Open log folder").trigger()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [Path(u.toLocalFile()) for u in catcher.opened] == [Path(desktop.session.paths.log_dir)]
    next(a for a in window.menuBar().actions()[3].menu().actions() if a.text().startswith("About")).trigger()
    about = window.findChild(QMessageBox, "aboutBox")
    assert about is not None and about.isVisible() and __version__ in about.text()
    about.accept()


def test_where_no_file_manager_opens_the_log_folder_its_path_is_shown(make_desktop: Any, aloop: Any) -> None:
    """On a bare Linux desktop Qt finds no launcher (offscreen has none either): the audit saw nothing happen."""
    desktop = make_desktop(connect=False)
    window = desktop.window
    next(a for a in window.menuBar().actions()[3].menu().actions() if a.text() == "Open log folder").trigger()
    box = window.findChild(QMessageBox, "folderNotOpened")
    assert box is not None and box.isVisible()
    assert box.text() == "No file manager opened the folder. It is here:"
    assert box.informativeText() == str(desktop.session.paths.log_dir)
    box.accept()


@pytest.mark.parametrize("exit_code", [3, 0])
def test_an_xdg_open_that_opens_nothing_is_seen_and_the_path_shown(
    make_desktop: Any, aloop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exit_code: int
) -> None:
    """An installed-app audit: xdg-open started, found no file manager and exited 3, and Qt, which counts a
    launch as success, showed nothing. A stand-in xdg-open on PATH exits as asked and says what it got."""
    launcher = tmp_path / "bin" / "xdg-open"
    launcher.parent.mkdir()
    launcher.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{tmp_path}/asked"\nexit {exit_code}\n', encoding="utf-8")
    launcher.chmod(0o755)
    monkeypatch.setenv("PATH", f"{launcher.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(folders, "WATCHED_PLATFORMS", (QGuiApplication.platformName(),))  # offscreen stands in
    desktop = make_desktop(connect=False)
    window = desktop.window
    next(a for a in window.menuBar().actions()[3].menu().actions() if a.text() == "Open log folder").trigger()
    watch = window.findChild(folders.LauncherWatch, "folderLauncherWatch")
    assert watch is not None
    run(aloop, until(lambda: watch.done, 15, "xdg-open to be watched to its end"))
    assert (tmp_path / "asked").read_text(encoding="utf-8") == str(desktop.session.paths.log_dir)
    assert watch.exit_code == exit_code
    box = window.findChild(QMessageBox, "folderNotOpened")
    if exit_code == 0:
        assert box is None, "a file manager opened it: nothing more to say"
        return
    assert box is not None and box.isVisible()
    assert box.informativeText() == str(desktop.session.paths.log_dir)
    box.accept()


def test_quit_asks_like_closing_the_window_when_uploads_run(make_desktop: Any, aloop: Any) -> None:
    desktop = make_desktop(connect=False)
    window = desktop.window
    quits: list[bool] = []
    window.quitRequested.connect(quits.append)
    fed_row(desktop, aloop)  # queued: quitting now would stop it

    async def scenario() -> None:
        window.quit_action.trigger()
        await answer(window, "closeQuestion", "Don't quit")

    run(aloop, scenario())
    assert quits == [] and window.isVisible()
    desktop.session.model.apply_event(events.StatusChanged(JOB, Status.COMPLETED))
    window.quit_action.trigger()
    assert quits == [False]


# -- 4. the file dialog ------------------------------------------------------------------------------------


def open_dialog(window: Any, name: str) -> QFileDialog:
    dialogs = [d for d in window.findChildren(QFileDialog, name) if d.isVisible()]
    assert len(dialogs) == 1
    return dialogs[0]


def test_the_file_dialog_opens_at_home_then_in_the_last_folder_used(
    make_desktop: Any, make_file: Any, aloop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "person"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    desktop = make_desktop(connect=False, auto_start=False)
    window = desktop.window
    sample = make_file(1000, name="picked/lora.safetensors")
    window.add_files_action.trigger()
    dialog = open_dialog(window, "addFilesDialog")
    assert Path(dialog.directory().absolutePath()) == home
    dialog.selectFile(str(sample.path))
    dialog.accept()
    run(aloop, until(lambda: desktop.session.model.rowCount() == 1, 10, "the chosen file's row"))
    run(aloop, until(lambda: not window.findChildren(QFileDialog, "addFilesDialog"), 5, "the dialog to go"))
    window.add_files_action.trigger()
    again = open_dialog(window, "addFilesDialog")
    assert Path(again.directory().absolutePath()) == sample.path.parent
    again.reject()
    window.add_folder_action.trigger()
    assert Path(open_dialog(window, "addFolderDialog").directory().absolutePath()) == sample.path.parent
    open_dialog(window, "addFolderDialog").reject()
    run(aloop, desktop.session.shutdown())
    umask = os.umask(0o022)  # the usual one, which left the file where it is kept readable by all
    try:
        window.close()  # and it is remembered across a restart (a GUI audit's dialogs always opened at home)
    finally:
        os.umask(umask)
    kept = desktop.session.paths.config_dir / "window.ini"
    assert str(sample.path.parent) in kept.read_text()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # a folder of the person's is nobody else's business
    later = make_desktop(connect=False, auto_start=False)
    later.window.add_files_action.trigger()
    assert Path(open_dialog(later.window, "addFilesDialog").directory().absolutePath()) == sample.path.parent
    open_dialog(later.window, "addFilesDialog").reject()


def test_a_sentence_the_session_says_after_its_window_is_gone_is_dropped(make_desktop: Any) -> None:
    """A drop's last step can run after the window closed (CI saw it after a test): a lambda holding the
    window then raised "Internal C++ object (MainWindow) already deleted" in Qt's event loop."""
    import shiboken6

    from desktop_uploader.gui.main_window import MainWindow

    desktop = make_desktop(connect=False)
    second = MainWindow(desktop.session)
    shiboken6.delete(second)  # the C++ window is gone; its Python object stays
    assert not shiboken6.isValid(second)
    desktop.session.message.emit("Added 1 file.")  # pytest-qt fails the test on an exception in a slot
    assert desktop.window.statusBar().currentMessage() == "Added 1 file."
