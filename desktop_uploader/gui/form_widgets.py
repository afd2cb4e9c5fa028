"""The settings dialog's field widgets, configured the one way the dialog uses them."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QSpinBox

# The upload method box: what a person reads, and the setting it stands for.
METHOD_CHOICES = (
    ("Automatic (recommended)", "auto"),
    ("Presigned only (straight to storage)", "presigned"),
    ("Chunked through the server", "chunked"),
    ("Single request (small files only)", "legacy"),
    ("Direct to my own S3 storage", "direct-s3"),
)


def spin_box(low: int, high: int, suffix: str = "", special: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSuffix(suffix)
    if special:
        box.setSpecialValueText(special)
    box.setKeyboardTracking(True)
    return box


def decimal_box(low: float, high: float, decimals: int, suffix: str = "", special: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSuffix(suffix)
    if special:
        box.setSpecialValueText(special)
    return box


def hint_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setProperty("role", "hint")
    label.setEnabled(False)  # rendered in the palette's muted text colour
    return label


def add_line_edits(form: QFormLayout, on_change: Callable[[], None], *rows: tuple[QLineEdit, str, str]) -> None:
    """Add labelled text fields, each named for tests and screen readers and revalidating on every edit."""
    for edit, label, name in rows:
        edit.setObjectName(name)
        edit.setAccessibleName(label)
        edit.textChanged.connect(on_change)
        form.addRow(label, edit)
