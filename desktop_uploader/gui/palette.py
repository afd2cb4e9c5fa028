"""Text colours that stay readable: WCAG contrast, a muted colour that still passes, and a dark palette.

The window used the palette's *disabled* text colour for secondary information (speed, time left,
sizes, "Paused", the settings hints): about 1.9:1 on white, where WCAG AA asks 4.5:1 for body
text. Secondary text here is instead mixed from the text colour towards the background only as far
as the contrast allows, so it looks quieter without becoming hard to read, in any palette.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette

BODY_TEXT = 4.5  # WCAG 2.x AA for normal-size text
MARGIN = 0.2  # painted text is antialiased; aim a little above the line


def luminance(color: QColor) -> float:
    """WCAG relative luminance of an opaque colour."""

    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF()) + 0.0722 * channel(color.blueF())


def contrast(one: QColor, other: QColor) -> float:
    """WCAG contrast ratio, from 1 (same) to 21 (black on white)."""
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def mix(one: QColor, other: QColor, towards: float) -> QColor:
    """``one`` moved ``towards`` (0..1) of the way to ``other``."""
    return QColor.fromRgbF(
        one.redF() + (other.redF() - one.redF()) * towards,
        one.greenF() + (other.greenF() - one.greenF()) * towards,
        one.blueF() + (other.blueF() - one.blueF()) * towards,
    )


def readable(color: QColor, background: QColor, ratio: float = BODY_TEXT + MARGIN) -> QColor:
    """``color``, darkened or lightened (whichever the background needs) until it reaches ``ratio``."""
    if contrast(color, background) >= ratio:
        return color
    extreme = QColor("#000000") if luminance(background) > 0.18 else QColor("#ffffff")
    for step in range(1, 21):
        candidate = mix(color, extreme, step / 20)
        if contrast(candidate, background) >= ratio:
            return candidate
    return extreme


def muted(text: QColor, background: QColor, ratio: float = BODY_TEXT + MARGIN) -> QColor:
    """Secondary text: as far from ``text`` towards ``background`` as still reads at ``ratio``."""
    for step in range(12, -1, -1):  # at most 60 % of the way to the background
        candidate = mix(text, background, step * 0.05)
        if contrast(candidate, background) >= ratio:
            return candidate
    return readable(text, background, ratio)


def muted_text(palette: QPalette, *, on: QPalette.ColorRole = QPalette.ColorRole.Base) -> QColor:
    """The muted text colour for rows painted on ``on`` (the list's Base) or labels on the Window."""
    text_role = QPalette.ColorRole.Text if on == QPalette.ColorRole.Base else QPalette.ColorRole.WindowText
    return muted(palette.color(text_role), palette.color(on))


def readable_selection(palette: QPalette) -> QPalette:
    """``palette`` with a selection colour dark (or light) enough for its selected text to read at 4.5:1.

    Fusion's light selection (#308cc6 behind white) is about 3.6:1.
    """
    result = QPalette(palette)
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        text = palette.color(group, QPalette.ColorRole.HighlightedText)
        back = palette.color(group, QPalette.ColorRole.Highlight)
        result.setColor(group, QPalette.ColorRole.Highlight, readable(back, text))
    return result


def dark_palette() -> QPalette:
    """What a desktop in dark mode hands the app; the tests and the screenshots check the window in it."""
    palette = QPalette()
    for role, color in (
        (QPalette.ColorRole.Window, "#2b2b2e"),
        (QPalette.ColorRole.WindowText, "#e8e8ea"),
        (QPalette.ColorRole.Base, "#1f1f22"),
        (QPalette.ColorRole.AlternateBase, "#2b2b2e"),
        (QPalette.ColorRole.Text, "#e8e8ea"),
        (QPalette.ColorRole.Button, "#36363a"),
        (QPalette.ColorRole.ButtonText, "#e8e8ea"),
        (QPalette.ColorRole.Highlight, "#3d6fd9"),
        (QPalette.ColorRole.HighlightedText, "#ffffff"),
        (QPalette.ColorRole.Mid, "#4a4a50"),
        (QPalette.ColorRole.Light, "#4a4a50"),
        (QPalette.ColorRole.Dark, "#1a1a1c"),
        (QPalette.ColorRole.ToolTipBase, "#36363a"),
        (QPalette.ColorRole.ToolTipText, "#e8e8ea"),
        (QPalette.ColorRole.PlaceholderText, "#a0a0a6"),
        (QPalette.ColorRole.Link, "#8ab4f8"),
    ):
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#8a8a90"))
    return palette
