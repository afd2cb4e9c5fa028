"""Build the installer, install it on a clean Debian as a user would, and check the installed app works.

The package goes into a fresh minimal Debian 12 (debootstrap, see debian_root.py) with
``apt-get install ./desktop-uploader_*.deb``: only what its Depends pull in is there, so a library the
package forgot to declare shows as "not found" here, as it would on a user's machine. The app runs in
that root (chroot) against displays served from outside it: Xvfb for X11 and weston's headless backend
for Wayland.

Slow (the build takes 3 to 10 minutes, the first debootstrap of the day a few more), and it needs root,
debootstrap, Xvfb and weston, so it skips itself elsewhere; .ci/run installs them and runs it as root.
DESKTOP_UPLOADER_DEB=path/to/the.deb tests a package built before instead of building one.
DESKTOP_UPLOADER_SCREENSHOTS=folder keeps the screenshot of the installed app's X11 window.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.packaging.debian_root import apt_get, apt_install, checked, fresh_root, in_root, run
from tests.support.safetensors_files import write_safetensors
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
# Bounds, not speeds: the build alone takes about 3 minutes on a quiet 2-core machine and over 10 on a busy one.
pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(5400)]
BUILD_BOUND = 2400
TOOLS = ("debootstrap", "chroot", "dpkg-deb", "Xvfb", "xdotool", "import", "weston", "lintian", "objdump")
APP = "/opt/desktop-uploader"
GLIBC = re.compile(r"\bGLIBC_(\d+(?:\.\d+)+)\b")


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        pytest.skip(
            f"installing into a fresh Debian needs root and {', '.join(missing) or 'debootstrap'} (.ci/run has them)"
        )
    if os.environ.get("DESKTOP_UPLOADER_DEB"):
        return Path(os.environ["DESKTOP_UPLOADER_DEB"]).resolve()
    out = tmp_path_factory.mktemp("dist")
    began = time.monotonic()
    built = run([sys.executable, "packaging/build.py", "--out", str(out)], timeout=BUILD_BOUND, cwd=ROOT)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    print(
        f"\nbuilt in {time.monotonic() - began:.0f} s: "
        + " | ".join(line for line in built.stdout.splitlines() if line.startswith(("bundle:", "deb:")))
    )
    return next(out.glob("desktop-uploader_*_amd64.deb"))


@pytest.fixture(scope="module")
def root(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh minimal Debian with the package installed by apt, and nothing else added."""
    with fresh_root(tmp_path_factory.mktemp("debian")) as system:
        began = time.monotonic()
        apt_install(system, deb)
        print(f"\ninstalled with apt into a fresh Debian in {time.monotonic() - began:.0f} s")
        yield system


