"""A Debian package around the PyInstaller bundle, built with dpkg-deb.

Layout: the app in /opt/desktop-uploader, a launcher in /usr/bin, the desktop entry and icons
where desktops look for them, and the .safetensors/.gguf file types (shared-mime-info) the desktop
entry opens. Depends is worked out from the bundle (elf.py): libc6 at least as new as the newest
GLIBC_ symbol any bundled ELF uses, and the package of every library they link that the bundle does
not carry (the spec leaves the build machine's own system libraries out), plus what Qt's xcb plugin
loads at run time: without those the window does not open on a plain Debian.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

from copyright import copyright_text, write_changelog  # packaging/linux is on sys.path: build.py puts it there
from elf import system_needs

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "desktop-uploader"
# Distributions the app's requirements bring that the spec leaves out of the bundle (PY_UNUSED there):
# the copyright file lists what the package carries.
LEFT_OUT = frozenset({"pygments", "markdown-it-py", "mdurl", "pyyaml"})
# What lintian reports that is by design for an app bundle installed by a .deb of its own, not
# built from Debian's sources (`lintian dist/*.deb`; packaging/README.md lists the warnings left).
LINTIAN_OVERRIDES = """\
# Add-on software, outside Debian's archive: /opt is where the FHS puts it.
desktop-uploader: dir-or-file-in-opt
# The bundle carries Qt, ICU and Python; Qt's libraries find each other and their plugins
# through their own $ORIGIN-relative RUNPATH.
desktop-uploader: embedded-library
desktop-uploader: custom-library-search-path
# ICU's data library (packaging/linux/icu.py) is data only: it calls nothing, not even libc.
desktop-uploader: library-not-linked-against-libc
"""

# What Qt's xcb platform plugin needs, some of it loaded with dlopen (no NEEDED entry names it):
# without these the window does not open on a plain Debian. Everything else the bundle links
# directly is found by package_for() below.
XCB_DEPENDS = [
    "libxcb-cursor0",
    "libxkbcommon-x11-0",
    "libxcb-icccm4",
    "libxcb-keysyms1",
    "libxcb-shape0",
    "libxcb-randr0",
    "libxcb-render-util0",
    "libxcb-image0",
    "libxcb-xkb1",
    "libx11-xcb1",
    "libxkbcommon0",
    "libegl1",
    "libgl1",
    "libfontconfig1",
    "libfreetype6",
    "libdbus-1-3",
    "libglib2.0-0",
]


MAINTAINER_SCRIPT = """\
#!/bin/sh
set -e
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q || true
command -v update-mime-database >/dev/null 2>&1 && update-mime-database /usr/share/mime || true
icons=/usr/share/icons/hicolor
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t -f "$icons" || true
@LEFT_BEHIND@exit 0
"""
# dpkg cannot reach into home folders (nor should it delete a person's settings and resumable
# uploads), so removal says what each user keeps, and where. Not on upgrade: nothing is left then. Only
# on remove: purging an installed package runs this for remove and again for purge (said twice, an audit).
LEFT_BEHIND = """\
if [ "$1" = remove ]; then
  echo "Desktop Uploader is removed. Each user's own files stay in their home folder:"
  echo "  settings:                        ~/.config/desktop-uploader"
  echo "  upload history and sandbox data: ~/.local/share/desktop-uploader (test uploads kept in full)"
  echo "  logs:                            ~/.local/state/desktop-uploader"
  echo "  the sandbox's storage server:    ~/.cache/desktop-uploader (about 150 MB)"
  echo "  saved access keys:               the desktop keyring, under \"desktop-uploader\""
  echo "                                   (with no keyring, credentials.json in the settings folder)"
  echo "Delete them to leave no trace; keep them to pick up where you left off after reinstalling."
fi
"""


def package_for(soname: str) -> str:
    """The Debian package that provides ``soname`` on this (the build) machine: ldconfig, then dpkg -S."""
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths = [line.split(" => ")[-1].strip() for line in cache.splitlines() if line.strip().startswith(soname + " ")]
    for path in paths:
        for candidate in dict.fromkeys((path, os.path.realpath(path), path.replace("/lib/", "/usr/lib/", 1))):
            owner = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if owner.returncode == 0:
                return owner.stdout.split(":", 1)[0].strip()
    raise SystemExit(
        f"{soname} is linked by the bundle but neither bundled nor installed here, so the .deb cannot "
        "depend on its package: install what the build needs and build again: "
        "apt-get install $(grep -v '^#' packaging/linux/build-packages.txt)"
    )


def depends(bundle: Path) -> list[str]:
    """libc6 at least as new as the newest GLIBC_ symbol the bundle uses, then every package whose
    libraries the bundle links and does not carry, and Qt's xcb needs above."""
    needs = system_needs(bundle)
    packages = sorted({*XCB_DEPENDS, *(package_for(soname) for soname in needs.sonames)} - {"libc6"})
    return [f"libc6 (>= {needs.glibc_text})", *packages]


