"""The Windows and macOS icons carry every size those systems show (issue 17: 256 px and 512 px only)."""

from __future__ import annotations

import struct
from pathlib import Path

ICONS = Path(__file__).resolve().parents[2] / "resources" / "icons"


def png_size(png: bytes) -> int:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    assert width == height
    return int(width)


def test_the_ico_has_small_and_large_images() -> None:
    data = (ICONS / "desktop-uploader.ico").read_bytes()
    _, kind, count = struct.unpack("<HHH", data[:6])
    assert kind == 1
    sizes = set()
    for index in range(count):
        edge, _, _, _, _, _, length, offset = struct.unpack("<BBBBHHII", data[6 + 16 * index : 22 + 16 * index])
        size = png_size(data[offset : offset + length])
        assert size == (edge or 256)
        sizes.add(size)
    assert {16, 24, 32, 48, 256} <= sizes


def test_the_icns_has_1x_and_2x_images_up_to_1024_px() -> None:
    data = (ICONS / "desktop-uploader.icns").read_bytes()
    assert data[:4] == b"icns" and struct.unpack(">I", data[4:8])[0] == len(data)
    found: dict[bytes, int] = {}
    at = 8
    while at < len(data):
        kind, length = data[at : at + 4], struct.unpack(">I", data[at + 4 : at + 8])[0]
        found[kind] = png_size(data[at + 8 : at + length])
        at += length
    assert found == {
        b"icp4": 16, b"icp5": 32, b"icp6": 64, b"ic07": 128, b"ic08": 256, b"ic09": 512, b"ic10": 1024,
        b"ic11": 32, b"ic12": 64, b"ic13": 256, b"ic14": 512,
    }  # fmt: skip
