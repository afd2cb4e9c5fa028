"""macOS "Open With" and double-clicks on a document: the files arrive as QFileOpenEvent, not argv.

Finder starts the app bare (or finds it running) and then sends one file-open event per file, so
the command line never sees them. The filter turns those events into the same "queue these files"
that a second launch's hand-over uses (desktop_uploader.gui.app.welcome_opened_files).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QFileOpenEvent


class FileOpenEvents(QObject):
    """Emits ``opened([path])`` for each file the system asks the app to open."""

    opened = Signal(list)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.FileOpen or not isinstance(event, QFileOpenEvent):
            return False
        path = event.file() or event.url().toLocalFile()
        if path:
            self.opened.emit([path])
        return True  # handled: Qt has nothing else to do with a file it was asked to open
