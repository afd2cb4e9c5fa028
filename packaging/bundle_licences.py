"""The licence texts inside the Windows and macOS bundles (the .deb has its own copyright file).

An installer that redistributes Qt (LGPL-3.0), SeaweedFS (Apache-2.0), Python, OpenSSL, ICU and the
Python distributions the app requires must carry their licences. The list is the .deb's copyright
file (linux/copyright.py: every component, its holders and its licence, texts from each
distribution's metadata), written for a folder of the bundle: the full texts Debian would point to
in /usr/share/common-licenses are copied next to it from packaging/licences/ instead.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMON_POINTER = re.compile(
    r"On Debian systems, the full text(?: of this licence \([^)]*\))? is in /usr/share/common-licenses/([\w.-]+)\."
)


def write_licences(target: Path) -> Path:
    """``target``/licenses: COPYRIGHT.txt and the full licence texts it names."""
    sys.path.insert(0, str(HERE / "linux"))
    from build_deb import LEFT_OUT
    from copyright import copyright_text

    folder = target / "licenses"
    folder.mkdir(parents=True, exist_ok=True)
    text = copyright_text(LEFT_OUT).replace("opt/desktop-uploader/_internal/", "")
    named = set(COMMON_POINTER.findall(text))
    text = COMMON_POINTER.sub(lambda found: f"The full text is in {found.group(1)}.txt, next to this file.", text)
    if "LGPL-3" in named:
        named.add("GPL-3")  # the LGPL is a set of permissions on top of the GPL: both texts go together
    for name in sorted(named):
        shutil.copyfile(HERE / "licences" / f"{name}.txt", folder / f"{name}.txt")
    (folder / "COPYRIGHT.txt").write_text(text, encoding="utf-8")
    return folder
