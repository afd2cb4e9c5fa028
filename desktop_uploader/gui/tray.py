"""The tray icon: overall progress in its tooltip, notifications, and a way back to the window."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from desktop_uploader import APP_NAME
from desktop_uploader.engine.rows import QueueSummary
from desktop_uploader.gui.icons import app_icon
from desktop_uploader.gui.main_window import MainWindow
from desktop_uploader.gui.session import AppSession


def tooltip(summary: QueueSummary) -> str:
    if not summary.total:
        return APP_NAME
    if summary.active:
        return f"{APP_NAME}: {round(summary.fraction * 100)}% · {summary.text()}"
    return f"{APP_NAME}: {summary.text()}"


class Tray(QObject):
    def __init__(self, session: AppSession, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.icon = QSystemTrayIcon(app_icon(), self)
        self.icon.setToolTip(APP_NAME)
        menu = QMenu(window)
        menu.addAction("Show Desktop Uploader").triggered.connect(self.show_window)
        menu.addAction("Pause all").triggered.connect(session.pause_all)
        menu.addAction("Start all").triggered.connect(session.start_all)
        menu.addSeparator()
        menu.addAction("Quit").triggered.connect(window.quit_or_ask)  # quits, asking first if uploads run
        self.menu = menu
        self.icon.setContextMenu(menu)
        self.icon.activated.connect(self._activated)
        session.model.summaryChanged.connect(lambda summary: self.icon.setToolTip(tooltip(summary)))
        session.notify.connect(self.notify)
        self.icon.show()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_window()

    def show_window(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def notify(self, title: str, text: str) -> None:
        self.icon.showMessage(title, text, app_icon(), 8000)
