"""The colours of a queue row's progress bar, and why a selected row needs its own.

Fusion paints the bar's track in the palette's Base and its fill in Highlight. On a selected row Highlight
is the row's own background, so the fill would vanish. Two audits shaped what replaces it:

- drawing the fill in the selection's text colour left the light palette's track (Base, white) the same
  white as the fill: a first-time-user audit saw no bar at all on a selected uploading row;
- then the track was the selection shaded dark under a white fill, and the next audit read a selected
  row at 8 % as about 90 % full, an empty row as a finished one: a dark bar with a white sliver reads
  as filled, the other way round from every other row.

So a selected row's bar reads as every other row's does: the same track (Base), and a fill of the
selection's own colour shaded away from the track until it stands out from both. The sent stretch is
the tint between the fill and the track that stands furthest from the fill, the track and the selection.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette

from desktop_uploader.gui.palette import contrast, luminance, mix

TRACK_CONTRAST = 3.0  # WCAG 1.4.11: a graphic's parts stand out 3:1 from what is next to them
FILL_APART = 2.0  # the fill from the selection: with room, as the style paints a selection a shade off its colour
TINT_STEPS = 40  # tints tried between the fill and the track
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
    track = palette.color(group, QPalette.ColorRole.Base)
    if not selected:
        sent = QColor(selection)
        sent.setAlpha(SENT_ALPHA)
        return BarColours(selection, sent, track)
    stored = shaded_fill(selection, track)
    return BarColours(stored, sent_tint(stored, track, selection), track)


def shaded_fill(selection: QColor, track: QColor) -> QColor:
    """The selection moved away from the track until it stands out from the track (3:1) and from itself."""
    away = QColor("#000000") if luminance(track) >= luminance(selection) else QColor("#ffffff")
    for step in range(1, 21):
        candidate = mix(selection, away, step / 20)
        if contrast(candidate, track) >= TRACK_CONTRAST and contrast(candidate, selection) >= FILL_APART:
            return candidate
    return away


def sent_tint(stored: QColor, track: QColor, selection: QColor) -> QColor:
    """The colour between the fill and the track that is furthest from the nearest of the three around it."""
    tints = (mix(stored, track, step / TINT_STEPS) for step in range(1, TINT_STEPS))
    return max(tints, key=lambda tint: min(contrast(tint, stored), contrast(tint, track), contrast(tint, selection)))


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
