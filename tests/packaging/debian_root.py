"""A fresh minimal Debian, as on a user's clean machine, to install the .deb into.

The build machine has every library the bundle links (it must, to compute Depends), so installing
the package there can never show a missing ``Depends``. A root made by ``debootstrap --variant=minbase``
has only what Debian installs on every system, so ``apt-get install ./desktop-uploader_*.deb`` there
pulls in exactly what the package declares, and nothing else is around to hide a gap.

debootstrap takes minutes and downloads about 40 MB, so the bare root is kept in the user's cache dir,
keyed by suite and day (a day-old root would install an outdated ``libc6``, and a new one each day
keeps it close to what users get), and built under a lock so parallel runs build it once. Each test
session copies it and installs into the copy; downloaded packages are kept in a cache shared by the
copies, so a second run downloads nothing.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from filelock import FileLock
from platformdirs import user_cache_dir

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
CACHE = Path(user_cache_dir("desktop-uploader-test"))
DEBOOTSTRAP_BOUND = 1800  # minutes on a busy machine with a slow mirror; a bound, not a speed


def run(argv: list[str], timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]


def checked(argv: list[str], timeout: float = 600) -> str:
    done = run(argv, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done.stdout


def bare_root(suite: str = SUITE) -> Path:
    """The cached debootstrap root of today, built first if need be; older days' roots are removed."""
    with FileLock(str(lock_file(suite))):
        return _today(suite)


def lock_file(suite: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE / f"debian-{suite}.lock"


def _today(suite: str) -> Path:
    """Call with the lock held: it builds, and removes roots another run may be copying."""
    root = CACHE / f"debian-{suite}-{datetime.date.today():%Y%m%d}"
    if not (root / ".complete").is_file():
        shutil.rmtree(root, ignore_errors=True)
        checked(["debootstrap", "--variant=minbase", suite, str(root), MIRROR], timeout=DEBOOTSTRAP_BOUND)
        (root / "etc/apt/sources.list").write_text(
            f"deb {MIRROR} {suite} main\n"
            f"deb {MIRROR} {suite}-updates main\n"
            f"deb http://deb.debian.org/debian-security {suite}-security main\n"
        )
        with mounted(root):
            checked(["chroot", str(root), "apt-get", "-qq", "update"], timeout=DEBOOTSTRAP_BOUND)
        (root / ".complete").touch()
    for old in CACHE.glob(f"debian-{suite}-*"):
        if old != root and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return root


@contextmanager
def mounted(root: Path) -> Iterator[Path]:
    """/proc, /dev and the host's name resolution inside ``root``, for as long as the block runs."""
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    with ExitStack() as stack:
        for source, kind in (("proc", "proc"), ("/dev", "bind"), ("/dev/pts", "bind"), ("/dev/shm", "bind")):
            target = root / source.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            argv = (
                ["mount", "-t", "proc", "proc", str(target)]
                if kind == "proc"
                else ["mount", "--bind", source, str(target)]
            )
            checked(argv)
            stack.callback(unmount, target)
        yield root


def unmount(target: Path) -> None:
    """Unmounted even while a process still holds it: lazily, so a hung leftover cannot fail the cleanup."""
    run(["umount", "-l", str(target)], timeout=120)


@contextmanager
def fresh_root(work: Path, suite: str = SUITE) -> Iterator[Path]:
    """A private copy of today's bare root, mounted, with the shared download cache as apt's archive."""
    root = work / "root"
    with FileLock(str(lock_file(suite))):  # a run starting on the next day removes this day's root
        checked(["cp", "-a", "--reflink=auto", str(_today(suite)), str(root)], timeout=DEBOOTSTRAP_BOUND)
    archives = CACHE / f"apt-archives-{suite}"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    try:
        with mounted(root), ExitStack() as stack:
            inside = root / "var/cache/apt/archives"
            checked(["mount", "--bind", str(archives), str(inside)])
            stack.callback(unmount, inside)
            yield root
    finally:
        if not any(str(root) in line for line in Path("/proc/mounts").read_text().splitlines()):
            shutil.rmtree(root, ignore_errors=True)


def apt_install(root: Path, deb: Path, timeout: float = DEBOOTSTRAP_BOUND) -> str:
    """``apt-get install ./the.deb`` in the root, as a user would."""
    shutil.copy(deb, root / "tmp" / deb.name)
    return apt_get(root, ["install", "-y", "-q", "--no-install-recommends", f"/tmp/{deb.name}"], timeout)


def apt_get(root: Path, args: list[str], timeout: float) -> str:
    """``apt-get`` in the root, one at a time across runs: every root's archive is the one shared cache.

    apt locks that directory for itself, so a second test run's install in its own root, at the same
    moment, failed with "Could not get lock /var/cache/apt/archives/lock": the lock file waits instead."""
    with FileLock(str(CACHE / "apt-archives.lock")):
        return checked(in_root(root, ["apt-get", *args], {"DEBIAN_FRONTEND": "noninteractive"}), timeout=timeout)


def in_root(root: Path, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """``argv`` run in the root with a clean environment plus ``env``: nothing of the host's leaks in."""
    plain = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    return ["chroot", str(root), "env", "-i", *(f"{k}={v}" for k, v in {**plain, **(env or {})}.items()), *argv]


def host_path(root: Path, inside: str) -> Path:
    return root / inside.lstrip("/")
