"""The spec's trimming, by the names each operating system gives Qt's files (no build needed).

PyInstaller lays PySide6 out differently per system: on Windows the translations live in
PySide6/translations and plugins have no "lib" in front; trimming written for Linux names kept
everything there, opengl32sw.dll's 20 MB included (issue 17).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SPEC = Path(__file__).resolve().parents[2] / "packaging" / "desktop-uploader.spec"


@pytest.fixture(scope="module")
def wanted() -> Callable[[str], bool]:
    """The spec's own wanted(), run without PyInstaller: the part of the spec that defines it."""
    text = SPEC.read_text()
    scope: dict[str, object] = {}
    exec(  # noqa: S102 - our own spec file
        "import os, re, sys\nfrom pathlib import Path\n"
        + text[text.index("DROPPED_PLUGINS = (") : text.index("# resources/ is the package")],
        scope,
    )
    return scope["wanted"]  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("PySide6/plugins/platforms/qwindows.dll", True),
        ("PySide6/plugins/platforms/qoffscreen.dll", True),
        ("PySide6/plugins/imageformats/qsvg.dll", True),
        ("PySide6/plugins/imageformats/qico.dll", True),
        ("PySide6/Qt6Widgets.dll", True),
        ("PySide6/opengl32sw.dll", False),
        ("PySide6/translations/qtbase_de.qm", False),
        ("PySide6/plugins/platforms/qdirect2d.dll", False),
        ("PySide6/plugins/imageformats/qjpeg.dll", False),
        ("PySide6/plugins/generic/qtuiotouchplugin.dll", False),
        ("PySide6/Qt6Network.dll", False),
    ],
)
def test_windows_names(wanted: Callable[[str], bool], path: str, kept: bool) -> None:
    assert wanted(path) is kept


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("PySide6/Qt/plugins/platforms/libqxcb.so", True),
        ("PySide6/Qt/plugins/platforms/libqwayland.so", True),
        ("PySide6/Qt/plugins/wayland-decoration-client/libadwaita.so", True),
        ("PySide6/Qt/plugins/wayland-decoration-client/libbradient.so", False),
        ("PySide6/Qt/plugins/platforms/libqeglfs.so", False),
        ("PySide6/Qt/plugins/imageformats/libqjpeg.dylib", False),
        ("PySide6/Qt/translations/qtbase_de.qm", False),
        ("PySide6/Qt/lib/libQt6Network.so.6", False),
        ("botocore/data/s3/2006-03-01/service-2.json.gz", True),
        ("botocore/data/ec2/2016-11-15/service-2.json.gz", False),
    ],
)
def test_linux_and_macos_names(wanted: Callable[[str], bool], path: str, kept: bool) -> None:
    assert wanted(path) is kept
