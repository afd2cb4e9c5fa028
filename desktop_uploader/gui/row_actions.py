"""The current row's actions as real buttons, for the keyboard and for screen readers.

The row's own buttons are painted by the delegate (fast for rows that change many times a second),
so neither Tab nor an accessibility tool can reach them. This bar under the list carries the same
actions for the current row as ordinary ``QToolButton``s: in the Tab order right after the list,
each with an accessible name ("Pause") and a description naming the file ("Pause
portrait.safetensors").
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QRectF, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from desktop_uploader.engine.rows import Row, RowAction
from desktop_uploader.gui.icons import ui_icon
from desktop_uploader.gui.palette import readable_selection
from desktop_uploader.gui.queue_delegate import ACTION_ICONS, FOCUS_WIDTH
from desktop_uploader.gui.queue_model import Role

# In the order a person reads them; what the row offers decides which are shown.
ORDER = (
    RowAction.PAUSE,
    RowAction.RESUME,
    RowAction.RETRY,
    RowAction.COPY_COMFYUI,
    RowAction.COPY_S3,
    RowAction.CANCEL,
    RowAction.DISCARD,
    RowAction.REMOVE,
)


class RingButton(QToolButton):
    """A tool button that shows keyboard focus plainly: Fusion draws no focus indicator on tool buttons."""

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if not self.hasFocus():
            return
        palette = readable_selection(self.palette())
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), FOCUS_WIDTH))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(1, 1, -1, -1), 4, 4)
        painter.end()


class RowActionBar(QWidget):
    """Buttons acting on the list's current row; hidden while no row is current."""

    def __init__(self, view: QAbstractItemView, act: Callable[[str, RowAction], None], parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("rowActions")
        self.setAccessibleName("Actions for the selected upload")
        self.view = view
        self.act = act
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(4)
        self.caption = QLabel(self)
        self.caption.setObjectName("rowActionsCaption")
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.caption, 1)
        self.buttons: dict[RowAction, QToolButton] = {}
        for action in ORDER:
            button = RingButton(self)
            button.setObjectName("rowAction" + action.name.title().replace("_", ""))
            button.setText(action.value)
            button.setAccessibleName(action.value)
            button.setIcon(ui_icon(ACTION_ICONS[action]))
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            button.clicked.connect(lambda _=False, chosen=action: self._trigger(chosen))
            layout.addWidget(button)
            self.buttons[action] = button
        model = view.model()
        view.selectionModel().currentChanged.connect(self.refresh)
        model.dataChanged.connect(self.refresh)
        model.rowsRemoved.connect(self.refresh)
        model.modelReset.connect(self.refresh)
        self._model: QAbstractItemModel = model
        self.refresh()

    def current_row(self) -> Row | None:
        index: QModelIndex = self.view.currentIndex()
        row: Row | None = index.data(Role.ROW) if index.isValid() else None
        return row

    def visible_actions(self) -> list[RowAction]:
        return [action for action, button in self.buttons.items() if not button.isHidden()]

    def refresh(self, *_: object) -> None:
        row = self.current_row()
        offered = row.actions() if row is not None else []
        focused = next((a for a, b in self.buttons.items() if b.hasFocus()), None)
        for action, button in self.buttons.items():
            button.setHidden(action not in offered)
            if row is not None:
                label = row.action_label(action)  # "Start" for a file nobody started yet
                if button.text() != label:  # refreshed ten times a second: a screen reader hears only changes
                    button.setText(label)
                    button.setAccessibleName(label)
                button.setAccessibleDescription(f"{label} {row.file_name}")
                button.setToolTip(f"{label}: {row.file_name}")
        self.caption.setText(row.file_name if row is not None else "")
        self.setVisible(row is not None)
        if focused is not None and focused not in offered:
            # The pressed button went away (Pause became Resume): keep focus in the bar, not lost.
            replacement = next((self.buttons[a] for a in ORDER if a in offered), None)
            (replacement or self.view).setFocus(Qt.FocusReason.OtherFocusReason)

    def _trigger(self, action: RowAction) -> None:
        row = self.current_row()
        if row is not None and action in row.actions():
            self.act(row.job_id, action)
