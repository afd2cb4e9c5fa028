"""The sandbox as tests see it: the real ``desktop-uploader sandbox --json`` command in a subprocess."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from desktop_uploader.sandbox.info import SandboxInfo


@dataclass
class SandboxProcess:
    process: subprocess.Popen[str]
    info: SandboxInfo
    home: Path
    stderr_path: Path

    @classmethod
    def start(
        cls, home: Path, data_dir: Path | None = None, timeout: float = 120.0, env: dict[str, str] | None = None
    ) -> SandboxProcess:
        """Start it and wait for its one JSON line; ``timeout`` only bounds a start that hangs.

        ``env`` adds to (or overrides) the test's own environment, for the sandbox only.
        Its stderr goes to a file, not a pipe: nobody reads a pipe during a long session, and a
        full one would stall the sandbox. A failed start raises with what the sandbox said.
        """
        env = {**os.environ, **(env or {}), "DESKTOP_UPLOADER_HOME": str(home)}
        argv = [sys.executable, "-m", "desktop_uploader", "sandbox", "--json"]
        if data_dir is not None:
            argv += ["--data-dir", str(data_dir)]
        home.mkdir(parents=True, exist_ok=True)
        stderr_path = home / "sandbox-stderr.txt"
        with open(stderr_path, "w", encoding="utf-8") as stderr:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: lines.put(process.stdout.readline() if process.stdout else ""), daemon=True
        ).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if not line.strip():
            stop_process(process)
            said = stderr_path.read_text(encoding="utf-8", errors="replace").strip()
            raise RuntimeError(f"the sandbox did not start (exit code {process.returncode}); it said:\n{said}")
        return cls(process, SandboxInfo.from_json(line), home, stderr_path)

    def stop(self) -> int | None:
        return stop_process(self.process)


def stop_process(process: subprocess.Popen[str], grace: float = 15.0) -> int | None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()
    return process.returncode
