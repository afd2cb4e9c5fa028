"""The settings dialog's field widgets, configured the one way the dialog uses them.

Number fields take any number a person types (up to ``ANY_NUMBER``): a field whose own range is the
valid one silently refuses keystrokes or reverts on leaving it, so typing 1000 would keep 100. The
dialog validates through ``Settings`` instead, whose sentence names the limit; ``plain_problem``
puts that sentence in the dialog's own words.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QColor, QPalette, QResizeEvent, QValidator
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QToolButton,
    QWidget,
)
from shiboken6 import isValid

from desktop_uploader.engine.errors import for_the_servers_keeper, maybe_only_busy
from desktop_uploader.gui.palette import muted_text, readable

# The upload method box: what a person reads, and the setting it stands for.
METHOD_CHOICES = (
    ("Automatic (recommended)", "auto"),
    ("Presigned only (straight to storage)", "presigned"),
    ("Chunked through the server", "chunked"),
    ("Single request (small files only)", "legacy"),
    ("Direct to my own S3 storage", "direct-s3"),
)
ANY_NUMBER = 9_999_999  # wide enough for any mistake; Settings decides what is valid

# The engine's names for settings, and the words the dialog's labels use for them.
DIALOG_WORDS = (
    ("Parts in flight (concurrency)", "Parts sent at once"),
    ("Retries", "Tries per part"),
    ("Backoff base", "The first retry delay"),
    ("Backoff cap", "The longest retry delay"),
    ("Read timeout", "The time to wait on a stalled connection"),
    ("URL expiry", "The upload link lifetime"),
)


def plain_problem(message: str) -> str:
    """The engine's sentence about a setting, naming it as the dialog's label does and saying what was typed."""
    for engine, dialog in DIALOG_WORDS:
        if message.startswith(engine + " "):
            message = dialog + message[len(engine) :]
    return message.replace("; got ", "; you entered ")


KEEPERS_TO_FIX = "Nothing here can fix that: press Save anyway to keep these settings until the server is fixed."
TRY_AGAIN_SOON = "The server may only be busy: test again in a moment, or press Save anyway."


def after_a_failed_test(sentence: str, fix: str) -> str:
    """What to do about a failed test before saving: ``fix`` the fields, unless the test's sentence says the
    fault is the server's to fix or that it was only busy (a 503 without a reason said "Fix the address or
    token above", neither of which was wrong)."""
    if for_the_servers_keeper(sentence):
        return KEEPERS_TO_FIX
    return TRY_AGAIN_SOON if maybe_only_busy(sentence) else fix


def collapsible(title: str, name: str) -> tuple[QToolButton, QWidget]:
    """A header that opens and closes the widget under it; closed at first, for what few people need."""
    toggle = QToolButton()
    toggle.setObjectName(name + "Toggle")
    toggle.setText(title)
    toggle.setAccessibleName(title)
    toggle.setCheckable(True)
    toggle.setChecked(False)
    toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toggle.setArrowType(Qt.ArrowType.RightArrow)
    content = QWidget()
    content.setObjectName(name)
    content.setVisible(False)

    def show(opened: bool) -> None:
        toggle.setArrowType(Qt.ArrowType.DownArrow if opened else Qt.ArrowType.RightArrow)
        content.setVisible(opened)

    toggle.toggled.connect(show)
    return toggle, content


