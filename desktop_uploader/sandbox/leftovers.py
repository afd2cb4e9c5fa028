"""What a killed sandbox leaves in the temp dir, found and removed by the next start.

A sandbox stopped normally removes its socket folder (``du-weed-*``) and weed's gRPC sockets
(``seaweedfs-*-<port>.sock``). After kill -9 or a power cut they stay, one set per start, forever.

Other sandboxes of this user (another window, another test run) may be running right now, so only
what is provably dead goes: a socket folder whose recorded weed pid is gone, and a socket file that
nobody listens on any more (connecting is refused). A folder another start has only just made (no pid
yet, no sockets) is left alone until it is an hour old. Another user's files are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

SOCKET_DIR_PREFIX = "du-weed-"
PID_FILE = "weed.pid"
_YOUNG = 3600.0  # seconds: a folder without pid or sockets may belong to a start still under way


def weed_temp_dir() -> Path:
    """Where weed puts its gRPC sockets: it runs with a clean environment, so without our TMPDIR."""
    return Path("/tmp") if os.name == "posix" else Path(tempfile.gettempdir())  # noqa: S108 - weed's own choice


def _mine(path: Path) -> bool:
    try:
        return os.name != "posix" or path.lstat().st_uid == os.getuid()
    except OSError:
        return False


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists; where that can't be asked without acting on it (Windows), it does."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) there would send CTRL_C_EVENT
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def dead_socket(path: Path) -> bool:
    """True for a Unix socket file that nothing listens on (connecting is refused)."""
    try:
        if not stat.S_ISSOCK(path.lstat().st_mode):
            return False
    except OSError:
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        return exc.errno in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        probe.close()
    return False


def _dead_folder(folder: Path, now: float) -> bool:
    pid_file = folder / PID_FILE
    with contextlib.suppress(OSError, ValueError):
        return not process_alive(int(pid_file.read_text(encoding="ascii").strip()))
    sockets = [p for p in folder.iterdir() if p.name.endswith(".sock")]
    if sockets:
        return all(dead_socket(p) for p in sockets)
    return now - folder.stat().st_mtime > _YOUNG


def sweep(temp_dir: Path | None = None, *, now: float | None = None) -> int:
    """Remove what killed sandboxes of this user left in ``temp_dir``; returns how many were removed."""
    if os.name != "posix":
        return 0  # Windows has no such sockets to leave, and removes the folder with the profile's temp
    temp_dir = temp_dir or weed_temp_dir()
    now = time.time() if now is None else now
    removed = 0
    with contextlib.suppress(OSError):
        for folder in temp_dir.glob(f"{SOCKET_DIR_PREFIX}*"):
            with contextlib.suppress(OSError):
                if folder.is_dir() and not folder.is_symlink() and _mine(folder) and _dead_folder(folder, now):
                    shutil.rmtree(folder)
                    removed += 1
        for leftover in temp_dir.glob("seaweedfs-*.sock"):
            if _mine(leftover) and dead_socket(leftover):
                with contextlib.suppress(OSError):
                    leftover.unlink()
                    removed += 1
    if removed:
        log.info("Removed %d leftovers of sandboxes that were killed", removed)
    return removed
