"""A row's painted button must not change meaning under the pointer.

When an upload finishes, its ⊗ turns from "Cancel" into "Remove from list" (and Pause into Copy).
A person aiming at Cancel clicks a moment later and would remove the just-completed row. This
filter sits on the queue view's viewport, in front of the delegate: it remembers which action was
under the pointer, and a click on a button whose action changed less than ``GRACE`` seconds ago
(seen on a pointer move or on the click itself) is swallowed. A pointer that arrives on a button
fresh clicks at once. Time comes from an injected clock, so tests step it instead of waiting.

A change the person caused with that very button is not held against it: Pause turns into Resume
because they clicked Pause, so Resume is what they expect there, however long they wait before
clicking it (an audit found the first click on Resume ignored, without a word). The guard remembers
the last click it let through, and a change of that same button (row and slot) into the state that
click asks for keeps the button usable. Judged by the row's status, not by the new action alone:
Cancel turns into Remove both when the cancel lands and when the upload completes first, and only
the first is the person's doing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QListView, QStyleOptionViewItem

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.rows import Row, RowAction
from desktop_uploader.gui.queue_delegate import UploadDelegate, secondary_action
from desktop_uploader.gui.queue_model import Role

GRACE = 1.5  # seconds a changed button stays inert

RUNNING = frozenset(
    {Status.QUEUED, Status.STARTING, Status.UPLOADING, Status.RETRYING, Status.FALLING_BACK, Status.COMPLETING}
)
# The statuses a click on each action asks for. A button that changed after its own click, with its row
# now in one of these, changed because of the person; any other status (completed, failed) did not.
OUTCOMES: dict[RowAction, frozenset[Status]] = {
    RowAction.PAUSE: frozenset({Status.PAUSED}),
    RowAction.RESUME: RUNNING,
    RowAction.RETRY: RUNNING,
    RowAction.CANCEL: frozenset({Status.CANCELLED}),
}


@dataclass(frozen=True)
class Seen:
    """The button under the pointer: which row, which of its two buttons, what it did, and since when."""

    job_id: str
    slot: str
    action: RowAction | None
    since: float


@dataclass(frozen=True)
class Click:
    """The last click let through on a button: what it asked for, so its own result doesn't hold that button."""

    job_id: str
    slot: str
    action: RowAction


class ButtonGuard(QObject):
    def __init__(self, view: QListView, delegate: UploadDelegate, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(view)
        self.view = view
        self.delegate = delegate
        self.clock = clock
        self.seen: Seen | None = None
        self.clicked: Click | None = None
        self._swallow_release = False
        view.viewport().installEventFilter(self)  # installed after the delegate's: it runs first

    def button_at(self, position: QPoint) -> tuple[str, str, RowAction | None, Status] | None:
        """(job id, "primary" or "secondary", its action now, the row's status) for a point on a row's button."""
        index = self.view.indexAt(position)
        row: Row | None = index.data(Role.ROW) if index.isValid() else None
        if row is None:
            return None
        option = QStyleOptionViewItem()
        self.view.initViewItemOption(option)
        option.rect = self.view.visualRect(index)
        geometry = self.delegate.layout(option)
        if geometry.primary.contains(position):
            return row.job_id, "primary", row.primary_action(), row.status
        if geometry.secondary.contains(position):
            return row.job_id, "secondary", secondary_action(row), row.status
        return None

    def look(self, position: QPoint) -> Seen | None:
        """Update what is under the pointer; a button whose action changed in place restarts its grace.

        Unless the change is the result of the person's own click on this button: then it keeps its time.
        """
        found = self.button_at(position)
        if found is None:
            self.seen = None
            return None
        job_id, slot, action, status = found
        before = self.seen
        if before is None or (before.job_id, before.slot) != (job_id, slot):
            self.seen = Seen(job_id, slot, action, -math.inf)  # arrived fresh: usable at once
        elif before.action != action:
            clicked, caused = self.clicked, False
            if clicked is not None and (clicked.job_id, clicked.slot) == (job_id, slot):
                self.clicked = None  # one click answers for one change: a later one is not the person's
                caused = status in OUTCOMES.get(clicked.action, frozenset())
            self.seen = Seen(job_id, slot, action, before.since if caused else self.clock())
        return self.seen

    def allows_click(self, position: QPoint) -> bool:
        seen = self.look(position)
        return seen is None or self.clock() - seen.since >= GRACE

    def remember_click(self) -> None:
        """The delegate acts on this release: note what it asked for, so its result doesn't make the button inert."""
        seen = self.seen
        if seen is not None and seen.action is not None:
            self.clicked = Click(seen.job_id, seen.slot, seen.action)

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
            if not swallow and event.button() == Qt.MouseButton.LeftButton:
                self.remember_click()
            return swallow
        return False
