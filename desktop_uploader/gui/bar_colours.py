"""The colours of a queue row's progress bar, and why a selected row needs its own.

Fusion paints the bar's track in the palette's Base and its fill in Highlight. On a selected row Highlight
is the row's own background, so the fill would vanish; drawing the fill in the selection's text colour
instead left the light palette's track (Base, white) the same white as the fill, and the sent stretch
(that white, translucent) white on white too: a first-time-user audit saw no bar at all on a selected
uploading row. On a selected row the track is therefore the selection shaded away from its text colour,
and the sent stretch a tint halfway between, so stored, sent, remaining and the highlight all differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette

from desktop_uploader.gui.palette import contrast, luminance, mix

TRACK_CONTRAST = 3.0  # WCAG 1.4.11: a graphic's parts stand out 3:1 from what is next to them
SENT_TINT = 0.45  # of the way from the selection to the stored part: about 2:1 from each, in light and dark
SENT_ALPHA = 90  # an unselected row's sent stretch: the fill, faint, over the track
GROUPS = (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive)


@dataclass(frozen=True)
class BarColours:
    """The stored part, the sent-but-not-yet-stored stretch after it, and the rest of the track."""

    stored: QColor
    sent: QColor
    track: QColor


def bar_colours(palette: QPalette, *, selected: bool, group: QPalette.ColorGroup | None = None) -> BarColours:
    """The bar's colours in ``group`` (the palette's current one unless given) of a row's palette."""
    group = palette.currentColorGroup() if group is None else group
    selection = palette.color(group, QPalette.ColorRole.Highlight)
    if not selected:
        sent = QColor(selection)
        sent.setAlpha(SENT_ALPHA)
        return BarColours(selection, sent, palette.color(group, QPalette.ColorRole.Base))
    stored = palette.color(group, QPalette.ColorRole.HighlightedText)
    return BarColours(stored, mix(selection, stored, SENT_TINT), shaded_track(selection, stored))


def shaded_track(selection: QColor, stored: QColor) -> QColor:
    """The selection moved away from the stored part's colour until the track stands out from the selection.

    Away from, not towards: the stored part is the selection's text colour, which already reads on it, so
    the track ends up further still from the stored part. Only a selection already at that extreme (black
    behind white text) is shaded the other way.
    """
    black, white = QColor("#000000"), QColor("#ffffff")
    away, towards = (black, white) if luminance(stored) >= luminance(selection) else (white, black)
    for extreme in (away, towards):
        for step in range(1, 21):
            candidate = mix(selection, extreme, step / 20)
            if contrast(candidate, selection) >= TRACK_CONTRAST:
                return candidate
    return away


def bar_palette(palette: QPalette, *, selected: bool) -> QPalette:
    """The palette the style paints the bar with: Highlight is its fill and Base its track."""
    if not selected:
        return palette
    bar = QPalette(palette)
    for group in GROUPS:
        colours = bar_colours(palette, selected=True, group=group)
        bar.setColor(group, QPalette.ColorRole.Highlight, colours.stored)
        bar.setColor(group, QPalette.ColorRole.Base, colours.track)
    return bar
