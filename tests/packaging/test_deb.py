"""Build the installer, install it like a user's machine would, and check the installed app works.

Slow (about two minutes: PyInstaller, then dpkg), and it needs root and dpkg to install a .deb, so
it skips itself elsewhere; CI runs as root on Debian and runs it. Set DESKTOP_UPLOADER_SCREENSHOTS
to a folder to keep the screenshot of the installed app's window (docs/screenshots is refreshed so).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
# Bounds, not speeds: the build alone takes about 3 minutes on a quiet 2-core machine and over 10 on a busy one.
pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(3600)]
BUILD_BOUND = 2400
INSTALL_LOCK = Path(tempfile.gettempdir()) / "desktop-uploader-deb-test.lock"


def run(argv: list[str], timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]


@contextmanager
def xvfb() -> Iterator[str]:
    """A virtual screen, yielded once it takes clients: Xvfb writes its display number to ``-displayfd``
    when it is ready, and picks a free one itself, so no guessed number collides and nothing sleeps."""
    reader, writer = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(writer), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(writer,),
    )
    os.close(writer)
    try:
        with os.fdopen(reader) as announced:
            number = announced.readline().strip()  # blocks until ready; EOF if Xvfb died
        assert number, f"Xvfb did not start (exit code {server.poll()})"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def colours_in(window: str, env: dict[str, str]) -> int:
    """How many distinct colours the window shows: a blank or half-drawn window has a handful."""
    shown = run(["import", "-window", window, "-format", "%k", "info:"], env=env, timeout=60)
    return int(shown.stdout.strip() or 0) if shown.returncode == 0 else 0


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    missing = [tool for tool in ("dpkg", "dpkg-deb", "Xvfb", "xdotool", "import") if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"installing a .deb needs root and {', '.join(missing) or 'dpkg'} (CI has them)")
    out = tmp_path_factory.mktemp("dist")
    began = time.monotonic()
    built = run([sys.executable, "packaging/build.py", "--out", str(out)], timeout=BUILD_BOUND, cwd=ROOT)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    print(
        f"\nbuilt in {time.monotonic() - began:.0f} s: "
        + " | ".join(line for line in built.stdout.splitlines() if line.startswith(("bundle:", "deb:")))
    )
    deb = next(out.glob("desktop-uploader_*_amd64.deb"))
    # The installed package is the machine's, not this run's: a second test run (another clone, say)
    # waits here until this one has removed it again.
    with FileLock(INSTALL_LOCK):
        installing = dpkg("-i", str(deb))
        assert installing.returncode == 0, installing.stdout + installing.stderr
        try:
            yield deb
        finally:
            dpkg("-r", "desktop-uploader")


def dpkg(*args: str) -> subprocess.CompletedProcess[str]:
    """dpkg, once no other process (an apt-get elsewhere) holds dpkg's own lock."""
    answers: list[subprocess.CompletedProcess[str]] = []

    def attempt() -> bool:
        answers.append(run(["dpkg", *args]))
        return "lock" not in answers[-1].stderr.lower() or answers[-1].returncode == 0

    wait_until(attempt, 300, "dpkg's lock")
    return answers[-1]


def test_the_deb_declares_what_qt_needs_and_installs_where_desktops_look(installed: Path) -> None:
    fields = run(["dpkg-deb", "-f", str(installed), "Depends", "Installed-Size"]).stdout
    for library in (
        "libxcb-cursor0",
        "libxkbcommon-x11-0",
        "libxcb-icccm4",
        "libxcb-keysyms1",
        "libxcb-shape0",
        "libxcb-randr0",
        "libxcb-render-util0",
        "libxcb-image0",
        "libegl1",
    ):
        assert library in fields
    kib = int(run(["dpkg-query", "-W", "-f=${Installed-Size}", "desktop-uploader"]).stdout)
    app = sum(f.lstat().st_size for f in Path("/opt/desktop-uploader").rglob("*") if f.is_symlink() or f.is_file())
    weed = sum(f.stat().st_size for f in Path("/opt/desktop-uploader").rglob("weed.xz"))
    print(
        f"\ninstalled size: {kib / 1024:.1f} MiB ({app / 1e6:.1f} MB in /opt/desktop-uploader, of which "
        f"{weed / 1e6:.1f} MB is the sandbox's compressed storage server); download "
        f"{installed.stat().st_size / 1e6:.1f} MB"
    )
    assert kib * 1024 <= 150 * 1000 * 1000, f"installed size {kib} KiB: over the 150 MB goal"
    listed = run(["dpkg-deb", "-c", str(installed)]).stdout.splitlines()
    assert not [line for line in listed if line.endswith(" ./opt/")], "the package must not own /opt"
    assert "desktop-uploader" not in run(["dpkg", "-S", "/opt"]).stdout
    assert Path("/usr/bin/desktop-uploader").is_file()
    assert Path("/usr/share/applications/desktop-uploader.desktop").is_file()
    assert Path("/usr/share/icons/hicolor/256x256/apps/desktop-uploader.png").is_file()
    assert Path("/usr/share/icons/hicolor/scalable/apps/desktop-uploader.svg").is_file()


APP = Path("/opt/desktop-uploader")
GLIBC = re.compile(r"\bGLIBC_(\d+(?:\.\d+)+)\b")
NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")
RESOLVED = re.compile(r"^\s*(\S+) => (\S+)", re.MULTILINE)


