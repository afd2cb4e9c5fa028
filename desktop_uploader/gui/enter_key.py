"""Enter presses the focused button in the main window, as Space does.

Qt's buttons take Enter only in a dialog, where it means the default button; elsewhere a focused button
ignores it. A keyboard user who Tabbed to Resume, or to "Try it on this computer", pressed Enter and
nothing happened, so the app looked stuck (a GUI audit's finding). The key the button ignored comes up to
the window, and this filter on the window presses the focused button then.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractButton, QApplication, QWidget

ENTER_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


class EnterPressesButtons(QObject):
    """Installed on ``window``: an Enter its focused button let through clicks that button."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window = window
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.window or event.type() != QEvent.Type.KeyPress:
            return False
        assert isinstance(event, QKeyEvent)
        plain = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier == Qt.KeyboardModifier.NoModifier
        button = QApplication.focusWidget()
        if event.key() not in ENTER_KEYS or not plain or not isinstance(button, QAbstractButton):
            return False
        if button.window() is not self.window or not button.isEnabled() or not button.isVisible():
            return False
        button.click()
        return True
