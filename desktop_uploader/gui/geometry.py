"""The window's size and place: remembered across restarts, and never bigger than the screen.

At 150 % scaling the window's fixed 960×620 (1440×930 device pixels) outgrew a 1280×720 screen, and
every start forgot where the person had put it. The geometry is kept in a small QSettings file next
to the settings (QSettings reads it once and writes it when the window hides; nothing else touches
the disk), then clamped to the available area of the screen the window lands on.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QRect, QSettings, QSize
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QWidget

from desktop_uploader.engine.private import private_file

KEY = "mainWindow/geometry"
# A title bar and borders the window manager adds around the window, allowed for before the first
# show (when the real frame isn't known yet).
FRAME_ALLOWANCE = QSize(16, 48)


def fitted(wanted: QRect, available: QRect, frame: QSize) -> QRect:
    """``wanted`` (the client area) shrunk and moved so that it and its ``frame`` lie inside ``available``.

    The frame is taken as equal borders left, right and bottom, and the rest on top (the title bar).
    """
    side = frame.width() // 2
    top_border = frame.height() - side
    width = min(wanted.width(), available.width() - 2 * side)
    height = min(wanted.height(), available.height() - top_border - side)
    right_limit = available.left() + available.width() - side - width
    bottom_limit = available.top() + available.height() - side - height
    left = max(min(wanted.left(), right_limit), available.left() + side)
    top = max(min(wanted.top(), bottom_limit), available.top() + top_border)
    return QRect(left, top, width, height)


def screen_for(window: QWidget, rect: QRect) -> QScreen:
    screen = QGuiApplication.screenAt(rect.center()) or window.screen() or QGuiApplication.primaryScreen()
    return screen


class WindowGeometry(QObject):
    """Restores ``window``'s geometry from ``file`` now, fits it to the screen, and saves it when it hides."""

    def __init__(self, window: QWidget, file: Path) -> None:
        super().__init__(window)
        self.window = window
        # Made 0600 first: Qt writes it anew each time but keeps an existing file's mode, and it holds the
        # last folder files were picked from, which is nobody else's business (an audit found it 0644).
        with contextlib.suppress(OSError):
            private_file(file)
        self.store = QSettings(str(file), QSettings.Format.IniFormat)
        self.restore()
        window.installEventFilter(self)

    def restore(self) -> None:
        saved = self.store.value(KEY)
        if saved is not None:
            self.window.restoreGeometry(saved)
        else:
            self._centre()
        self.fit()

    def _centre(self) -> None:
        rect = QRect(self.window.geometry())
        rect.moveCenter(screen_for(self.window, rect).availableGeometry().center())
        self.window.setGeometry(rect)

    def frame(self) -> QSize:
        """The frame the window manager draws, once known (shown); an allowance for it before."""
        window = self.window
        if window.isVisible() and window.frameGeometry() != window.geometry():
            return window.frameGeometry().size() - window.geometry().size()
        return FRAME_ALLOWANCE

    def fit(self) -> None:
        window = self.window
        available = screen_for(window, window.geometry()).availableGeometry()
        frame = self.frame()
        limit = QSize(available.width() - frame.width(), available.height() - frame.height())
        minimum = window.minimumSize()
        window.setMinimumSize(minimum.boundedTo(limit))
        rect = fitted(window.geometry(), available, frame)
        if rect != window.geometry():
            window.setGeometry(rect)

    def save(self) -> None:
        self.store.setValue(KEY, self.window.saveGeometry())
        self.store.sync()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window:
            if event.type() in (QEvent.Type.Hide, QEvent.Type.Close):
                self.save()
            elif event.type() == QEvent.Type.ScreenChangeInternal:
                self.fit()  # moved to a smaller screen, or the scale changed
        return False