def inside(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def launch(root: Path, argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(in_root(root, argv, env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(app: subprocess.Popen[str]) -> str:
    if app.poll() is None:
        app.terminate()
    return app.communicate(timeout=60)[0]


def test_the_package_is_under_150_mb_and_lintian_finds_no_errors(root: Path, deb: Path) -> None:
    kib = int(checked(in_root(root, ["dpkg-query", "-W", "-f=${Installed-Size}", "desktop-uploader"])))
    app = inside(root, APP)
    on_disk = sum(f.lstat().st_size for f in app.rglob("*") if f.is_symlink() or f.is_file())
    weed = sum(f.stat().st_size for f in app.rglob("weed.xz"))
    print(
        f"\ninstalled size: {kib / 1024:.1f} MiB ({kib * 1024 / 1e6:.1f} MB; {on_disk / 1e6:.1f} MB in {APP}, of "
        f"which {weed / 1e6:.1f} MB is the sandbox's compressed storage server); "
        f"download {deb.stat().st_size / 1e6:.1f} MB"
    )
    assert kib * 1024 <= 150 * 1000 * 1000, f"installed size {kib} KiB: over the 150 MB goal"
    assert "desktop-uploader" not in run(in_root(root, ["dpkg", "-S", "/opt"])).stdout, "the package must not own /opt"
    for path in (
        "/usr/bin/desktop-uploader",
        "/usr/share/applications/desktop-uploader.desktop",
        "/usr/share/icons/hicolor/256x256/apps/desktop-uploader.png",
        "/usr/share/icons/hicolor/scalable/apps/desktop-uploader.svg",
        "/usr/share/doc/desktop-uploader/copyright",
        "/usr/share/doc/desktop-uploader/changelog.gz",
    ):
        assert inside(root, path).is_file(), path
    linted = run(["lintian", "--no-tag-display-limit", str(deb)], timeout=1800)
    print(f"lintian:\n{linted.stdout}")
    errors = [line for line in linted.stdout.splitlines() if line.startswith("E:")]
    assert not errors, "\n".join(errors)


def bundled_elfs(app: Path) -> list[Path]:
    def is_elf(path: Path) -> bool:
        if path.is_symlink() or not path.is_file():
            return False
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"

    return [path for path in app.rglob("*") if is_elf(path)]


def test_every_bundled_library_finds_what_it_links_on_a_clean_system(root: Path, deb: Path) -> None:
    depends = [word.strip() for word in checked(["dpkg-deb", "-f", str(deb), "Depends"]).split(",")]
    names = {entry.split(" ")[0] for entry in depends}
    assert {"libwayland-cursor0", "libwayland-egl1", "libwayland-client0", "libxcb1"} <= names, depends
    elfs = bundled_elfs(inside(root, APP))
    assert len(elfs) > 50
    newest = max(
        tuple(int(part) for part in version.split("."))
        for elf in elfs
        for version in GLIBC.findall(run(["objdump", "-T", str(elf)]).stdout)
    )
    assert f"libc6 (>= {'.'.join(map(str, newest))})" in depends, depends
    # As the app's launcher runs them: the bundle's own folder first on the library path.
    missing: dict[str, list[str]] = {}
    for elf in elfs:
        path = "/" + str(elf.relative_to(root))
        linked = run(in_root(root, ["ldd", path], {"LD_LIBRARY_PATH": f"{APP}/_internal"})).stdout
        lost = [line.strip() for line in linked.splitlines() if "not found" in line]
        if lost:
            missing[path] = lost
    print(f"\nldd: {len(elfs)} bundled ELF files, {len(missing)} with a library not found")
    assert not missing, missing


def test_the_desktop_entry_is_valid_and_registers_safetensors_files(root: Path) -> None:
    entry = inside(root, "/usr/share/applications/desktop-uploader.desktop")
    if shutil.which("desktop-file-validate"):
        validated = run(["desktop-file-validate", str(entry)])
        assert validated.returncode == 0 and not validated.stdout.strip(), validated.stdout + validated.stderr
    text = entry.read_text()
    assert "MimeType=application/x-safetensors;" in text and "octet-stream" not in text
    assert "Categories=Network;FileTransfer;\n" in text
    assert inside(root, "/usr/share/mime/packages/desktop-uploader.xml").is_file()
    # A desktop has shared-mime-info; installing it runs its trigger over every package's types.
    apt_get(root, ["install", "-y", "-q", "--no-install-recommends", "shared-mime-info"], 1800)
    assert "application/x-safetensors:*.safetensors" in inside(root, "/usr/share/mime/globs2").read_text()


def exec_line(root: Path, files: list[str]) -> list[str]:
    """The command a desktop runs for "Open with Desktop Uploader": the entry's Exec with %F expanded."""
    entry = inside(root, "/usr/share/applications/desktop-uploader.desktop").read_text()
    command = next(line.split("=", 1)[1] for line in entry.splitlines() if line.startswith("Exec="))
    argv: list[str] = []
    for word in shlex.split(command):
        argv.extend(files if word == "%F" else [word])
    return argv


def test_opening_files_through_the_desktop_entry_queues_them_in_a_new_or_the_running_window(root: Path) -> None:
    for name in ("given.safetensors", "later.safetensors"):
        # Whole models: a cut-short one is asked about before it is queued, however it was opened.
        write_safetensors(inside(root, f"/tmp/{name}"), 4096)
    env = {"DESKTOP_UPLOADER_HOME": "/tmp/home-open", "QT_QPA_PLATFORM": "offscreen"}
    log = inside(root, "/tmp/home-open/logs/desktop-uploader.log")
    first = launch(root, exec_line(root, ["/tmp/given.safetensors"]), env)
    try:
        wait_until(
            lambda: (
                first.poll() is not None or (log.is_file() and "Opened with 1 file(s): 1 queued" in log.read_text())
            ),
            90,
            "the app to queue the file it was opened with",
        )
        assert first.poll() is None, stop(first)
        second = run(in_root(root, exec_line(root, ["/tmp/later.safetensors"]), env), timeout=300)
        assert second.returncode == 0, second.stdout + second.stderr
        # Counted, not looked for after the second launch's "Handed" line: the window may queue the
        # file and log it before the launch that handed it over writes that line to the same log.
        wait_until(
            lambda: log.read_text().count("Opened with 1 file(s): 1 queued") == 2,
            90,
            "the running window to queue the file of a second launch",
        )
        assert "Handed 1 file(s) to the window already open" in log.read_text()
        assert first.poll() is None
    finally:
        output = stop(first)
    assert "Traceback" not in output, output


def test_the_installed_app_reports_its_version_and_passes_its_self_test(root: Path) -> None:
    env = {"DESKTOP_UPLOADER_HOME": "/tmp/home-self-test", "QT_QPA_PLATFORM": "offscreen"}
    assert checked(in_root(root, ["desktop-uploader", "--version"], env)).strip().startswith("desktop-uploader 0.")
    began = time.monotonic()
    tested = run(in_root(root, ["desktop-uploader", "--self-test"], env), timeout=900)
    print(f"\nself-test of the installed app ({time.monotonic() - began:.1f} s):\n{tested.stdout}")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "PASSED: the stored object is byte-identical to the file" in tested.stdout


@contextmanager
def xvfb() -> Iterator[str]:
    """A virtual screen, yielded once it takes clients: Xvfb writes its display number to ``-displayfd``
    when it is ready, and picks a free one itself, so no guessed number collides and nothing sleeps.
    The app in the root reaches it through Linux's abstract socket, which a chroot does not hide."""
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
        server.wait(30)


def colours_in(window: str, env: dict[str, str]) -> int:
    """How many distinct colours the window shows: a blank or half-drawn window has a handful."""
    shown = run(["import", "-window", window, "-format", "%k", "info:"], env=env, timeout=120)
    return int(shown.stdout.strip() or 0) if shown.returncode == 0 else 0


def test_the_installed_app_opens_a_real_window_under_x11(root: Path, tmp_path: Path) -> None:
    shots = Path(os.environ.get("DESKTOP_UPLOADER_SCREENSHOTS", tmp_path))
    with xvfb() as display:
        env = {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "DESKTOP_UPLOADER_HOME": "/tmp/home-x11"}
        app = launch(root, ["desktop-uploader"], env)
        try:
            host = {**os.environ, "DISPLAY": display}
            found = run(
                ["xdotool", "search", "--sync", "--onlyvisible", "--name", "^Desktop Uploader"], env=host, timeout=240
            )
            assert found.returncode == 0 and found.stdout.strip(), "no window appeared"
            window = found.stdout.split()[0]
            wait_until(lambda: colours_in(window, host) > 50, 60, "the window to paint its text and icons")
            target = shots / "installed-app-xvfb.png"
            shots.mkdir(parents=True, exist_ok=True)
            assert run(["import", "-window", "root", str(target)], env=host).returncode == 0
            assert target.stat().st_size > 10_000
        finally:
            output = stop(app)
    assert "could not load the qt platform plugin" not in output.lower(), output


@contextmanager
def weston(runtime: Path) -> Iterator[str]:
    """A headless Wayland compositor (no X, no XWayland), yielded once its socket is there.

    Its runtime folder is inside the root, so the app in the root finds the socket at the same name."""
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    socket = "wayland-desktop-uploader-test"
    with open(runtime.parent / "weston.log", "w") as log:
        server = subprocess.Popen(
            ["weston", "--backend=headless-backend.so", f"--socket={socket}", "--idle-time=0", "--no-config"],
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: server.poll() is not None or (runtime / socket).exists(), 60, "weston's socket")
        assert server.poll() is None, (runtime.parent / "weston.log").read_text()
        yield socket
    finally:
        server.terminate()
        server.wait(30)


# WAYLAND_DEBUG's trace of the client: the window got its title, a buffer with its pixels, and showed it.
TITLED = re.compile(r"xdg_toplevel@\d+\.set_title\(\"Desktop Uploader")
ATTACHED = re.compile(r"wl_surface@\d+\.attach\(wl_buffer@\d+")


def test_the_installed_app_opens_a_real_window_under_wayland(root: Path) -> None:
    runtime = inside(root, "/run/wayland-test/runtime")
    with weston(runtime) as socket:
        env = {
            "QT_QPA_PLATFORM": "wayland",
            "WAYLAND_DISPLAY": socket,
            "XDG_RUNTIME_DIR": "/run/wayland-test/runtime",
            "WAYLAND_DEBUG": "client",
            "DESKTOP_UPLOADER_HOME": "/tmp/home-wayland",
        }
        trace = inside(root, "/run/wayland-test/app.log")
        with open(trace, "w") as out:
            app = subprocess.Popen(in_root(root, ["desktop-uploader"], env), stdout=out, stderr=subprocess.STDOUT)
        try:

            def shown() -> bool:
                text = trace.read_text(errors="replace")
                titled = TITLED.search(text)
                return app.poll() is not None or bool(titled and ATTACHED.search(text, titled.end()))

            wait_until(shown, 120, "the window to appear on the Wayland compositor")
            assert app.poll() is None, f"exit code {app.returncode}:\n{trace.read_text(errors='replace')[-5000:]}"
        finally:
            if app.poll() is None:
                app.terminate()
            app.wait(60)
    output = trace.read_text(errors="replace")
    assert "could not load the qt platform plugin" not in output.lower(), output[-5000:]


def test_removal_leaves_opt_and_says_what_each_user_keeps(root: Path) -> None:
    """Last in this file: it purges the package the tests above use. Purging an installed package removes it
    first, and the note was said twice (an installed-app audit)."""
    removed = apt_get(root, ["purge", "-y", "-q", "desktop-uploader"], 600)
    assert removed.count("Each user's own files stay in their home folder") == 1, removed
    assert "credentials.json in the settings folder" in removed
    assert "~/.cache/desktop-uploader" in removed and "~/.config/desktop-uploader" in removed
    assert inside(root, "/opt").is_dir() and not inside(root, APP).exists()
