"""Paints one upload row, and turns clicks on its buttons into actions.

Qt's advice for rows that change many times a second: paint them with a delegate instead of a
widget per row. The row's progress bar is the platform's own (``QStyleOptionProgressBar``), so it
looks native everywhere; the two buttons are painted too and hit-tested in :meth:`editorEvent`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QHelpEvent, QIcon, QMouseEvent, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QLineEdit,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QToolTip,
    QWidget,
)

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.filenames import shown
from desktop_uploader.engine.limits import human_bytes
from desktop_uploader.engine.rows import Row, RowAction
from desktop_uploader.gui.bar_colours import bar_colours, bar_palette
from desktop_uploader.gui.icons import ui_icon
from desktop_uploader.gui.palette import muted_text, readable, readable_selection
from desktop_uploader.gui.queue_model import Role

Index = QModelIndex | QPersistentModelIndex
PAD = 10
BUTTON = 30
GAP = 6
FOCUS_WIDTH = 2

ACTION_ICONS = {
    RowAction.PAUSE: "pause",
    RowAction.RESUME: "start",
    RowAction.RETRY: "retry",
    RowAction.CANCEL: "cancel",
    RowAction.DISCARD: "remove",
    RowAction.REMOVE: "remove",
    RowAction.COPY_COMFYUI: "copy",
    RowAction.COPY_S3: "copy",
}

METHOD_HUES = {"presigned-s3": 215, "chunked-s3": 32, "serverless-function": 170, "direct-s3": 275}


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def status_color(row: Row, palette: QPalette, now: float) -> QColor:
    """The status line's colour; every one reads at 4.5:1 or better on the list's background."""
    dark = is_dark(palette)
    base = palette.color(QPalette.ColorRole.Base)
    if row.status == Status.COMPLETED:
        return readable(QColor("#66bb6a" if dark else "#2e7d32"), base)
    if row.status == Status.FAILED and row.reconnect_at is None:
        return readable(QColor("#ef6c6c" if dark else "#c62828"), base)
    # Trying again, by itself: a countdown to the next try read in a failure's red (a re-check audit).
    retrying = row.reconnect_at is not None or row.retried_at is not None
    if row.status == Status.INTERRUPTED or retrying or (row.retry_until is not None and now < row.retry_until):
        return readable(QColor("#ffb74d" if dark else "#9a5200"), base)
    if row.status in (Status.PAUSED, Status.CANCELLED, Status.QUEUED):
        return muted_text(palette)
    return palette.color(QPalette.ColorRole.Text)


def badge_colors(method: str, palette: QPalette) -> tuple[QColor, QColor]:
    """A method badge's fill and its text colour, the text readable on the fill."""
    hue = METHOD_HUES.get(method, 0)
    dark = is_dark(palette)
    fill = QColor.fromHsl(hue, 170, 70 if dark else 225)
    return fill, readable(QColor.fromHsl(hue, 200, 200 if dark else 70), fill)


def has_focus_ring(option: QStyleOptionViewItem) -> bool:
    """The view marks its current row ``State_HasFocus`` while it has keyboard focus; that row gets a ring."""
    return bool(option.state & QStyle.StateFlag.State_HasFocus)


def secondary_action(row: Row) -> RowAction | None:
    for action in (RowAction.CANCEL, RowAction.DISCARD, RowAction.REMOVE):
        if action in row.actions():
            return action
    return None


def status_area(geometry: RowLayout, text: RowText) -> QRect:
    """Where the status line is painted: the speed's room too when there is no speed to show.

    A failed row has none, and a GUI audit's "…refused your access key or secret (SignatureDoesNotMatch).
    Check the…" was cut off beside that empty room, its end only in the tooltip.
    """
    if text.rate:
        return geometry.status
    return geometry.status.adjusted(0, 0, geometry.rate.right() - geometry.status.right(), 0)


@dataclass(frozen=True)
class RowText:
    """What a row says, decided apart from painting so it can be checked without reading pixels."""

    name: str
    extra: str  # the display name if it differs, and the size
    progress: str
    status: str
    rate: str
    show_bar: bool


def row_text(row: Row, now: float) -> RowText:
    extra = f"  {human_bytes(row.size)}"
    if row.display_name and row.display_name != row.path.stem:
        extra = f"  “{shown(row.display_name)}”" + extra
    return RowText(
        row.file_name,
        extra,
        row.progress_text(),
        row.status_text(now),
        row.rate_text(),
        show_bar=row.status is not Status.CANCELLED,  # a cancelled upload's stored parts are gone
    )