def bundled_elfs() -> list[Path]:
    def is_elf(path: Path) -> bool:
        if path.is_symlink() or not path.is_file():
            return False
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"

    return [path for path in APP.rglob("*") if is_elf(path)]


def owner(path: str) -> str:
    """The package a system library belongs to (merged /usr: dpkg may know either spelling)."""
    for candidate in dict.fromkeys((path, os.path.realpath(path), path.replace("/lib/", "/usr/lib/", 1))):
        found = run(["dpkg", "-S", candidate])
        if found.returncode == 0:
            return found.stdout.split(":", 1)[0]
    return f"no package has {path}"


def test_the_deb_depends_on_every_library_it_links_and_on_the_glibc_it_needs(installed: Path) -> None:
    depends = [word.strip() for word in run(["dpkg-deb", "-f", str(installed), "Depends"]).stdout.split(",")]
    names = {entry.split(" ")[0] for entry in depends}
    assert {"libwayland-cursor0", "libwayland-egl1", "libwayland-client0", "libxcb1"} <= names, depends
    elfs = bundled_elfs()
    assert len(elfs) > 50
    newest = max(
        tuple(int(part) for part in version.split("."))
        for elf in elfs
        for version in GLIBC.findall(run(["objdump", "-T", str(elf)]).stdout)
    )
    assert f"libc6 (>= {'.'.join(map(str, newest))})" in depends, depends
    # As the app's launcher runs them: the bundle's own folder first on the library path.
    env = {**os.environ, "LD_LIBRARY_PATH": str(APP / "_internal")}
    unlisted: dict[str, str] = {}
    owners: dict[str, str] = {}
    for elf in elfs:
        linked = run(["ldd", str(elf)], env=env).stdout
        assert "not found" not in linked, f"{elf}:\n{linked}"
        resolved = dict(RESOLVED.findall(linked))
        for soname in NEEDED.findall(run(["readelf", "-d", "--wide", str(elf)]).stdout):
            path = resolved.get(soname, "")
            if path and not path.startswith(str(APP)):
                package = owners.setdefault(path, owner(path))
                if package not in names:  # on a minimal system this library would be missing
                    unlisted[soname] = f"{package} (linked by {elf.relative_to(APP)})"
    assert not unlisted, unlisted


def test_the_desktop_entry_is_valid_and_opens_safetensors_files(installed: Path) -> None:
    entry = Path("/usr/share/applications/desktop-uploader.desktop")
    if shutil.which("desktop-file-validate"):
        checked = run(["desktop-file-validate", str(entry)])
        assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
    text = entry.read_text()
    assert "MimeType=application/x-safetensors;" in text and "octet-stream" not in text
    assert "Categories=Network;FileTransfer;\n" in text
    assert Path("/usr/share/mime/packages/desktop-uploader.xml").is_file()
    # postinst ran update-mime-database: the desktop's MIME database now knows the type.
    assert "application/x-safetensors:*.safetensors" in Path("/usr/share/mime/globs2").read_text()


def test_the_installed_app_opens_with_the_files_it_is_given(installed: Path, tmp_path: Path) -> None:
    model = tmp_path / "given.safetensors"
    model.write_bytes(b"\0" * 4096)
    home = tmp_path / "home"
    env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("DESKTOP_UPLOADER_SERVER", None)
    log = home / "logs" / "desktop-uploader.log"
    app = subprocess.Popen(
        ["desktop-uploader", str(model)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_until(
            lambda: app.poll() is not None or (log.is_file() and "Opened with 1 file(s): 1 queued" in log.read_text()),
            60,
            "the app to queue the file it was opened with",
        )
        assert app.poll() is None, app.communicate(timeout=20)[0]
    finally:
        app.terminate()
        app.communicate(timeout=20)


def test_the_installed_app_reports_its_version_and_passes_its_self_test(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("DESKTOP_UPLOADER_SERVER", None)
    assert run(["desktop-uploader", "--version"], env=env).stdout.strip().startswith("desktop-uploader 0.")
    began = time.monotonic()
    checked = run(["desktop-uploader", "--self-test"], env=env)
    print(f"\nself-test of the installed app ({time.monotonic() - began:.1f} s):\n{checked.stdout}")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "PASSED: the stored object is byte-identical to the file" in checked.stdout


def test_the_installed_app_opens_a_real_window(installed: Path, tmp_path: Path) -> None:
    shots = Path(os.environ.get("DESKTOP_UPLOADER_SCREENSHOTS", tmp_path))
    with xvfb() as display:
        env = {
            **os.environ,
            "DISPLAY": display,
            "QT_QPA_PLATFORM": "xcb",
            "DESKTOP_UPLOADER_HOME": str(tmp_path / "home"),
        }
        app = subprocess.Popen(
            ["desktop-uploader"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            found = run(
                ["xdotool", "search", "--sync", "--onlyvisible", "--name", "^Desktop Uploader"], env=env, timeout=60
            )
            assert found.returncode == 0 and found.stdout.strip(), "no window appeared"
            window = found.stdout.split()[0]
            wait_until(lambda: colours_in(window, env) > 50, 60, "the window to paint its text and icons")
            target = shots / "installed-app-xvfb.png"
            shots.mkdir(parents=True, exist_ok=True)
            assert run(["import", "-window", "root", str(target)], env=env).returncode == 0
            assert target.stat().st_size > 10_000
        finally:
            app.terminate()
            output = app.communicate(timeout=20)[0]
    assert "could not load the Qt platform plugin" not in output.lower(), output
