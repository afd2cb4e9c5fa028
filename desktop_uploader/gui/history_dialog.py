"""The History window: every completed upload, newest first, searchable, its paths one click away.

Opened from File › History… (Ctrl+H; Cmd+Y on macOS, as browsers do). The entries are read on a
worker thread and shown when they arrive, so a long history never stalls the window; the search box
filters what was read, in memory. Clearing asks first, and keeping the history is the default.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import PurePath

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_uploader.engine.history import HistoryEntry, HistoryStore
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.gui.dialogs import finished
from desktop_uploader.gui.menus import add_to_file_menu
from desktop_uploader.gui.tasks import in_thread, spawn

COLUMNS = ("File", "Stored at", "Size", "Method", "Completed", "Server")
CLEAR = "Clear history"
KEEP = "Keep history"


class HistoryDialog(QDialog):
    def __init__(self, store: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.entries: list[HistoryEntry] = []
        self.loaded = False
        self.setObjectName("historyDialog")
        self.setWindowTitle("Upload history")
        self.resize(1040, 460)
        self.search = QLineEdit(self)
        self.search.setObjectName("historySearch")
        self.search.setPlaceholderText("Search by name, path or server")
        self.search.setAccessibleName("Search the history")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._show)
        self.list = QTreeWidget(self)
        self.list.setObjectName("historyList")
        self.list.setAccessibleName("Completed uploads")
        self.list.setHeaderLabels(list(COLUMNS))
        self.list.setRootIsDecorated(False)
        # Cut at the start: every path begins /runpod-volume/loras/<user>/, and cut at its end every row read
        # the same, the file's name gone (an audit); the end of a path or name is what tells rows apart.
        self.list.setTextElideMode(Qt.TextElideMode.ElideLeft)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.currentItemChanged.connect(self._update_buttons)
        for column, width in enumerate((220, 270, 80, 120, 130)):  # long names stay readable in their tooltips
            self.list.setColumnWidth(column, width)
        self.placeholder = QLabel("Loading the history…", self)
        self.placeholder.setObjectName("historyPlaceholder")
        self.copy_comfyui = self._button("Copy ComfyUI path", "copyComfyui", lambda: self._copy("comfyui"))
        self.copy_s3 = self._button("Copy S3 path", "copyS3", lambda: self._copy("s3"))
        self.clear_button = self._button("Clear history…", "clearHistory", lambda: spawn(self.ask_clear()))
        close = self._button("Close", "closeHistory", self.accept)
        close.setDefault(True)
        buttons = QHBoxLayout()
        for button in (self.copy_comfyui, self.copy_s3, self.clear_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.placeholder)
        layout.addLayout(buttons)
        self._update_buttons()

    def _button(self, text: str, name: str, slot: object) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.setAutoDefault(False)  # Enter in the search box must not copy, clear or close
        button.clicked.connect(slot)
        return button

    async def load(self) -> None:
        """Read the history on a worker thread, then show it."""
        try:
            self.entries = await in_thread(self.store.entries)
        except (OSError, sqlite3.Error) as exc:
            self.placeholder.setText(f"The history can't be read right now: {exc}.")
            return
        self.loaded = True
        self._show()

    def _show(self, *_: object) -> None:
        text = self.search.text()
        shown = [e for e in self.entries if e.matches(text)] if text.strip() else self.entries
        self.list.clear()
        for entry in shown:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.completed_at))
            # The file as the person knows it: a server often stores it under a longer, unique name
            # ("user_1796055688513_name"), which the tooltip and the ComfyUI path show.
            local_name = PurePath(entry.local_path).name or entry.file_name
            # Where ComfyUI finds it, or, with none (your own S3 storage), its s3:// address: that column was empty.
            stored_at = entry.comfyui_path or entry.s3_path
            values = (local_name, stored_at, human_bytes(entry.size), entry.method, when, entry.server)
            item = QTreeWidgetItem(list(values))
            item.setData(0, Qt.ItemDataRole.UserRole, entry)
            item.setToolTip(0, f"{entry.local_path or local_name}\nStored as {entry.file_name}")
            item.setToolTip(
                1, f"ComfyUI: {entry.comfyui_path}\nS3: {entry.s3_path}" if entry.comfyui_path else entry.s3_path
            )
            item.setToolTip(5, entry.server)  # cut at the column's width like the paths (a re-check audit)
            self.list.addTopLevelItem(item)
        first = self.list.topLevelItem(0)
        if first is not None:
            self.list.setCurrentItem(first)
        if not self.entries:
            self.placeholder.setText("No completed uploads yet." if self.loaded else "Loading the history…")
        else:
            self.placeholder.setText("" if shown else "Nothing in the history matches your search.")
        self.placeholder.setVisible(bool(self.placeholder.text()))
        self._update_buttons()

    def shown_entries(self) -> list[HistoryEntry]:
        items = (self.list.topLevelItem(i) for i in range(self.list.topLevelItemCount()))
        return [item.data(0, Qt.ItemDataRole.UserRole) for item in items if item is not None]

    def current(self) -> HistoryEntry | None:
        item = self.list.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def _update_buttons(self, *_: object) -> None:
        entry = self.current()
        self.copy_comfyui.setEnabled(bool(entry and entry.comfyui_path))
        self.copy_s3.setEnabled(bool(entry and entry.s3_path))
        self.clear_button.setEnabled(bool(self.entries))

    def _copy(self, which: str) -> None:
        entry = self.current()
        if entry is None:
            return
        text = entry.comfyui_path if which == "comfyui" else entry.s3_path
        if text:
            QGuiApplication.clipboard().setText(text)
            self.placeholder.setText("ComfyUI path copied." if which == "comfyui" else "S3 path copied.")
            self.placeholder.setVisible(True)

    async def ask_clear(self) -> bool:
        """Forget every entry, after asking; keeping them is the default (Enter and Escape keep them)."""
        box = QMessageBox(self)
        box.setObjectName("clearHistoryQuestion")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Clear the history?")
        box.setText(f"Forget all {len(self.entries)} completed uploads listed here?")
        box.setInformativeText("The uploaded files stay on the server; only this list is cleared.")
        clear = box.addButton(CLEAR, QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton(KEEP, QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        await finished(box)
        chosen = box.clickedButton() is clear
        box.deleteLater()
        if chosen:
            await in_thread(self.store.clear)
            self.entries = []
            self._show()
        return chosen


def history_keys() -> QKeySequence:
    """Ctrl+H where browsers use it; Cmd+Y on macOS, where Cmd+H hides the app."""
    return QKeySequence("Ctrl+Y" if sys.platform == "darwin" else "Ctrl+H")


def install_history(window: QMainWindow, store: HistoryStore) -> QAction:
    """File › History…: opens (or raises) the History window."""
    action = QAction("History…", window)
    action.setObjectName("historyAction")
    action.setShortcut(history_keys())
    action.setStatusTip("Completed uploads and their paths")
    window.addAction(action)

    def open_history() -> None:
        dialog = window.findChild(HistoryDialog, "historyDialog")
        if dialog is None:
            dialog = HistoryDialog(store, window)
            dialog.finished.connect(dialog.deleteLater)
        spawn(dialog.load())  # again when raised: uploads may have completed since
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    action.triggered.connect(open_history)
    add_to_file_menu(window, action)
    return action