def restore_question(parent: QWidget, restore: Callable[[], None]) -> QMessageBox:
    """Ask before putting settings back to defaults; keeping them is the default answer, so Enter is safe."""
    box = QMessageBox(parent)
    box.setObjectName("restoreDefaultsQuestion")
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Restore defaults")
    box.setText("Put the speed, behaviour and advanced settings back to their defaults?")
    box.setInformativeText(
        "The server address, its token and your own S3 storage stay. Nothing is saved until you press Save."
    )
    yes = box.addButton("Restore defaults", QMessageBox.ButtonRole.DestructiveRole)
    keep = box.addButton("Keep my settings", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(keep)
    box.setEscapeButton(keep)
    box.buttonClicked.connect(lambda clicked: restore() if clicked is yes else None)
    box.finished.connect(box.deleteLater)
    return box


def spin_box(low: int, high: int, suffix: str = "", special: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSuffix(suffix)
    if special:
        box.setSpecialValueText(special)
    box.setKeyboardTracking(True)
    return box


class CountBox(QSpinBox):
    """A count whose unit agrees with it: "1 part", "6 parts" ("1 parts" read as a slip, a GUI audit's finding)."""

    def __init__(self, one: str, many: str) -> None:
        super().__init__()
        self._units = (one, many)
        self.valueChanged.connect(self._agree)
        self._agree(self.value())

    def _agree(self, value: int) -> None:
        unit = self._units[0] if value == 1 else self._units[1]
        if self.suffix() != unit:
            self.setSuffix(unit)  # Qt keeps the cursor where it was in the number being typed


def count_box(low: int, high: int, one: str, many: str, special: str = "") -> CountBox:
    box = CountBox(one, many)
    box.setRange(low, high)
    if special:
        box.setSpecialValueText(special)
    box.setKeyboardTracking(True)
    return box


class DecimalBox(QDoubleSpinBox):
    """Refuses a minus sign where no negative is possible, as Qt's whole-number boxes do. Qt let "-" stand
    here as a half-typed number, Save stayed on, and Enter kept the old value without a word (an audit typed
    -1 as a bandwidth limit and got Unlimited)."""

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        if "-" in text and self.minimum() >= 0:
            return QValidator.State.Invalid, text, pos
        return super().validate(text, pos)

    def textFromValue(self, value: float) -> str:
        """Without trailing zeros ("5 MiB/s", "0.04 MiB/s"), so a box can take more decimals than most values
        need: with one, a bandwidth limit of 0.04 MiB/s was rounded to 0 and read "Unlimited" (an audit)."""
        text = super().textFromValue(value)
        point = self.locale().decimalPoint()
        return text.rstrip("0").rstrip(point) if point in text else text


def decimal_box(low: float, high: float, decimals: int, suffix: str = "", special: str = "") -> QDoubleSpinBox:
    box = DecimalBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSuffix(suffix)
    if special:
        box.setSpecialValueText(special)
    return box


class ReadableLabel(QLabel):
    """A label whose text colour is worked out from the application's palette, again whenever it changes,
    so that a switch to dark mode while a dialog is open keeps it at 4.5:1."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._recolour()

    def wanted(self, palette: QPalette) -> QColor:
        return palette.color(QPalette.ColorRole.WindowText)

    def text_colour(self) -> QColor:
        return self.palette().color(QPalette.ColorRole.WindowText)

    def _recolour(self) -> None:
        wanted = self.wanted(QApplication.palette(self))
        palette = self.palette()
        if palette.color(QPalette.ColorRole.WindowText) != wanted:
            palette.setColor(QPalette.ColorRole.WindowText, wanted)
            self.setPalette(palette)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._recolour()

    def sizeHint(self) -> QSize:
        """As tall as the text is at the width it was given, once laid out.

        Qt sizes a wrapped label for a narrow width of its own choosing, and the form gave each hint a
        height between that and its real one: the preset's one-line note took 14, 22 or 29 px by its
        wording, and every field under it moved when the preset changed; a connection test's result sat two
        lines below its button (GUI audits' findings).
        """
        hint = super().sizeHint()
        if self.wordWrap() and self.width() > hint.width():
            return QSize(hint.width(), self.heightForWidth(self.width()))
        return hint

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.updateGeometry()  # the height it wants follows its width


class HintLabel(ReadableLabel):
    """An explanation under a field: quieter than a label, yet readable (the disabled colour was 1.9:1)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.setWordWrap(True)
        self.setProperty("role", "hint")

    def wanted(self, palette: QPalette) -> QColor:
        return muted_text(palette, on=QPalette.ColorRole.Window)


class ProblemLabel(ReadableLabel):
    """What is wrong with the settings, in red that reads on a light or a dark window (#c62828 was 2.5:1 on dark),
    or what is still to fill in, in the window's own colour: a first-time user who chose "Use my own S3
    storage…" met a red "need your S3 bucket" before typing a thing (an audit)."""

    failed = True

    def show_problem(self, text: str) -> None:
        self.failed = True
        self._recolour()
        self.setText(text)

    def show_note(self, text: str) -> None:
        """A line that is neither a pass nor a failure, in the window's text colour (a re-check read one in red)."""
        self.failed = False
        self._recolour()
        self.setText(text)

    def wanted(self, palette: QPalette) -> QColor:
        if not self.failed:
            return palette.color(QPalette.ColorRole.WindowText)
        dark = palette.color(QPalette.ColorRole.Window).lightness() < 128
        return readable(QColor("#ef6c6c" if dark else "#c62828"), palette.color(QPalette.ColorRole.Window))


class TestResultLabel(ProblemLabel):
    """What "Test connection" found: a failure in the problem red (a GUI audit saw its ✗ in plain black)."""

    failed = False

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def show_result(self, ok: bool, text: str) -> None:
        if ok:
            self.show_note("✓ " + text)
        else:
            self.show_problem("✗ " + text)


def problem_row(dialog: QWidget) -> tuple[ProblemLabel, QPushButton, QHBoxLayout]:
    """Why the settings can't be saved as they are, and, after a failed test, the choice to save anyway."""
    problem = ProblemLabel("", dialog)  # red that stays readable in a dark palette
    problem.setObjectName("settingsProblem")
    problem.setWordWrap(True)
    # Its two lines are kept while empty: shown and hidden, it squeezed every field of the tab above as a
    # mistake was typed, and one line cut the Advanced tab's hints through (GUI audits' findings).
    problem.setMinimumHeight(2 * problem.fontMetrics().lineSpacing())
    # Beside the reason it answers, its room kept while hidden: in the button row it pushed Save aside when
    # it came, and an edit that hid it put Save back under the pointer (a GUI audit's finding).
    save_anyway = QPushButton("Save anyway", dialog)
    save_anyway.setObjectName("saveAnyway")
    kept = save_anyway.sizePolicy()
    kept.setRetainSizeWhenHidden(True)
    save_anyway.setSizePolicy(kept)
    save_anyway.setVisible(False)
    row = QHBoxLayout()
    row.addWidget(problem, 1)
    row.addWidget(save_anyway, 0, Qt.AlignmentFlag.AlignTop)
    return problem, save_anyway, row


@contextlib.contextmanager
def held(button: QAbstractButton) -> Iterator[None]:
    """``button`` is off while its work runs, and gets back the keyboard focus it had.

    Disabling a focused button hands focus to the next field: after a key test, a GUI audit's typing
    went into "Upload link lifetime", its value selected.
    """
    had_focus = button.hasFocus()
    button.setEnabled(False)
    try:
        yield
    finally:
        if isValid(button):  # closing the dialog deletes it, maybe while the work runs
            button.setEnabled(True)
            if had_focus:
                button.setFocus(Qt.FocusReason.OtherFocusReason)


def hint_label(text: str) -> QLabel:
    return HintLabel(text)


def add_line_edits(form: QFormLayout, on_change: Callable[[], None], *rows: tuple[QLineEdit, str, str]) -> None:
    """Add labelled text fields, each named for tests and screen readers and revalidating on every edit."""
    for edit, label, name in rows:
        edit.setObjectName(name)
        edit.setAccessibleName(label)
        edit.textChanged.connect(on_change)
        form.addRow(label, edit)
