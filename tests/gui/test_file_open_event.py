"""macOS "Open With": Finder sends the app a QFileOpenEvent per file, and the window queues it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

from desktop_uploader.gui import app as gui_app
from tests.gui.conftest import run, until
from tests.support.safetensors_files import write_safetensors


def test_a_file_open_event_queues_the_file_and_brings_the_window_forward(
    qapp: QApplication, make_desktop: Any, aloop: Any
) -> None:
    desktop = make_desktop(auto_start=False)
    events = gui_app.welcome_opened_files(qapp, desktop)
    try:
        opened = desktop.session.paths.data_dir.parent / "opened.safetensors"
        write_safetensors(opened, 4096)
        desktop.window.hide()
        QApplication.postEvent(qapp, QFileOpenEvent(QUrl.fromLocalFile(str(opened))))
        names = lambda: [row.file_name for row in desktop.session.model.rows()]  # noqa: E731
        run(aloop, until(lambda: names() == ["opened.safetensors"], 30, "the opened file to be queued"))
        assert desktop.window.isVisible()
        # An event for something that is not a file (Qt sends URL events too) queues nothing.
        QApplication.postEvent(qapp, QFileOpenEvent(QUrl("https://example.invalid/model")))
        QApplication.processEvents()
        assert names() == ["opened.safetensors"]
    finally:
        qapp.removeEventFilter(events)
