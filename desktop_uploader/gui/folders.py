"""Opening a folder in the file manager, and saying where it is when no file manager answers.

A GUI audit on a bare Linux desktop pressed Help › Open log folder and nothing happened: Qt found no
launcher and said so only on stderr. The folder's path, selectable, is what that person needs.

Where Qt does find ``xdg-open``, it counts a launch as success, and on a desktop with no file manager
``xdg-open`` starts, finds nothing to open folders with and exits 3: an installed-app audit saw nothing
happen again. On such desktops the app runs ``xdg-open`` itself and watches its exit for a while.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMessageBox, QWidget

WATCHED_PLATFORMS = ("xcb", "wayland")  # Qt's Linux desktops, where it would run xdg-open unwatched
WATCH_SECONDS = 10.0  # xdg-open that fails does so at once; one still running has handed over
POLL_MS = 100


class LauncherWatch(QObject):
    """``xdg-open`` for one folder, polled from the GUI thread's timer (never waited on)."""

    def __init__(self, parent: QWidget, folder: Path, launcher: str) -> None:
        super().__init__(parent)
        self.setObjectName("folderLauncherWatch")
        self.folder = folder
        self.exit_code: int | None = None
        self.done = False
        self._parent = parent
        self._polls_left = int(WATCH_SECONDS * 1000 / POLL_MS)
        self._process = subprocess.Popen(  # a new session: it outlives the app, as a file manager should
            [launcher, str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._timer.start()

    def _poll(self) -> None:
        self.exit_code = self._process.poll()
        self._polls_left -= 1
        if self.exit_code is None and self._polls_left > 0:
            return
        self._timer.stop()
        self.done = True
        if self.exit_code not in (None, 0):
            show_where(self._parent, self.folder)


def _watched_launcher() -> str | None:
    if sys.platform in ("win32", "darwin") or QGuiApplication.platformName() not in WATCHED_PLATFORMS:
        return None
    return shutil.which("xdg-open")


def open_folder(parent: QWidget, folder: Path) -> QMessageBox | LauncherWatch | None:
    """Show ``folder`` in the file manager; where none opens it, a message with its path.

    Returns what tests wait on: the message, or the watch on ``xdg-open`` that may show it later.
    """
    launcher = _watched_launcher()
    if launcher is not None:
        try:
            return LauncherWatch(parent, folder, launcher)
        except OSError:
            return show_where(parent, folder)
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
        return None
    return show_where(parent, folder)


def show_where(parent: QWidget, folder: Path) -> QMessageBox:
    box = QMessageBox(parent)
    box.setObjectName("folderNotOpened")
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle("Open folder")
    box.setText("No file manager opened the folder. It is here:")
    box.setInformativeText(str(folder))
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.finished.connect(box.deleteLater)
    box.open()  # never exec(): see dialogs.py
    return box
