#!/usr/bin/env python3
"""Make the Windows .ico and the macOS .icns from resources/icons/desktop-uploader.svg.

Both hold PNG images, rendered from the SVG at every size the system asks for, not scaled down
from one big bitmap: Windows picks 16, 24, 32 and 48 px for lists, the taskbar and title bars and
256 px for large icons; macOS wants 16 to 512 px at 1x and 2x (1024 px) for Finder, the Dock
and Retina screens. With only 256 px (Windows) or 512 px (macOS), small icons came out blurred.
Run after changing the SVG: ``python packaging/icons.py``; the files are committed.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
ICO_SIZES = (16, 20, 24, 32, 40, 48, 64, 256)
# OSType of each PNG entry of an .icns, by pixel size (the @2x types share a size with a 1x one).
ICNS_TYPES = (
    (b"icp4", 16),
    (b"icp5", 32),
    (b"icp6", 64),
    (b"ic07", 128),
    (b"ic08", 256),
    (b"ic09", 512),
    (b"ic10", 1024),
    (b"ic11", 32),
    (b"ic12", 64),
    (b"ic13", 256),
    (b"ic14", 512),
)


def render_png(renderer: QSvgRenderer, size: int) -> bytes:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


def ico(pngs: dict[int, bytes]) -> bytes:
    """ICONDIR, one ICONDIRENTRY per size (0 means 256), then the PNGs (Windows Vista and later)."""
    sizes = sorted(pngs)
    offset = 6 + 16 * len(sizes)
    head = struct.pack("<HHH", 0, 1, len(sizes))
    entries, blobs = b"", b""
    for size in sizes:
        png = pngs[size]
        edge = 0 if size >= 256 else size
        entries += struct.pack("<BBBBHHII", edge, edge, 0, 0, 1, 32, len(png), offset + len(blobs))
        blobs += png
    return head + entries + blobs


def icns(pngs: dict[int, bytes]) -> bytes:
    """'icns', the total length, then (OSType, length with its 8-byte header, PNG) per entry."""
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    app = QGuiApplication(sys.argv[:1])  # noqa: F841 - QPainter needs it
    renderer = QSvgRenderer(str(ICONS / "desktop-uploader.svg"))
    assert renderer.isValid()
    pngs = {size: render_png(renderer, size) for size in {*ICO_SIZES, *(size for _, size in ICNS_TYPES)}}
    (ICONS / "desktop-uploader.ico").write_bytes(ico({size: pngs[size] for size in ICO_SIZES}))
    (ICONS / "desktop-uploader.icns").write_bytes(icns(pngs))
    print(f"wrote desktop-uploader.ico ({len(ICO_SIZES)} sizes) and desktop-uploader.icns ({len(ICNS_TYPES)} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
