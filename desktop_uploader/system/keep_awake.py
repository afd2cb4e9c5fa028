"""Keep the computer from sleeping while uploads run, where the platform allows it.

A sleeping laptop drops every connection, and some uploads never recover from that (Uppy #3783).
Linux: ``systemd-inhibit`` holds a sleep/idle lock for as long as its child lives. macOS:
``caffeinate -i -w <our pid>`` does the same and dies with us. Windows: ``SetThreadExecutionState``.
Elsewhere, or when the tool is missing, this is a no-op with one log line.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

_ES_CONTINUOUS = 0x80000000
_ES_SYSTEM_REQUIRED = 0x00000001


def inhibit_command(
    platform: str, pid: int, reason: str, which: Callable[[str], str | None] = shutil.which
) -> list[str] | None:
    """The helper process that keeps the system awake on ``platform``, or None where there is none."""
    if platform.startswith("linux") and which("systemd-inhibit"):
        return [
            "systemd-inhibit",
            "--what=sleep:idle",
            "--who=Desktop Uploader",
            f"--why={reason}",
            "--mode=block",
            "sleep",
            "infinity",
        ]
    if platform == "darwin" and which("caffeinate"):
        return ["caffeinate", "-i", "-w", str(pid)]
    return None


class KeepAwake:
    def __init__(
        self, platform: str = sys.platform, command: Callable[[str, int, str], list[str] | None] | None = None
    ) -> None:
        self.platform = platform
        self.command = command or inhibit_command
        self._process: subprocess.Popen[bytes] | None = None
        self._windows_held = False
        self._warned = False
        self.unavailable = False  # the inhibitor exists but died (no session bus, say): don't respawn it

    @property
    def why_not(self) -> str:
        """Why keeping awake can't work here, in a sentence for the settings; "" when it can (or may)."""
        if self.platform == "win32":
            return ""
        if self.unavailable:
            return "This system refuses to let apps keep it awake (no session manager answered)."
        if self.command(self.platform, os.getpid(), "probe") is None:
            return "This system has no way for apps to keep it awake."
        return ""

    def probe(self) -> None:
        """Ask the inhibitor once, briefly, so the settings can say up front that it won't work.

        Blocking (a subprocess): call it off the GUI thread. Only a command that holds by running a
        child (systemd-inhibit) can be asked with a child that ends at once; others are taken on trust.
        """
        command = self.command(self.platform, os.getpid(), "Checking that the computer can be kept awake")
        if command is None or command[-2:] != ["sleep", "infinity"]:
            return
        trial = [*command[:-2], "true"]
        try:
            done = subprocess.run(trial, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.info("Can't keep the computer awake: %s", exc)
            self.unavailable = True
            return
        if done.returncode != 0:
            log.info("Can't keep the computer awake: %s exited with %s", trial[0], done.returncode)
            self.unavailable = True

    @property
    def holding(self) -> bool:
        return self._windows_held or (self._process is not None and self._process.poll() is None)

    def hold(self, reason: str = "Uploading files") -> bool:
        if self.holding:
            return True
        if self.platform == "win32":
            with contextlib.suppress(AttributeError, OSError):
                ctypes.windll.kernel32.SetThreadExecutionState(_ES_CONTINUOUS | _ES_SYSTEM_REQUIRED)  # type: ignore[attr-defined]
                self._windows_held = True
                return True
        if self._process is not None and self._process.poll() not in (None, 0):
            # It started and died: asking again on every progress update would fork in a loop.
            log.info("Can't keep the computer awake: %s exited with %s", self._process.args, self._process.returncode)
            self._process = None
            self.unavailable = True
        if self.unavailable:
            return False
        command = self.command(self.platform, os.getpid(), reason)
        if command is None:
            if not self._warned:
                log.info("Can't keep the computer awake here: no inhibitor available")
                self._warned = True
            return False
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        except OSError as exc:
            log.info("Can't keep the computer awake: %s", exc)
            return False
        return True

    def release(self) -> None:
        if self._windows_held:
            with contextlib.suppress(AttributeError, OSError):
                ctypes.windll.kernel32.SetThreadExecutionState(_ES_CONTINUOUS)  # type: ignore[attr-defined]
            self._windows_held = False
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(2)
