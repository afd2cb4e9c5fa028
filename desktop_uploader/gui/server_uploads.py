"""The window's offer of the server's unfinished uploads that this computer has no record of.

After a connection, the server is asked (off the GUI thread) for unfinished uploads that the local
resume store doesn't know, because it was lost or damaged, or they were started elsewhere. If there
are any, one calm line in the status bar says how many, that dropping the same file again continues
it, and offers to discard them. Nothing is said for a server that can't ``list`` (the seed's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

from desktop_uploader.engine.api_client import ApiClient
from desktop_uploader.engine.errors import UploaderError
from desktop_uploader.engine.manager import UploadManager
from desktop_uploader.engine.rows import plural
from desktop_uploader.engine.server_uploads import ServerUpload, discard_all, unknown_uploads
from desktop_uploader.gui.dialogs import finished
from desktop_uploader.gui.tasks import in_thread, spawn

log = logging.getLogger(__name__)


class ServerUploadsOffer(QObject):
    """What the server holds that no record here knows; the list changes only on the GUI thread."""

    changed = Signal()

    def __init__(self, manager: UploadManager, say: Callable[[str], None]) -> None:
        super().__init__()
        self.manager = manager
        self.say = say
        self.uploads: list[ServerUpload] = []

    def _set(self, uploads: list[ServerUpload]) -> None:
        self.uploads = uploads
        self.changed.emit()

    def _ask(self, api: ApiClient) -> list[ServerUpload]:
        try:
            return unknown_uploads(api, self.manager.state)
        except UploaderError as exc:  # an offer, not a task: no answer means nothing to offer now
            log.info("The server's unfinished uploads could not be listed: %s", exc.message)
            return []

    async def refresh(self, connected: bool = True) -> int:
        api = self.manager.api
        self._set(await in_thread(self._ask, api) if connected and api is not None else [])
        return len(self.uploads)

    def forget(self, s3_key: str) -> None:
        """An upload that was just completed here (a dropped file continued it) is no longer on offer."""
        kept = [u for u in self.uploads if u.s3_key != s3_key]
        if len(kept) != len(self.uploads):
            self._set(kept)

    async def discard(self) -> None:
        api, uploads = self.manager.api, list(self.uploads)
        if api is None or not uploads:
            return
        removed, failed = await in_thread(discard_all, api, uploads)
        if failed:
            gone = plural(removed, "unfinished upload")
            self.say(f"Removed {gone} from the server; {failed} could not be removed now.")
        else:
            self.say(f"Removed {plural(removed, 'unfinished upload')} from the server.")
        await self.refresh()

    def text(self) -> str:
        count = len(self.uploads)
        which = "1 unfinished upload" if count == 1 else f"{count} unfinished uploads"
        return f"{which} on the server from earlier. Drop the same file again to continue it, or discard."


async def confirm_discard(parent: QWidget, uploads: list[ServerUpload]) -> bool:
    box = QMessageBox(parent)
    box.setObjectName("discardServerUploadsQuestion")
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Discard unfinished uploads")
    names = ", ".join(u.name for u in uploads[:5]) + (f" and {len(uploads) - 5} more" if len(uploads) > 5 else "")
    box.setText(f"Remove {plural(len(uploads), 'unfinished upload')} from the server: {names}?")
    box.setInformativeText("The parts stored so far are deleted: uploading those files again starts from 0.")
    discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    keep = box.addButton("Keep them", QMessageBox.ButtonRole.RejectRole)
    discard.setAutoDefault(False)  # Enter and Esc keep the stored parts: destroying them takes a click
    box.setDefaultButton(keep)
    box.setEscapeButton(keep)
    await finished(box)
    chosen = box.clickedButton() is discard
    box.deleteLater()
    return chosen


class ServerUploadsNotice(QWidget):
    """A line about them above the queue, with a Discard button; hidden while there are none."""

    def __init__(self, offer: ServerUploadsOffer, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("serverUploadsNotice")
        self.offer = offer
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 4, 12, 4)
        self.label = QLabel(self)
        self.label.setObjectName("serverUploadsText")
        self.label.setWordWrap(True)
        self.button = QPushButton("Discard…", self)
        self.button.setObjectName("discardServerUploads")
        self.button.setToolTip("Remove these unfinished uploads from the server")
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.button.clicked.connect(lambda: spawn(self._discard()))
        offer.changed.connect(self._show)
        self._show()

    def _show(self) -> None:
        self.label.setText(self.offer.text() if self.offer.uploads else "")
        self.setVisible(bool(self.offer.uploads))

    async def _discard(self) -> None:
        uploads = list(self.offer.uploads)
        if uploads and await confirm_discard(self.window(), uploads):
            self.button.setEnabled(False)
            try:
                await self.offer.discard()
            finally:
                self.button.setEnabled(True)