@dataclass(frozen=True)
class RowLayout:
    name: QRect
    badge: QRect
    bar: QRect
    progress: QRect
    status: QRect
    rate: QRect
    primary: QRect
    secondary: QRect


class UploadDelegate(QStyledItemDelegate):
    actionTriggered = Signal(str, object)  # job id, RowAction

    def __init__(self, clock: Callable[[], float], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.clock = clock
        self.hover = QPoint(-1, -1)  # kept by track_hover(): asking the X server per painted row is slow
        self._icons: dict[tuple[int, RowAction], QIcon] = {}

    def track_hover(self, view: QAbstractItemView) -> None:
        view.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.MouseMove and isinstance(event, QMouseEvent):
            self.hover = event.position().toPoint()
        elif event.type() == QEvent.Type.Leave:
            self.hover = QPoint(-1, -1)
        return False

    def _icon_for(self, action: RowAction, palette: QPalette) -> QIcon:
        key = (palette.cacheKey(), action)
        icon = self._icons.get(key)
        if icon is None:
            icon = self._icons[key] = ui_icon(ACTION_ICONS[action], palette)
        return icon

    def _now(self) -> float:
        return self.clock()

    # -- geometry ---------------------------------------------------------------------------------------

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        line = option.fontMetrics.height()
        return QSize(560, PAD * 2 + line * 3 + GAP * 2 + 2)

    def layout(self, option: QStyleOptionViewItem) -> RowLayout:
        rect = option.rect.adjusted(PAD, PAD, -PAD, -PAD)
        line = option.fontMetrics.height()
        buttons = QRect(rect.right() - 2 * BUTTON - GAP + 1, rect.center().y() - BUTTON // 2, 2 * BUTTON + GAP, BUTTON)
        content_right = buttons.left() - PAD * 2
        badge_width = option.fontMetrics.horizontalAdvance("serverless-function") + 14
        badge = QRect(content_right - badge_width, rect.top(), badge_width, line)
        name = QRect(rect.left(), rect.top(), badge.left() - GAP - rect.left(), line)
        second = rect.top() + line + GAP
        progress_width = option.fontMetrics.horizontalAdvance("999.9 MiB of 999.9 GiB stored · 100%") + 8
        bar = QRect(rect.left(), second + line // 4, content_right - rect.left() - progress_width - GAP, line // 2 + 2)
        progress = QRect(bar.right() + GAP, second, progress_width, line)
        third = second + line + GAP
        rate_width = option.fontMetrics.horizontalAdvance("999.9 MiB/s · 59 min 59 s left") + 8
        rate = QRect(content_right - rate_width, third, rate_width, line)
        status = QRect(rect.left(), third, rate.left() - GAP - rect.left(), line)
        primary = QRect(buttons.left(), buttons.top(), BUTTON, BUTTON)
        secondary = QRect(buttons.left() + BUTTON + GAP, buttons.top(), BUTTON, BUTTON)
        return RowLayout(name, badge, bar, progress, status, rate, primary, secondary)

    # -- painting ---------------------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:  # noqa: PLR0915
        row: Row | None = index.data(Role.ROW)
        if row is None:
            return
        palette = readable_selection(option.palette)
        view_option = QStyleOptionViewItem(option)
        self.initStyleOption(view_option, index)
        view_option.text = ""
        view_option.palette = palette
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, view_option, painter, widget)
        geometry = self.layout(option)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        dim = palette.color(text_role) if selected else muted_text(palette)
        now = self._now()
        text = row_text(row, now)
        painter.save()
        # Line 1: file name (bold), the display name if it differs, the size, the method badge.
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(palette.color(text_role))
        name_width = painter.fontMetrics().horizontalAdvance(text.name)
        elided = painter.fontMetrics().elidedText(text.name, Qt.TextElideMode.ElideMiddle, geometry.name.width())
        painter.drawText(geometry.name, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, elided)
        painter.setFont(option.font)
        painter.setPen(dim)
        rest = geometry.name.adjusted(min(name_width, geometry.name.width()), 0, 0, 0)
        painter.drawText(
            rest,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            painter.fontMetrics().elidedText(text.extra, Qt.TextElideMode.ElideRight, rest.width()),
        )
        if row.method:
            self._badge(painter, geometry.badge, row.method, palette)
        # Line 2: the progress bar and how much of the file is stored.
        if text.show_bar:
            bar = QStyleOptionProgressBar()
            bar.rect = geometry.bar
            bar.minimum, bar.maximum = 0, 1000
            bar.progress = round(row.fraction * 1000)
            bar.textVisible = False
            bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
            bar.palette = bar_palette(palette, selected=selected)
            style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)
            self._in_flight(painter, geometry.bar, row, bar_colours(palette, selected=selected).sent)
        painter.setPen(palette.color(text_role))
        painter.drawText(geometry.progress, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text.progress)
        # Line 3: what is happening, in words, and the speed with the time left.
        painter.setPen(palette.color(text_role) if selected else status_color(row, palette, now))
        area = status_area(geometry, text)
        status = painter.fontMetrics().elidedText(text.status, Qt.TextElideMode.ElideRight, area.width())
        painter.drawText(area, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, status)
        painter.setPen(dim)
        painter.drawText(geometry.rate, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text.rate)
        # The buttons.
        for rect, action in ((geometry.primary, row.primary_action()), (geometry.secondary, secondary_action(row))):
            if action is not None:
                self._button(painter, rect, action, palette, hovered=rect.contains(self.hover))
        if has_focus_ring(option):
            self._focus_ring(painter, option.rect, palette, selected=selected)
        painter.restore()

    @staticmethod
    def _focus_ring(painter: QPainter, rect: QRect, palette: QPalette, *, selected: bool) -> None:
        """Where keyboard focus is, drawn plainly: the style's dotted focus frame is faint or absent."""
        color = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Highlight)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(color, FOCUS_WIDTH))
        painter.drawRoundedRect(rect.adjusted(2, 2, -2, -2), 4, 4)
        painter.restore()

    def _in_flight(self, painter: QPainter, bar: QRect, row: Row, color: QColor) -> None:
        """Bytes on the wire but not yet acknowledged: a lighter stretch after the stored part of the bar.

        Large parts only count as stored when storage confirms them, so without this a slow link shows 0%
        for a long time while data flows; painting them apart keeps the bar honest and alive.
        """
        if not row.in_flight or not row.size or not row.status.active:
            return
        inner = bar.adjusted(1, 1, -1, -1)
        start = inner.left() + round(inner.width() * row.fraction)
        width = round(inner.width() * min(row.in_flight, row.size - row.confirmed) / row.size)
        if width <= 0:
            return
        painter.fillRect(QRect(start, inner.top(), width, inner.height()), color)

    def _badge(self, painter: QPainter, rect: QRect, method: str, palette: QPalette) -> None:
        fill, text = badge_colors(method, palette)
        painter.save()  # the smaller font and the pen must not leak into the next row's text
        small = QFont(painter.font())
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.85))
        painter.setFont(small)
        width = painter.fontMetrics().horizontalAdvance(method) + 14
        badge = QRect(rect.right() - width, rect.top(), width, rect.height())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(badge, badge.height() / 2, badge.height() / 2)
        painter.setPen(text)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, method)
        painter.restore()

    def _button(self, painter: QPainter, rect: QRect, action: RowAction, palette: QPalette, *, hovered: bool) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if hovered:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.Mid))
            painter.drawRoundedRect(rect, 6, 6)
        self._icon_for(action, palette).paint(painter, rect.adjusted(6, 6, -6, -6))

    # -- interaction ------------------------------------------------------------------------------------

    def action_at(self, option: QStyleOptionViewItem, index: Index, position: QPoint) -> RowAction | None:
        row: Row | None = index.data(Role.ROW)
        if row is None:
            return None
        geometry = self.layout(option)
        if geometry.primary.contains(position):
            return row.primary_action()
        if geometry.secondary.contains(position):
            return secondary_action(row)
        return None

    def editorEvent(self, event: QEvent, model: QAbstractItemModel, option: QStyleOptionViewItem, index: Index) -> bool:
        if not isinstance(event, QMouseEvent):
            return super().editorEvent(event, model, option, index)
        action = self.action_at(option, index, event.position().toPoint())
        if action is not None and event.type() == QEvent.Type.MouseButtonRelease:
            if event.button() == Qt.MouseButton.LeftButton:
                self.actionTriggered.emit(index.data(Role.JOB_ID), action)
            return True
        if action is not None and event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick):
            return True  # a click on a button is not a selection or an edit
        return super().editorEvent(event, model, option, index)

    def helpEvent(self, event: QHelpEvent, view: QAbstractItemView, option: QStyleOptionViewItem, index: Index) -> bool:
        action, row = self.action_at(option, index, event.pos()), index.data(Role.ROW)
        if action is not None:
            QToolTip.showText(event.globalPos(), row.action_label(action) if row else action.value, view)
            return True
        return super().helpEvent(event, view, option, index)

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: Index) -> QWidget:
        editor = QLineEdit(parent)
        editor.setAccessibleName("Display name")
        editor.setPlaceholderText("Display name")
        return editor

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: Index) -> None:
        geometry = self.layout(option)
        editor.setGeometry(geometry.name.adjusted(-4, -4, 4, 4))
