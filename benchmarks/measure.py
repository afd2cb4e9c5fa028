"""Running one contender: a child process timed by the wall clock, with its CPU and peak RSS from ``wait4``.

Every contender is started by a tiny launcher (see launch.py) with no shell in between, so the
kernel's rusage of the child is the contender's own: user + system CPU of all its threads, and its
peak resident set. A run that exceeds its time bound is killed with its whole process group and
recorded as timed out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAUNCHER = Path(__file__).with_name("launch.py")
GiB = 1 << 30
MiB = 1 << 20


@dataclass
class RunResult:
    returncode: int | None
    wall: float
    cpu: float
    max_rss: int  # bytes
    stdout: str
    stderr: str
    timed_out: bool = False
    started: float = 0.0  # time.monotonic() at spawn
    ended: float = 0.0


@dataclass
class Sample:
    scenario: str  # "sink", "seaweedfs", "wan-clean-cubic", "memory", ...
    contender: str
    round: int
    size: int
    ok: bool
    wall: float
    cpu: float
    max_rss: int
    mbps: float  # 10^6 bytes per second, end to end (process start to exit)
    cpu_per_gib: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def run_measured(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600.0,
    on_tick: Callable[[float], bool] | None = None,
    prefix: Sequence[str] = (),
) -> RunResult:
    """Run ``argv`` to completion (or ``timeout``); ``on_tick(elapsed)`` returning True stops it early."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-out-{os.getpid()}-{time.monotonic_ns()}"
    err_path = out_path.with_suffix(".err")
    usage_path = out_path.with_suffix(".usage")
    program = shutil.which(argv[0], path=(env or os.environ).get("PATH")) or argv[0]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(
            [*prefix, sys.executable, "-S", "-I", str(LAUNCHER), str(usage_path), program, *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        timed_out = False
        status = 0
        usage: Any = None
        try:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                elapsed = time.monotonic() - started
                stop = elapsed > timeout or (on_tick is not None and on_tick(elapsed))
                if stop:
                    timed_out = elapsed > timeout
                    _kill_group(process.pid, signal.SIGINT)
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                        if pid:
                            break
                        time.sleep(0.05)
                    else:
                        _kill_group(process.pid, signal.SIGKILL)
                        _, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.01)
        except BaseException:  # interrupted: leave no contender running, nor its files behind
            _kill_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.wait4(process.pid, 0)
            for leftover in (out_path, err_path, usage_path):
                leftover.unlink(missing_ok=True)
            raise
        ended = time.monotonic()
        process.returncode = os.waitstatus_to_exitcode(status)
    _kill_group(process.pid, signal.SIGKILL)  # stragglers the contender left behind
    own: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        own = json.loads(usage_path.read_text())
    usage_path.unlink(missing_ok=True)
    if own:  # the contender's own figures; without them (killed launcher) the launcher's, as a bound
        process.returncode = own["returncode"]
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    return RunResult(
        returncode=process.returncode,
        wall=ended - started,
        cpu=own.get("cpu", usage.ru_utime + usage.ru_stime),
        max_rss=own.get("max_rss", usage.ru_maxrss * 1024),
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        started=started,
        ended=ended,
    )


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def model_header(size: int) -> bytes:
    """The start of a whole ``size``-byte .safetensors file: its length prefix and a JSON header naming one
    tensor that fills the rest. The benchmark's files are random bytes; with a real model's header,
    ours checks it as it would a user's model instead of warning that it "looks damaged" (a warning
    that loaded rich, ~35 ms of every 64 MiB run, which no real model pays)."""
    for pad in range(8):
        body = json.dumps({"weight": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}, separators=(",", ":"))
        for _ in range(3):  # the tensor's length depends on the header's, which depends on the digits
            header = (body + " " * pad).encode()
            data = size - 8 - len(header)
            body = json.dumps(
                {"weight": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}, separators=(",", ":")
            )
        header = (body + " " * pad).encode()
        if len(header) % 8 == 0 and 8 + len(header) + data == size:
            return len(header).to_bytes(8, "little") + header
    raise ValueError(f"no header fits {size} bytes")


def make_file(path: Path, size: int, seed: int = 1) -> Path:
    """An incompressible file of ``size`` bytes (a 64 MiB random pattern, each MiB stamped with its index);
    a ``.safetensors`` one starts with a whole model's header."""
    header = model_header(size) if path.suffix == ".safetensors" else b""
    if path.exists() and path.stat().st_size == size:
        with open(path, "rb") as handle:
            if handle.read(len(header)) == header:
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    pattern = bytearray(os.urandom(64 * MiB))
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as handle:
        written = 0
        index = 0
        while written < size:
            block = min(MiB, size - written)
            offset = (index % 64) * MiB
            stamp = (index * 2654435761 + seed).to_bytes(8, "little")
            pattern[offset : offset + 8] = stamp
            handle.write(memoryview(pattern)[offset : offset + block])
            written += block
            index += 1
        handle.seek(0)
        handle.write(header)
    tmp.rename(path)
    return path


def warm(path: Path) -> None:
    """Read the file once so every contender finds it in the page cache."""
    with open(path, "rb") as handle:
        while handle.read(16 * MiB):
            pass


def payload_size(path: Path) -> int:
    """Bytes a contender sends for ``path``: the file's size, or the sum of a folder's files."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def make_folder(directory: Path, count: int, size: int) -> Path:
    """A folder of ``count`` distinct incompressible model files of ``size`` bytes each (kept between runs)."""
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(1, count + 1):
        make_file(directory / f"model-{index:02d}.safetensors", size, seed=index)
    return directory


def warm_all(path: Path) -> None:
    """``warm`` for a file or every file of a folder."""
    for item in sorted(path.iterdir()) if path.is_dir() else [path]:
        if item.is_file():
            warm(item)
