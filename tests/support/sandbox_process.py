"""The sandbox as tests see it: the real ``desktop-uploader sandbox --json`` command in a subprocess."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from desktop_uploader.sandbox.info import SandboxInfo


@dataclass
class SandboxProcess:
    process: subprocess.Popen[str]
    info: SandboxInfo
    home: Path
    startup_seconds: float

    @classmethod
    def start(cls, home: Path, data_dir: Path | None = None, timeout: float = 30.0) -> SandboxProcess:
        env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(home)}
        argv = [sys.executable, "-m", "desktop_uploader", "sandbox", "--json"]
        if data_dir is not None:
            argv += ["--data-dir", str(data_dir)]
        began = time.monotonic()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: lines.put(process.stdout.readline() if process.stdout else ""), daemon=True
        ).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            stop_process(process)
            raise RuntimeError("the sandbox printed nothing within the timeout") from None
        if not line.strip():
            stop_process(process)
            raise RuntimeError(f"the sandbox failed to start: {process.stderr.read() if process.stderr else ''}")
        return cls(process, SandboxInfo.from_json(line), home, time.monotonic() - began)

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