def version() -> str:
    scope: dict[str, str] = {}
    exec((ROOT / "desktop_uploader" / "__init__.py").read_text(), scope)  # noqa: S102 - our own file
    return scope["__version__"]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    os.chmod(path, mode)


def build_deb(bundle: Path, out: Path) -> Path:
    stage = out / "deb-root"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(bundle, stage / "opt" / PACKAGE, symlinks=True)
    for library in (stage / "opt" / PACKAGE).rglob("*.so*"):
        if not library.is_symlink() and library.is_file():
            library.chmod(0o644)  # a library is loaded, not run (lintian: shared-library-is-executable)
    _write(stage / "usr/share/lintian/overrides" / PACKAGE, LINTIAN_OVERRIDES)
    _write(
        stage / "usr" / "bin" / PACKAGE,
        f"""\
        #!/bin/sh
        exec /opt/{PACKAGE}/{PACKAGE} "$@"
        """,
        0o755,
    )
    applications = stage / "usr" / "share" / "applications"
    applications.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "resources" / "desktop-uploader.desktop", applications / "desktop-uploader.desktop")
    mime = stage / "usr" / "share" / "mime" / "packages"
    mime.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "resources" / "desktop-uploader-mime.xml", mime / "desktop-uploader.xml")
    icons = ROOT / "resources" / "icons"
    for png in (icons / "hicolor").glob("*/apps/desktop-uploader.png"):
        target = stage / "usr/share/icons/hicolor" / png.relative_to(icons / "hicolor")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, target)
    scalable = stage / "usr/share/icons/hicolor/scalable/apps"
    scalable.mkdir(parents=True, exist_ok=True)
    shutil.copy(icons / "desktop-uploader.svg", scalable / "desktop-uploader.svg")
    doc = stage / "usr/share/doc" / PACKAGE
    _write(doc / "copyright", copyright_text(LEFT_OUT))
    write_changelog(doc / "changelog.gz", version())
    # dpkg's Installed-Size counts a symlink as itself, not as its target a second time.
    installed_kib = sum(f.lstat().st_size for f in stage.rglob("*") if f.is_symlink() or f.is_file()) // 1024
    _write(
        stage / "DEBIAN" / "control",
        f"""\
        Package: {PACKAGE}
        Version: {version()}
        Architecture: amd64
        Maintainer: Desktop Uploader team <team@desktop-uploader.invalid>
        Installed-Size: {installed_kib}
        Depends: {", ".join(depends(bundle))}
        Section: net
        Priority: optional
        Description: Upload large AI model files to S3-compatible storage
         Drop LoRAs and checkpoints on a window; they go to your storage in parallel
         parts, resume after a crash or a lost network, and arrive byte-identical.
        """,
    )
    for script in ("postinst", "postrm"):
        _write(
            stage / "DEBIAN" / script,
            MAINTAINER_SCRIPT.replace("@LEFT_BEHIND@", LEFT_BEHIND * (script == "postrm")),
            0o755,
        )
    deb = out / f"{PACKAGE}_{version()}_amd64.deb"
    # xz level 3, not 6: half the build time for about 5 % more download (89 against 85 MB); the
    # installed size is the same. The storage server inside is xz -6 already.
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", "-Zxz", "-z3", str(stage), str(deb)], check=True)
    shutil.rmtree(stage, ignore_errors=True)
    _disown_opt(deb)
    return deb


def _disown_opt(deb: Path) -> None:
    """Take the ./opt/ entry out of the package's files: dpkg-deb lists every directory of the stage,
    so dpkg counted /opt as the package's and removed it with the package when nothing else owned it.
    /opt is the system's (the FHS requires it); the package owns /opt/desktop-uploader and below."""
    work = deb.parent / "deb-repack"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    subprocess.run(["ar", "x", str(deb.resolve())], check=True, cwd=work)
    subprocess.run(["xz", "-d", "data.tar.xz"], check=True, cwd=work)
    subprocess.run(["tar", "--delete", "--no-recursion", "-f", "data.tar", "./opt/"], check=True, cwd=work)
    subprocess.run(["xz", "-3", "-T0", "data.tar"], check=True, cwd=work)
    deb.unlink()
    members = ["debian-binary", next(m.name for m in work.glob("control.tar*")), "data.tar.xz"]
    subprocess.run(["ar", "rc", str(deb.resolve()), *members], check=True, cwd=work)
    shutil.rmtree(work, ignore_errors=True)
