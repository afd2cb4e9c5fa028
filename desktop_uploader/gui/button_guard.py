"""A row's painted button must not change meaning under the pointer.

When an upload finishes, its ⊗ turns from "Cancel" into "Remove from list" (and Pause into Copy).
A person aiming at Cancel clicks a moment later and would remove the just-completed row. This
filter sits on the queue view's viewport, in front of the delegate: it remembers which action was
under the pointer, and a click on a button whose action changed less than ``GRACE`` seconds ago
(seen on a pointer move or on the click itself) is swallowed. A pointer that arrives on a button
fresh clicks at once. Time comes from an injected clock, so tests step it instead of waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QListView, QStyleOptionViewItem

from desktop_uploader.engine.rows import Row, RowAction
from desktop_uploader.gui.queue_delegate import UploadDelegate, secondary_action
from desktop_uploader.gui.queue_model import Role

GRACE = 1.5  # seconds a changed button stays inert


@dataclass(frozen=True)
class Seen:
    """The button under the pointer: which row, which of its two buttons, what it did, and since when."""

    job_id: str
    slot: str
    action: RowAction | None
    since: float


class ButtonGuard(QObject):
    def __init__(self, view: QListView, delegate: UploadDelegate, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(view)
        self.view = view
        self.delegate = delegate
        self.clock = clock
        self.seen: Seen | None = None
        self._swallow_release = False
        view.viewport().installEventFilter(self)  # installed after the delegate's: it runs first

    def button_at(self, position: QPoint) -> tuple[str, str, RowAction | None] | None:
        """(job id, "primary" or "secondary", its action now) for a point on a row's button, else None."""
        index = self.view.indexAt(position)
        row: Row | None = index.data(Role.ROW) if index.isValid() else None
        if row is None:
            return None
        option = QStyleOptionViewItem()
        self.view.initViewItemOption(option)
        option.rect = self.view.visualRect(index)
        geometry = self.delegate.layout(option)
        if geometry.primary.contains(position):
            return row.job_id, "primary", row.primary_action()
        if geometry.secondary.contains(position):
            return row.job_id, "secondary", secondary_action(row)
        return None

    def look(self, position: QPoint) -> Seen | None:
        """Update what is under the pointer; a button whose action changed in place restarts its grace."""
        found = self.button_at(position)
        if found is None:
            self.seen = None
            return None
        job_id, slot, action = found
        before = self.seen
        if before is None or (before.job_id, before.slot) != (job_id, slot):
            self.seen = Seen(job_id, slot, action, -math.inf)  # arrived fresh: usable at once
        elif before.action != action:
            self.seen = Seen(job_id, slot, action, self.clock())
        return self.seen

    def allows_click(self, position: QPoint) -> bool:
        seen = self.look(position)
        return seen is None or self.clock() - seen.since >= GRACE

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not isinstance(event, QMouseEvent):
            return False
        position = event.position().toPoint()
        kind = event.type()
        if kind == QEvent.Type.MouseMove:
            self.look(position)
        elif kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick):
            if event.button() == Qt.MouseButton.LeftButton and not self.allows_click(position):
                self._swallow_release = True
                return True
        elif kind == QEvent.Type.MouseButtonRelease:
            swallow = self._swallow_release or not self.allows_click(position)
            self._swallow_release = False
            return swallow
        return False
