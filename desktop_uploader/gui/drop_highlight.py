"""The window as a drop target, with a visible drop zone while files are dragged over it.

Without the zone nothing changed on screen until the drop, so a person could not tell whether the
window would take the files. The overlay lies over the window's central area, lets every mouse
event through, and is shown on drag-enter (only for local files) and hidden on leave and on drop.
It handles the window's drag events itself (as an event filter), so the main window stays small.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QMainWindow, QWidget

from desktop_uploader.gui.palette import readable

BORDER = 3


def local_paths(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> list[str]:
    """The local files a drag carries; anything else (web links, text) is not for this window."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]


class DropHighlight(QWidget):
    def __init__(self, window: QMainWindow, add_paths: Callable[[list[str]], None]) -> None:
        super().__init__(window)
        self.add_paths = add_paths
        self.setObjectName("dropHighlight")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setAccessibleName("Drop files here to upload them")
        self.window_ = window
        window.installEventFilter(self)
        self.hide()

    @property
    def active(self) -> bool:
        return not self.isHidden()

    def start(self) -> None:
        self._cover()
        self.show()
        self.raise_()

    def stop(self) -> None:
        self.hide()

    def _cover(self) -> None:
        central = self.window_.centralWidget()
        self.setGeometry(central.geometry() if central is not None else self.window_.rect())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.window_:
            return False
        if event.type() == QEvent.Type.Resize and self.active:
            self._cover()
        elif isinstance(event, QDropEvent):  # drag-enter and drag-move events are drop events too
            self._drag(event)
            return True
        elif event.type() == QEvent.Type.DragLeave:
            self.stop()
            return True
        return False

    def _drag(self, event: QDropEvent) -> None:
        paths = local_paths(event)
        if not paths:
            event.ignore()
            self.stop()
            return
        event.acceptProposedAction()
        if event.type() == QEvent.Type.DragEnter:
            self.start()
        elif event.type() == QEvent.Type.Drop:
            self.stop()
            self.add_paths(paths)

    def colours(self) -> tuple[QColor, QColor]:
        """The border (and text) colour and the translucent fill, from the window's palette."""
        palette = self.palette()
        border = readable(palette.color(QPalette.ColorRole.Highlight), palette.color(QPalette.ColorRole.Base), 3.0)
        fill = QColor(border)
        fill.setAlpha(40)
        return border, fill

    def paintEvent(self, event: QPaintEvent) -> None:
        border, fill = self.colours()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), fill)
        pen = QPen(border, BORDER, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        half = BORDER / 2 + 4
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(half, half, -half, -half), 10, 10)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(self.palette().color(QPalette.ColorRole.Text))
        back = self.palette().color(QPalette.ColorRole.Base)
        metrics = painter.fontMetrics()
        label = "Drop to upload"
        box = metrics.boundingRect(label).adjusted(-16, -8, 16, 8)
        box.moveCenter(self.rect().center())
        box.moveBottom(self.rect().bottom() - 24)  # near the edge: the middle has the window's own text
        painter.setBrush(back)
        painter.setPen(QPen(border, 1))
        painter.drawRoundedRect(box, 8, 8)
        painter.setPen(self.palette().color(QPalette.ColorRole.Text))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, label)
        painter.end()
