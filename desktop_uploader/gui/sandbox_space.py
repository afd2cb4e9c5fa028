"""File › Empty test storage…: give back the disk space that uploads to the local sandbox took.

The sandbox keeps every file sent to it, whole, in the user data folder; a first-time user who tried
the app with a few checkpoints had gigabytes there that nothing in the window mentioned. The action
says how much it holds and where, asks, and empties it (connection.empty_sandbox); the window's own
sandbox is stopped for that and started again, empty (AppSession.empty_sandbox).
"""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow, QMenu

from desktop_uploader.connection import sandbox_stored
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.rows import Row
from desktop_uploader.gui.dialogs import confirm
from desktop_uploader.gui.session import AppSession
from desktop_uploader.gui.tasks import in_thread, spawn

QUESTION = "emptyTestStorageQuestion"
EMPTY_IT = "Empty it"


def install_empty_test_storage(window: QMainWindow, session: AppSession) -> QAction:
    action = QAction("Empty test storage…", window)
    action.setObjectName("emptyTestStorage")
    action.setStatusTip("Delete the files uploaded to the test storage on this computer")
    action.triggered.connect(lambda: spawn(empty_test_storage(window, session)))
    menus = [a.menu() for a in window.menuBar().actions() if isinstance(a.menu(), QMenu)]
    file_menu = menus[0] if menus else window.menuBar().addMenu("&File")
    assert isinstance(file_menu, QMenu)
    quit_group = next((a for a in file_menu.actions() if a.isSeparator()), None)
    if quit_group is not None:
        file_menu.insertAction(quit_group, action)  # beside History…, before Quit
    else:
        file_menu.addAction(action)
    return action


def holds_sandbox_parts(row: Row) -> bool:
    """Whether a row of the window on the sandbox has (or will have) parts there that emptying would lose."""
    return not row.status.finished or (row.status is Status.FAILED and row.resumable)


async def empty_test_storage(window: QMainWindow, session: AppSession) -> None:
    """Ask, then empty; every answer ends as a sentence in the status bar."""
    if session.sandbox is not None and any(holds_sandbox_parts(row) for row in session.model.rows()):
        session.message.emit(
            "Finish or remove the uploads in the list first: emptying the test storage would lose what they stored."
        )
        return
    held = await in_thread(sandbox_stored, session.paths)
    if not held:
        session.message.emit("The test storage on this computer is already empty.")
        return
    asked = await confirm(
        window,
        "Empty test storage",
        f"Delete the {human_bytes(held)} of test uploads kept on this computer, in {session.paths.sandbox_dir}? "
        "Your own files and your server are not touched.",
        EMPTY_IT,
        name=QUESTION,
    )
    if asked:
        session.message.emit(await session.empty_sandbox())
