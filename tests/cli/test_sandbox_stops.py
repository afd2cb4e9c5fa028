"""The test storage a command started stops during its upload: said in words, not as a port refusing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from desktop_uploader.engine.limits import MiB
from desktop_uploader.paths import HOME_ENV
from tests.cli.test_cli import wait_for_parts
from tests.support.safetensors_files import write_safetensors
from tests.support.waiting import wait_until


def test_the_test_storage_stopping_mid_upload_is_said_with_what_to_do(tmp_path: Path) -> None:
    """A resume audit killed the sandbox's storage: the command said "127.0.0.1:38161 refused the connection:
    the server may be down", a port that meant nothing, where the window says the test storage stopped."""
    home = tmp_path / "home"
    env = {**os.environ, HOME_ENV: str(home), "COLUMNS": "200"}
    model = tmp_path / "stopped.safetensors"
    write_safetensors(model, 40 * MiB)
    flags = ["--chunk-size", "5MiB", "--concurrency", "2", "--bandwidth-limit", "2MiB", "--retries", "1"]
    running = subprocess.Popen(  # no server set up: the command starts the test storage for itself
        [sys.executable, "-m", "desktop_uploader", "upload", str(model), *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_parts(home, 2, running)
        weed = next(c for c in psutil.Process(running.pid).children(recursive=True) if "weed" in " ".join(c.cmdline()))
        weed.send_signal(signal.SIGKILL)  # by its pid: the storage process of this command's own sandbox
        out, err = running.communicate(timeout=300)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate(timeout=30)
    assert running.returncode == 1, err
    said = " ".join((out + err).split())
    assert (
        "The test storage on this computer stopped during the upload; run the command again to start it and go "
        "on where the upload stopped." in said
    )
    assert "Traceback" not in said
    wait_until(
        lambda: not [p for p in psutil.process_iter(["cmdline"]) if str(home) in " ".join(p.info["cmdline"] or [])],
        60,
        "the sandbox to be gone",
    )
