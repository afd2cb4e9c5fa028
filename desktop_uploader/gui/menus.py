"""The window's menu bar, and the row commands that act on the clipboard.

The menu reuses the toolbar's actions, so a command has one shortcut and one enabled state wherever
it is offered. Shortcuts are the platform's own (``QKeySequence.StandardKey``) where it has one, so
Quit and Preferences sit where people of each platform reach for them.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

from desktop_uploader import APP_NAME, __version__
from desktop_uploader.engine.rows import Row, RowAction

COPIED = {
    RowAction.COPY_COMFYUI: "ComfyUI path copied.",
    RowAction.COPY_S3: "S3 path copied.",
    RowAction.COPY_MESSAGE: "Message copied.",
}


def platform_keys(standard: QKeySequence.StandardKey, fallback: str = "") -> list[QKeySequence]:
    """The platform's binding for ``standard``; ``fallback`` where the platform has none (Preferences off macOS)."""
    keys = QKeySequence.keyBindings(standard)
    return keys or ([QKeySequence(fallback)] if fallback else [])


def copy_row_path(row: Row, action: RowAction) -> str:
    """Put the path ``action`` names on the clipboard; the sentence for the status bar, or "" if nothing to copy."""
    text = row.clipboard_text(action)
    if not text:
        return ""
    QGuiApplication.clipboard().setText(text)
    return COPIED.get(action, "Copied.")


def show_about(window: QMainWindow) -> QMessageBox:
    """Opened, not exec'd: a nested event loop would stall the uploads' coroutines (see dialogs.py)."""
    box = QMessageBox(window)
    box.setObjectName("aboutBox")
    box.setIconPixmap(window.windowIcon().pixmap(64, 64))
    box.setWindowTitle(f"About {APP_NAME}")
    box.setText(f"{APP_NAME} {__version__}")
    box.setInformativeText("Uploads large model files to S3-compatible storage, resumably.")
    box.finished.connect(box.deleteLater)
    box.open()
    return box


def build_menu_bar(
    window: QMainWindow,
    *,
    add_files: QAction,
    add_folder: QAction,
    settings: QAction,
    uploads: list[QAction],
    quit_app: Callable[[], None],
    open_log_folder: Callable[[], None],
) -> QAction:
    """File, Edit, Uploads and Help; returns the Quit action (the only one made here that a shortcut reaches).

    ``uploads`` are the toolbar's queue commands (Start all, Pause all, Clear finished): a GUI audit found
    them in no menu, where keyboard and screen-reader users, and macOS's menu search, look for them.
    """
    add_files.setText("Add files…")
    add_files.setIconText("Add files")  # the toolbar's label: the ellipsis is a menu convention
    add_files.setShortcuts(platform_keys(QKeySequence.StandardKey.Open, "Ctrl+O"))
    add_folder.setText("Add folder…")
    add_folder.setIconText("Add folder")
    settings.setText("Settings…")
    settings.setIconText("Settings")
    settings.setShortcuts(platform_keys(QKeySequence.StandardKey.Preferences, "Ctrl+,"))
    settings.setMenuRole(QAction.MenuRole.PreferencesRole)
    quit_action = QAction("Quit", window)
    quit_action.setObjectName("quitAction")
    quit_action.setShortcuts(platform_keys(QKeySequence.StandardKey.Quit, "Ctrl+Q"))
    quit_action.setMenuRole(QAction.MenuRole.QuitRole)
    quit_action.triggered.connect(quit_app)
    about = QAction(f"About {APP_NAME}", window)
    about.setMenuRole(QAction.MenuRole.AboutRole)
    about.triggered.connect(lambda: show_about(window))
    log_folder = QAction("Open log folder", window)
    log_folder.triggered.connect(open_log_folder)
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addActions([add_files, add_folder])
    file_menu.addSeparator()
    file_menu.addAction(quit_action)
    bar.addMenu("&Edit").addAction(settings)
    bar.addMenu("&Uploads").addActions(uploads)
    bar.addMenu("&Help").addActions([about, log_folder])
    return quit_action


def add_to_file_menu(window: QMainWindow, action: QAction) -> None:
    """An action of its own module's (History…, Empty test storage…) in File, after the ways to add files and
    before Quit."""
    menus = [a.menu() for a in window.menuBar().actions() if isinstance(a.menu(), QMenu)]
    file_menu = menus[0] if menus else window.menuBar().addMenu("&File")
    assert isinstance(file_menu, QMenu)
    quit_group = next((a for a in file_menu.actions() if a.isSeparator()), None)
    if quit_group is not None:
        file_menu.insertAction(quit_group, action)
    else:
        file_menu.addAction(action)
