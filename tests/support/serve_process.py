"""``desktop-uploader serve`` as its own process over the sandbox's SeaweedFS, for what a thread can't show.

A test that measures the server (its RSS, its open files) needs it in another process. Settings go
in as ``UPLOAD_API_*`` environment variables, the way an operator would set them; the server binds
``--port 0`` and the test learns the port from the line ``serve`` logs, then waits for ``/healthz``.
Stopped by its pid: SIGINT (uvicorn's graceful stop), then SIGKILL if it outlives a bound.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.api_servers import SECOND_USER, SECOND_USER_TOKEN
from tests.support.waiting import SLACK, wait_until

_SERVING = re.compile(r"Serving the upload API on (http://[\d.]+:\d+)")


@dataclass(frozen=True)
class ServeProcess:
    url: str
    pid: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _listening_url(process: subprocess.Popen[bytes], log: Path) -> str | None:
    if process.poll() is not None:
        raise AssertionError(f"serve exited with {process.returncode}:\n{log.read_text(errors='replace')}")
    found = _SERVING.search(log.read_text(encoding="utf-8", errors="replace"))
    return found.group(1) if found else None


@contextmanager
def serve_process(info: SandboxInfo, workdir: Path, **settings: Any) -> Iterator[ServeProcess]:
    """Run ``desktop-uploader serve`` with ``settings`` (ServerConfig names) until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = workdir / "tokens.json"
    tokens.write_text(json.dumps({info.token: "sandbox-user", SECOND_USER_TOKEN: SECOND_USER}), encoding="utf-8")
    configured = {
        "bucket": info.bucket,
        "s3_endpoint": info.s3_endpoint,
        "s3_access_key": info.access_key,
        "s3_secret_key": info.secret_key,
        "tokens_file": tokens,
        "spool_dir": workdir / "spool",
        "cleanup_interval_seconds": 0,
        **settings,
    }
    env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(workdir / "home")}
    env.update({f"UPLOAD_API_{name.upper()}": str(value) for name, value in configured.items()})
    log = workdir / "serve.log"
    with open(log, "wb") as output:  # a file, not a pipe: a chatty server never blocks on a full pipe
        process = subprocess.Popen(
            [sys.executable, "-m", "desktop_uploader", "serve", "--host", "127.0.0.1", "--port", "0"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        bound: list[str] = []

        def listening() -> bool:
            url = _listening_url(process, log)
            if url:
                bound.append(url)
            return bool(url)

        wait_until(listening, 30, "serve to say where it listens")
        url = bound[0]
        wait_until(lambda: requests.get(url + "/healthz", timeout=5).ok, 30, "/healthz", errors_mean_not_yet=True)
        yield ServeProcess(url, process.pid, log)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=15 * SLACK)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=15 * SLACK)
