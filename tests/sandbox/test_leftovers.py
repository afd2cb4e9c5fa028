"""A killed sandbox's leftovers in the temp dir go at the next start; a live sandbox's never do."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_uploader.sandbox import leftovers
from desktop_uploader.sandbox.info import RUNTIME_FILE, SandboxInfo
from desktop_uploader.sandbox.runtime import Sandbox

pytestmark = pytest.mark.skipif(os.name != "posix", reason="Unix sockets and pids")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def stale_socket(path: Path) -> Path:
    """A socket file whose listener is gone, as kill -9 leaves it."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    return path


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def live_socket(path: Path, opened: list[socket.socket]) -> Path:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen()
    opened.append(sock)
    return path


def test_only_what_is_provably_dead_is_removed(tmp_path: Path, listening: list[socket.socket]) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    killed = temp / "du-weed-killed"
    killed.mkdir()
    (killed / leftovers.PID_FILE).write_text(str(dead_pid()))
    stale_socket(killed / "s3.sock")
    running = temp / "du-weed-running"
    running.mkdir()
    (running / leftovers.PID_FILE).write_text(str(os.getpid()))
    old_style = temp / "du-weed-oldstyle"  # from before pid files: judged by its sockets
    old_style.mkdir()
    stale_socket(old_style / "filer.sock")
    old_live = temp / "du-weed-oldlive"
    old_live.mkdir()
    live_socket(old_live / "filer.sock", listening)
    starting = temp / "du-weed-starting"  # another start made it a moment ago: no pid, no sockets yet
    starting.mkdir()
    grpc_dead = stale_socket(temp / "seaweedfs-volume-40001.sock")
    grpc_live = live_socket(temp / "seaweedfs-master-40002.sock", listening)
    unrelated = stale_socket(temp / "other-app.sock")

    assert leftovers.sweep(temp) == 3
    assert sorted(p.name for p in temp.iterdir()) == sorted(
        ["du-weed-running", "du-weed-oldlive", "du-weed-starting", grpc_live.name, unrelated.name]
    )
    assert not grpc_dead.exists()

    # An empty folder is a start still under way for an hour, then a leftover.
    mtime = starting.stat().st_mtime
    assert leftovers.sweep(temp, now=mtime + 60) == 0
    assert leftovers.sweep(temp, now=mtime + 2 * 3600) == 1 and not starting.exists()


def test_a_start_after_a_kill_removes_the_killed_sandboxs_leftovers(tmp_path: Path) -> None:
    data_dir = tmp_path / "sandbox"
    data_dir.mkdir(mode=0o755)
    temp = leftovers.weed_temp_dir()
    killed = Path(os.fsdecode(temp / f"du-weed-test-{os.getpid()}-killed"))
    killed.mkdir()
    (killed / leftovers.PID_FILE).write_text(str(dead_pid()))
    stale_socket(killed / "s3.sock")
    grpc = stale_socket(temp / f"seaweedfs-filer-{os.getpid()}9.sock")
    dead = SandboxInfo("http://127.0.0.1:9", "t", "http://127.0.0.1:9", "b", "a", "s", str(data_dir))
    (data_dir / RUNTIME_FILE).write_text(dead.to_json())
    try:
        with Sandbox(data_dir) as info:
            assert not killed.exists() and not grpc.exists()
            assert SandboxInfo.from_json((data_dir / RUNTIME_FILE).read_text()).api_url == info.api_url
            mine = [p for p in temp.glob("du-weed-*") if (p / leftovers.PID_FILE).is_file()]
            assert mine, "the running sandbox's folder records its weed's pid"
            assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700, "the store and its credentials are private"
    finally:
        grpc.unlink(missing_ok=True)
        if killed.exists():
            for child in killed.iterdir():
                child.unlink()
            killed.rmdir()
