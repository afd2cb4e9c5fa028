"""Asking before a file already stored where uploads go (a server, or your own S3 storage) is uploaded again.

The check itself (size, then sha256 only when a size matches) runs on a worker thread in
``history_session.py``; this is only the question. Skipping is the default: the safe choice is the
one that sends nothing and stores nothing twice.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

from desktop_uploader.engine.history import HistoryEntry
from desktop_uploader.engine.methods.base import DIRECT
from desktop_uploader.gui.dialogs import finished

SKIP = "Skip"
UPLOAD_AGAIN = "Upload again"


def _when(entry: HistoryEntry) -> str:
    return time.strftime("%d %b %Y at %H:%M", time.localtime(entry.completed_at))


def _named(path: Path, entry: HistoryEntry) -> str:
    other = entry.other_name(path)
    return f"{path.name} (the same as {other})" if other else path.name


async def ask_already_uploaded(parent: QWidget, found: list[tuple[Path, HistoryEntry]]) -> bool:
    """True to skip the files (the default, also for Escape), False to upload them again."""
    box = QMessageBox(parent)
    box.setObjectName("alreadyUploadedQuestion")
    box.setIcon(QMessageBox.Icon.Question)
    path, entry = found[0]
    where = entry.comfyui_path or entry.s3_path or entry.file_name
    # Your own S3 storage is no server: a direct-S3 audit's bucket was called "this server".
    there = "in your S3 storage" if entry.method == DIRECT else "on this server"
    box.setWindowTitle("Already uploaded")
    if len(found) == 1:
        other = entry.other_name(path)
        what = f"{path.name} has the same contents as {other}, which" if other else path.name
        box.setText(f"{what} is already {there}: it was uploaded on {_when(entry)} as {where}.")
        box.setInformativeText("Skip it, or upload it again as a second copy?")
    else:
        names = ", ".join(_named(p, e) for p, e in found[:5]) + (
            f" and {len(found) - 5} more" if len(found) > 5 else ""
        )
        box.setText(f"{len(found)} of these files are already {there}: {names}.")
        box.setInformativeText("Skip them, or upload them again as second copies?")
    skip = box.addButton(SKIP, QMessageBox.ButtonRole.RejectRole)
    box.addButton(UPLOAD_AGAIN, QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(skip)
    box.setEscapeButton(skip)
    await finished(box)
    clicked = box.clickedButton()
    box.deleteLater()
    return clicked is skip or clicked is None
