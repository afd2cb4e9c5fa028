"""Settings opens once the saved token and secret are read, and they are read off the GUI thread.

They live in the keychain. Read on the GUI thread, as they were, the window froze for as long as the
keychain took: seconds for a Secret Service that D-Bus starts on a fresh Linux desktop, or until a
person answered a locked keychain's unlock prompt. The window never waits on the keychain; the
dialog opens a moment later instead, filled in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from desktop_uploader.engine.methods.base import DIRECT
from desktop_uploader.gui.settings_dialog import SettingsDialog
from desktop_uploader.gui.settings_pages import unavailable_features
from desktop_uploader.gui.tasks import in_thread, spawn

if TYPE_CHECKING:
    from desktop_uploader.gui.main_window import MainWindow
    from desktop_uploader.gui.session import AppSession

log = logging.getLogger(__name__)
UNREADABLE = "your system keychain, which could not be read just now"


@dataclass(frozen=True)
class SavedSecrets:
    token: str  # for the server in the settings, or ""
    direct_secret: str  # for your own S3 storage in the settings, or ""
    where: str  # where secrets are kept, as the dialog says it


def read_saved_secrets(session: AppSession) -> SavedSecrets:
    """On a worker thread: the keychain (or the private file that stands in for it)."""
    settings = session.settings
    return SavedSecrets(
        session.token_for(settings.server_url) or "",
        session.direct_secret(settings) or "",
        session.credentials.where,
    )


class SettingsOpener:
    """``open()`` for the menu, the toolbar and the first-run buttons: one dialog, however often pressed."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.opening = False
        self.own_s3 = False

    def open(self, *, own_s3: bool = False) -> None:
        """``own_s3``: at your own S3 storage's fields, sending there ticked (the first-run "Use my own S3
        storage…"; a direct-S3 audit found that choice only deep in Settings › Advanced)."""
        if self.opening:  # pressed again while the keychain is read: that dialog is on its way
            return
        self.opening, self.own_s3 = True, own_s3
        spawn(self._open())

    async def _open(self) -> None:
        try:
            saved = await in_thread(read_saved_secrets, self.window.session)
        except Exception:  # a keychain backend failing in its own way: the dialog still opens, empty
            log.warning("The saved token and secret could not be read", exc_info=True)
            saved = SavedSecrets("", "", UNREADABLE)
        finally:
            self.opening = False
        self._show(saved)

    def _show(self, saved: SavedSecrets) -> None:
        window, session = self.window, self.window.session
        dialog = SettingsDialog(
            session.settings,
            token=saved.token,
            direct_secret=saved.direct_secret,
            token_home=saved.where,
            log_dir=session.paths.log_dir,
            tester=session.test_connection,
            direct_tester=session.test_direct,
            unavailable=unavailable_features(tray=window.tray_available, keep_awake_why=session.keep_awake.why_not),
            parent=window,
        )
        dialog.accepted.connect(
            lambda: spawn(
                session.apply_settings(
                    dialog.result_settings(),
                    dialog.token(),
                    dialog.direct_secret(),
                    probe=dialog.probe,
                    announce=True,
                )
            )
        )
        dialog.finished.connect(dialog.deleteLater)
        if self.own_s3:
            dialog.method.setCurrentIndex(dialog.method.findData(DIRECT))  # ticks "Send uploads to this storage"
        if self.own_s3 or session.settings.method == DIRECT:  # where uploads go: Connection's empty server
            dialog.tabs.setCurrentWidget(dialog.advanced)  # read as if files went to the test storage (an audit)
        dialog.open()
        if self.own_s3:
            dialog.direct_endpoint.setFocus()
        window.settings_dialog = dialog
