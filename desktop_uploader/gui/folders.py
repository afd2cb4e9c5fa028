"""Opening a folder in the file manager, and saying where it is when no file manager answers.

A GUI audit on a bare Linux desktop pressed Help › Open log folder and nothing happened: Qt found no
launcher and said so only on stderr. The folder's path, selectable, is what that person needs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget


def open_folder(parent: QWidget, folder: Path) -> QMessageBox | None:
    """Show ``folder`` in the file manager; where none opens it, a message with its path (returned, for tests)."""
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
        return None
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
