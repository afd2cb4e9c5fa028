"""File › Empty test storage…: give back the disk space that uploads to the local sandbox took.

The sandbox keeps every file sent to it, whole, in the user data folder; a first-time user who tried
the app with a few checkpoints had gigabytes there that nothing in the window mentioned. The action
says how much it holds and where, asks, and empties it (connection.empty_sandbox); the window's own
sandbox is stopped for that and started again, empty (AppSession.empty_sandbox).
"""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow

from desktop_uploader.connection import sandbox_stored
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.rows import Row
from desktop_uploader.gui.dialogs import confirm
from desktop_uploader.gui.menus import add_to_file_menu
from desktop_uploader.gui.session import AppSession
from desktop_uploader.gui.tasks import in_thread, spawn

QUESTION = "emptyTestStorageQuestion"
EMPTY_IT = "Empty it"


def install_empty_test_storage(window: QMainWindow, session: AppSession) -> QAction:
    action = QAction("Empty test storage…", window)
    action.setObjectName("emptyTestStorage")
    action.setStatusTip("Delete the files uploaded to the test storage on this computer")
    action.triggered.connect(lambda: spawn(empty_test_storage(window, session)))
    add_to_file_menu(window, action)  # beside History…
    return action


def holds_sandbox_parts(row: Row) -> bool:
    """Whether a row of the window on the sandbox has (or will have) parts there that emptying would lose."""
    return not row.status.finished or (row.status is Status.FAILED and row.resumable)


def uploads_in_the_way(session: AppSession) -> bool:
    """Whether uploads in the list would lose what they stored on the window's sandbox; if so, it says so."""
    if session.sandbox is None or not any(holds_sandbox_parts(row) for row in session.model.rows()):
        return False
    session.message.emit(
        "Finish or remove the uploads in the list first: emptying the test storage would lose what they stored."
    )
    return True


async def empty_test_storage(window: QMainWindow, session: AppSession) -> None:
    """Ask, then empty; every answer ends as a sentence in the status bar."""
    if uploads_in_the_way(session):
        return
    held = await in_thread(sandbox_stored, session.paths)
    if not held:
        session.message.emit("The test storage on this computer is already empty.")
        return
    asked = await confirm(
        window,
        "Empty test storage",
        f"Delete the {human_bytes(held)} of test uploads kept on this computer? History forgets them too. Your own "
        f"files and your server are not touched.\n\nThey are in {session.paths.sandbox_dir}",
        EMPTY_IT,
        name=QUESTION,
    )
    if asked and not uploads_in_the_way(session):  # a file may have been added while the question was open
        session.message.emit(await session.empty_sandbox())
