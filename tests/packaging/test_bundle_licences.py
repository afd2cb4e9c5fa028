"""The Windows and macOS bundles carry the licences of what they redistribute (issue 17, Must do 5)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bundle_licences_name_every_component_and_carry_the_texts_they_point_to(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        from bundle_licences import write_licences
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    folder = write_licences(tmp_path)
    text = (folder / "COPYRIGHT.txt").read_text()
    for component, licence in (
        ("Qt and Qt for Python", "LGPL-3.0"),
        ("ICU", "Unicode-3.0"),
        ("Python Software Foundation", "PSF-2.0"),
        ("seaweedfs", "Apache-2.0"),
        ("OpenSSL", "Apache-2.0"),
        ("Desktop Uploader team", "MIT"),
    ):
        assert component in text and licence in text, component
    assert "/usr/share/common-licenses" not in text, "a Windows or Mac user has no Debian folder to look in"
    pointed = set(re.findall(r"The full text is in (\S+)\.txt, next to this file\.", text))
    assert "LGPL-3" in pointed
    for name in pointed | {"GPL-3"}:
        assert (folder / f"{name}.txt").stat().st_size > 5000, name
