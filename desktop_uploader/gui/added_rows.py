"""Scrolling the queue to the files a person just added, and only to those.

A drop's rows reach the list in batches (its files are queued off the GUI thread), and so do the rows
a restart brings back. Scrolling to each batch as it came left a reopened list at its bottom, away from
the uploads it was going on with, and showed only the last few files of a big drop.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QObject
from PySide6.QtWidgets import QListView

from desktop_uploader.gui.queue_model import UploadQueueModel


class AddedRowsInView(QObject):
    """Keeps a drop's rows in view as they arrive: as many as fit, its first row always on screen."""

    def __init__(self, view: QListView, model: UploadQueueModel) -> None:
        super().__init__(view)
        self.view, self.model = view, model
        self._first_job: str | None = None  # the drop's first row, by job id: rows above it may be removed
        self._waiting = False  # a drop is being queued: its rows are still to come
        self._arrived = 0
        self._expected: int | None = None  # known once the drop is queued
        model.rowsInserted.connect(self._rows_inserted)

    def expect(self) -> None:
        """A drop or a dialog is about to queue files: the rows that arrive next are its."""
        self._first_job, self._waiting, self._arrived, self._expected = None, True, 0, None

    def queued(self, added: int) -> None:
        """The drop is queued, ``added`` rows in all: once they are all here, later rows are not its."""
        self._expected = added
        self._waiting = self._arrived < added

    def _rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        if not self._waiting:
            return  # restored rows, or rows nobody asked to see: the list stays where the person left it
        if self._first_job is None:
            row = self.model.row_at(self.model.index(first))
            self._first_job = row.job_id if row is not None else None
        self._arrived += last - first + 1
        self._waiting = self._expected is None or self._arrived < self._expected
        self.view.scrollTo(self.model.index(last))
        top = self.model.index_of(self._first_job or "")
        self.view.scrollTo(top if top.isValid() else self.model.index(first))
