"""The Add files and Add folder dialogs, opened where the person last chose from.

Qt's file dialog starts in the working directory, which for an app started from a launcher is
wherever the launcher ran: the home folder, or a system folder. The last folder used is kept with
the window's geometry (a QSettings file, written when the window hides), so it survives a restart;
before any, the home folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

from desktop_uploader.engine.filenames import DEFAULT_MODEL_EXTENSIONS

KEY = "pickers/lastFolder"


class Pickers:
    def __init__(self, parent: QWidget, add: Callable[[list[str]], None], store: QSettings | None = None) -> None:
        self.parent = parent
        self.add = add
        self.store = store
        self.last_folder = str(store.value(KEY, "")) if store is not None else ""

    def start_folder(self) -> str:
        """The folder last chosen from while it still exists, else home."""
        return self.last_folder if self.last_folder and Path(self.last_folder).is_dir() else str(Path.home())

    def remember(self, chosen: str) -> None:
        """Next time, open beside what was chosen: a file's folder, or the folder holding a chosen folder."""
        self.last_folder = str(Path(chosen).parent)
        if self.store is not None:
            self.store.setValue(KEY, self.last_folder)

    def _dialog(self, title: str, name: str) -> QFileDialog:
        dialog = QFileDialog(self.parent, title)
        dialog.setObjectName(name)
        dialog.setDirectory(self.start_folder())
        dialog.finished.connect(dialog.deleteLater)  # a new one each time, so it opens in the remembered folder
        return dialog

    def add_files(self) -> QFileDialog:
        dialog = self._dialog("Add model files", "addFilesDialog")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        patterns = " ".join(f"*{ext}" for ext in DEFAULT_MODEL_EXTENSIONS)
        dialog.setNameFilters([f"Model files ({patterns})", "All files (*)"])
        dialog.filesSelected.connect(self._files_chosen)
        dialog.open()
        return dialog

    def add_folder(self) -> QFileDialog:
        dialog = self._dialog("Add a folder of model files", "addFolderDialog")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.fileSelected.connect(self._folder_chosen)
        dialog.open()
        return dialog

    def _files_chosen(self, files: list[str]) -> None:
        if files:
            self.remember(files[0])
            self.add(list(files))

    def _folder_chosen(self, folder: str) -> None:
        if folder:
            self.remember(folder)
            self.add([folder])
