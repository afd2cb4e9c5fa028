"""The upload queue as a Qt list model: one row per job, updated from engine events.

Events are folded into :class:`~desktop_uploader.engine.rows.Row` objects as they arrive, but the
view hears about it at most ten times a second: a timer emits one ``dataChanged`` per contiguous
run of changed rows. Thousands of rows and hundreds of events a second don't make the list repaint
per byte.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)

from desktop_uploader.engine import events
from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.rows import QueueSummary, Row, summarize

FLUSH_INTERVAL_MS = 100

Index = QModelIndex | QPersistentModelIndex


class Role(IntEnum):
    ROW = Qt.ItemDataRole.UserRole + 1
    JOB_ID = Qt.ItemDataRole.UserRole + 2
    STATUS = Qt.ItemDataRole.UserRole + 3
    METHOD = Qt.ItemDataRole.UserRole + 4
    PERCENT = Qt.ItemDataRole.UserRole + 5
    STATUS_TEXT = Qt.ItemDataRole.UserRole + 6


class UploadQueueModel(QAbstractListModel):
    renameRequested = Signal(str, str)  # job id, new display name
    summaryChanged = Signal(object)  # QueueSummary, also after any row changed state

    def __init__(self, clock: Callable[[], float] = time.monotonic, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.clock = clock
        self._rows: list[Row] = []
        self._index: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._arriving: dict[str, Row] = {}  # queued jobs waiting to be inserted in one batch
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_INTERVAL_MS)
        self._timer.timeout.connect(self.flush)
        self._timer.start()
        self._summary = summarize([])
        self._counts: Counter[Status] = Counter()

    # -- Qt model interface ----------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows) or index.column() != 0:
            return None
        row = self._rows[index.row()]
        match role:
            case Qt.ItemDataRole.DisplayRole | Qt.ItemDataRole.EditRole:
                return row.display_name
            case Qt.ItemDataRole.ToolTipRole:
                return f"{row.path}\n{human_bytes(row.size)} · {row.status_text(self.clock())}"
            case Qt.ItemDataRole.AccessibleTextRole:
                said = (row.file_name, row.progress_text(), row.status_text(self.clock()))
                return ", ".join(part for part in said if part)  # a cancelled row has no progress to read out
            case Role.ROW:
                return row
            case Role.JOB_ID:
                return row.job_id
            case Role.STATUS:
                return row.status.value
            case Role.METHOD:
                return row.method
            case Role.PERCENT:
                return row.percent
            case Role.STATUS_TEXT:
                return row.status_text(self.clock())
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
        row = self._rows[index.row()]
        if row.status in (Status.QUEUED, Status.PAUSED, Status.INTERRUPTED, Status.FAILED):
            flags |= Qt.ItemFlag.ItemIsEditable  # the display name can change until the upload starts
        return flags

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if (
            role != Qt.ItemDataRole.EditRole
            or not index.isValid()
            or not (self.flags(index) & Qt.ItemFlag.ItemIsEditable)
        ):
            return False
        name = str(value).strip()
        if not name:
            return False
        row = self._rows[index.row()]
        row.display_name = name
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole])
        self.renameRequested.emit(row.job_id, name)
        return True

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        names.update({int(role): QByteArray(role.name.lower().encode()) for role in Role})
        return names

    # -- engine side -----------------------------------------------------------------------------------

    def apply_event(self, event: events.Event) -> None:
        if isinstance(event, events.Queued):
            if event.job_id not in self._index and event.job_id not in self._arriving:
                self._arriving[event.job_id] = Row(event.job_id, Path(event.path), event.display_name, event.size)
                if len(self._arriving) == 1:
                    QTimer.singleShot(0, self._insert_arrivals)
            return
        if isinstance(event, events.Removed):
            if self._arriving.pop(event.job_id, None) is None:
                self._remove(event.job_id)
            return
        row = self._arriving.get(event.job_id)
        if row is not None:
            row.apply(event, self.clock())
            return
        position = self._index.get(event.job_id)
        if position is None:
            return
        if self._rows[position].apply(event, self.clock()):
            self._dirty.add(event.job_id)

    def _insert_arrivals(self) -> None:
        """New rows go in together: a drop of 1,000 files is one insertion, not 1,000 relayouts."""
        if not self._arriving:
            return
        arriving, self._arriving = list(self._arriving.values()), {}
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(arriving) - 1)
        for offset, row in enumerate(arriving):
            self._rows.append(row)
            self._index[row.job_id] = first + offset
        self.endInsertRows()
        self._dirty.update(row.job_id for row in arriving)

    def _remove(self, job_id: str) -> None:
        position = self._index.get(job_id)
        if position is None:
            return
        self.beginRemoveRows(QModelIndex(), position, position)
        del self._rows[position]
        self._index = {row.job_id: i for i, row in enumerate(self._rows)}
        self.endRemoveRows()
        self._dirty.discard(job_id)
        self._emit_summary()

    def flush(self) -> None:
        """Tell the view about changed rows (one signal per contiguous run) and refresh the summary."""
        retrying = {r.job_id for r in self._rows if r.retry_until is not None or r.reconnect_at is not None}  # ticks
        dirty = self._dirty | retrying
        self._dirty = set()
        if not dirty:
            return
        positions = sorted(self._index[job] for job in dirty if job in self._index)
        start = previous = None
        for position in [*positions, None]:
            if position is not None and previous is not None and position == previous + 1:
                previous = position
                continue
            if start is not None and previous is not None:
                self.dataChanged.emit(self.index(start), self.index(previous))
            start = previous = position
        self._emit_summary()

    def _emit_summary(self) -> None:
        counts = Counter(row.status for row in self._rows)
        summary = summarize(self._rows)
        if summary != self._summary or counts != self._counts:
            self._summary, self._counts = summary, counts
            self.summaryChanged.emit(summary)

    def status_counts(self) -> Counter[Status]:
        """How many rows are in each state (as of the last flush)."""
        return Counter(self._counts)

    # -- queries -----------------------------------------------------------------------------------------

    @property
    def summary(self) -> QueueSummary:
        return self._summary

    def rows(self) -> list[Row]:
        return list(self._rows)

    def row_at(self, index: Index) -> Row | None:
        return self._rows[index.row()] if index.isValid() and 0 <= index.row() < len(self._rows) else None

    def row_by_id(self, job_id: str) -> Row | None:
        position = self._index.get(job_id)
        return self._rows[position] if position is not None else self._arriving.get(job_id)

    def index_of(self, job_id: str) -> QModelIndex:
        position = self._index.get(job_id)
        return self.index(position) if position is not None else QModelIndex()

    def job_ids(self) -> set[str]:
        return set(self._index) | set(self._arriving)
