"""The app icon and the toolbar/row icons, tinted to the palette so they suit light and dark themes."""

from __future__ import annotations

import functools
from importlib.resources import files

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

ICONS = files("desktop_uploader.resources") / "icons"
SIZES = (16, 20, 24, 32, 48, 64)


def app_icon() -> QIcon:
    icon = QIcon(str(ICONS / "desktop-uploader.svg"))
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        png = ICONS / "hicolor" / f"{size}x{size}" / "apps" / "desktop-uploader.png"
        if png.is_file():
            icon.addFile(str(png))
    return icon


def _tinted(renderer: QSvgRenderer, size: int, color: QColor, ratio: float) -> QPixmap:
    pixels = round(size * ratio)
    image = QImage(pixels, pixels, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, pixels, pixels))
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
    painter.fillRect(image.rect(), color)
    painter.end()
    pixmap = QPixmap.fromImage(image)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


@functools.cache
def _icon(name: str, normal: str, disabled: str, ratio: float) -> QIcon:
    renderer = QSvgRenderer(str(ICONS / "ui" / f"{name}.svg"))
    icon = QIcon()
    for size in SIZES:
        icon.addPixmap(_tinted(renderer, size, QColor(normal), ratio), QIcon.Mode.Normal)
        icon.addPixmap(_tinted(renderer, size, QColor(disabled), ratio), QIcon.Mode.Disabled)
    return icon


def forget_icons() -> None:
    """Drop cached icons while Qt still runs (pixmaps outliving the application crash at exit)."""
    _icon.cache_clear()


def ui_icon(name: str, palette: QPalette | None = None) -> QIcon:
    palette = palette or QApplication.palette()
    normal = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.WindowText).name()
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText).name()
    app = QApplication.instance()
    ratio = app.devicePixelRatio() if isinstance(app, QApplication) else 1.0
    return _icon(name, normal, disabled, ratio)
