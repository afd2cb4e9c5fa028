"""``desktop-uploader sandbox --empty``: the test uploads deleted, never from under a running sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from desktop_uploader.connection import launch_sandbox
from desktop_uploader.engine.limits import MiB
from desktop_uploader.paths import HOME_ENV, resolve_paths
from desktop_uploader.sandbox.storage_use import IN_USE
from tests.support.storage import s3_client

KEY = "loras/tried.safetensors"


def empty(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "desktop_uploader", "sandbox", "--empty"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_the_command_empties_a_stopped_sandbox_and_refuses_a_running_one(tmp_path: Path) -> None:
    env = {**os.environ, HOME_ENV: str(tmp_path / "home"), "COLUMNS": "200"}
    paths = resolve_paths(env).ensure()
    running = launch_sandbox(paths)
    try:
        s3_client(running.info).put_object(Bucket=running.info.bucket, Key=KEY, Body=os.urandom(3 * MiB))
        refused = empty(env)
        assert refused.returncode == 1
        assert refused.stderr.strip() == f"desktop-uploader: {IN_USE}"
        assert s3_client(running.info).head_object(Bucket=running.info.bucket, Key=KEY)["ContentLength"] == 3 * MiB
    finally:
        running.stop()

    emptied = empty(env)
    assert emptied.returncode == 0, emptied.stderr
    assert emptied.stdout.startswith(f"Emptied the test storage in {paths.sandbox_dir}: 3.")
    assert emptied.stdout.strip().endswith("MiB freed.")
    again = launch_sandbox(paths)
    try:
        listed = s3_client(again.info).list_objects_v2(Bucket=again.info.bucket)
        assert listed.get("KeyCount", 0) == 0, "the new store is empty"
    finally:
        again.stop()
