"""Start the local sandbox as a subprocess of this app, or join the one already running, and leave it
to whoever still uses it.

The sandbox (``desktop-uploader sandbox --json``) is started in a session of its own, so a Ctrl-C in
the terminal of the command that started it doesn't stop it under another command using it; its
starter stops it on the way out only if nobody else holds a lease on it (users.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import filelock

from desktop_uploader.sandbox.info import START_FAILED, SandboxInfo, running_sandbox
from desktop_uploader.sandbox.leftovers import process_alive
from desktop_uploader.sandbox.users import Lease, in_use, join, start_lock

log = logging.getLogger(__name__)

START_SECONDS = 45.0


class SandboxStartError(Exception):
    """The sandbox did not start; the message says why, in words."""


def self_command() -> list[str]:
    """How to run this app again as a subprocess, installed or frozen by PyInstaller."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "desktop_uploader"]


@dataclass
class SandboxHandle:
    info: SandboxInfo
    process: subprocess.Popen[str] | None  # None: someone else's sandbox, not ours to stop
    lease: Lease | None = None

    def stopped(self) -> bool:
        """Whether the sandbox has exited (killed, crashed, or its terminal's Ctrl-C): it is started again on
        the next try. Someone else's is asked by its pid: a window on a sandbox that a ``desktop-uploader
        sandbox`` in a terminal ran kept failing with "refused the connection" once that was stopped."""
        if self.process is not None:
            return self.process.poll() is not None
        return self.info.pid > 0 and not process_alive(self.info.pid)

    def stop(self, grace: float = 10.0) -> None:
        """Done with it: stopped if we started it and nobody else uses it; else it goes on for them."""
        process, self.process = self.process, None
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release()
            if process is not None and process.poll() is None and in_use(lease.users_dir.parent):
                log.info("The local sandbox goes on for another window or command using it")
                _close_streams(process)
                return
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            process.send_signal(signal.SIGINT if os.name != "nt" else signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        _close_streams(process)


def _close_streams(process: subprocess.Popen[str]) -> None:
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def launch(data_dir: Path, log_file: Path, timeout: float = START_SECONDS) -> SandboxHandle:
    """The sandbox running on ``data_dir`` (the user's, or another window's or command's), or a new one."""
    lease = join(data_dir)
    try:
        starting = start_lock(data_dir, timeout + 15)
    except filelock.Timeout:
        if lease is not None:
            lease.release()
        raise SandboxStartError(
            "The local sandbox is still being started by another Desktop Uploader; try again in a moment."
        ) from None
    try:
        existing = running_sandbox(data_dir)
        if existing is not None:
            return SandboxHandle(existing, None, lease)
        return _start(data_dir, log_file, timeout, lease)
    except BaseException:
        if lease is not None:
            lease.release()
        raise
    finally:
        if starting is not None:
            starting.release()


def _start(data_dir: Path, log_file: Path, timeout: float, lease: Lease | None) -> SandboxHandle:
    kwargs: dict[str, object] = {}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        kwargs["start_new_session"] = True  # the terminal's Ctrl-C is for our command, not for a shared sandbox
    process = subprocess.Popen(  # type: ignore[call-overload]
        [*self_command(), "sandbox", "--json", "--data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        line = None  # still starting after the bound: stopped, with nothing to say
    if line is None or not _describes_a_sandbox(line):
        said = ""
        with contextlib.suppress(subprocess.TimeoutExpired):
            if line is not None:  # it closed its output, or said why as JSON, on its way out: stderr has it too
                process.wait(5)
                said = process.stderr.read()
        SandboxHandle(SandboxInfo("", "", "", "", "", "", ""), process).stop()
        raise start_failure(said, log_file)
    return SandboxHandle(SandboxInfo.from_json(line), process, lease)


def start_failure(said: str, log_file: Path) -> SandboxStartError:
    """The sandbox's own reason, on one line, after one "could not start"; anything else (a traceback from a
    broken install, or silence) goes to the log, and the person is told where it is."""
    said = " ".join(said.split())  # the terminal's line breaks showed as "\n" in a CLI audit
    if said.startswith(START_FAILED):
        return SandboxStartError(
            f"The test storage on this computer could not start: {said.removeprefix(START_FAILED)}"
        )
    log.warning("The sandbox stopped before it started; it said: %s", said or "nothing")
    return SandboxStartError(f"The test storage on this computer could not start. Details are in {log_file}")


def _describes_a_sandbox(line: str) -> bool:
    """Whether ``sandbox --json`` printed its details, rather than nothing or ``{"error": …}`` (a start
    that failed answers a script on stdout as well; the sentence for people is the one on stderr)."""
    try:
        return "api_url" in json.loads(line)
    except (ValueError, TypeError):
        return False
