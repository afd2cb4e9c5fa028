"""Two commands on the default sandbox share it: it goes on until the last one is done, then ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import psutil

from desktop_uploader.connection import launch_sandbox
from desktop_uploader.engine.limits import MiB
from desktop_uploader.paths import HOME_ENV, resolve_paths
from desktop_uploader.sandbox.users import USERS_DIR
from tests.support.safetensors_files import write_safetensors
from tests.support.sandbox_process import stop_process
from tests.support.storage import object_sha256, open_multipart_uploads, s3_client
from tests.support.waiting import SLACK, wait_until

# The first command, cut to what matters here: it uses the sandbox (starting it) until told it is done.
FIRST_COMMAND = textwrap.dedent("""
    import sys
    from desktop_uploader.connection import launch_sandbox
    from desktop_uploader.paths import resolve_paths
    handle = launch_sandbox(resolve_paths().ensure())
    print(handle.process.pid if handle.process else 0, flush=True)
    sys.stdin.readline()
    handle.stop()
""")


def ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_sandbox_goes_on_for_a_second_command_after_the_first_is_done_then_ends(tmp_path: Path) -> None:
    """A CLI audit ran two uploads at once without a server: the first to finish stopped the sandbox it had
    started, and the other failed with "127.0.0.1:… refused the connection"."""
    env = {**os.environ, HOME_ENV: str(tmp_path / "home"), "COLUMNS": "200"}
    paths = resolve_paths(env).ensure()
    model = tmp_path / "shared.safetensors"
    sha256 = write_safetensors(model, 40 * MiB)
    first = subprocess.Popen(
        [sys.executable, "-c", FIRST_COMMAND], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    second: subprocess.Popen[str] | None = None
    sandbox_pid = 0
    try:
        assert first.stdout is not None and first.stdin is not None
        sandbox_pid = int(first.stdout.readline())
        assert sandbox_pid, "the first command found a sandbox running instead of starting one"
        second = subprocess.Popen(
            [sys.executable, "-m", "desktop_uploader", "upload", str(model), "--json", "--bandwidth-limit", "4MB"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        users = paths.sandbox_dir / USERS_DIR
        wait_until(lambda: len(list(users.glob("*.lock"))) == 2, 60, "the second command on the sandbox")
        first.stdin.write("done\n")
        first.stdin.close()
        assert first.wait(30 * SLACK) == 0
        assert not ended(sandbox_pid), "the first command stopped the sandbox the second one uploads to"
        out, err = second.communicate(timeout=300 * SLACK)
        assert second.returncode == 0, err
        [upload] = json.loads(out)["uploads"]
        wait_until(lambda: ended(sandbox_pid), 30, "the sandbox to end with its last user")
        again = launch_sandbox(paths)  # on the same data: what was stored is there, whole, and nothing half-done
        try:
            s3 = s3_client(again.info)
            assert object_sha256(s3, again.info.bucket, upload["s3Key"]) == sha256
            assert open_multipart_uploads(s3, again.info.bucket) == []
        finally:
            again.stop()
    finally:
        for process in (first, second):
            if process is not None:
                stop_process(process)
        if sandbox_pid and not ended(sandbox_pid):
            psutil.Process(sandbox_pid).kill()


def test_two_first_users_at_once_share_one_sandbox(tmp_path: Path) -> None:
    """The audit's window and a second launch both started a store on one folder: "weed exited with code 255"."""
    paths = resolve_paths({HOME_ENV: str(tmp_path / "home")}).ensure()
    handles: list[Any] = []
    errors: list[BaseException] = []

    def first_user() -> None:
        try:
            handles.append(launch_sandbox(paths))
        except BaseException as exc:
            errors.append(exc)

    users = [threading.Thread(target=first_user) for _ in range(2)]
    for user in users:
        user.start()
    for user in users:
        user.join(180 * SLACK)
    try:
        assert errors == [] and len(handles) == 2
        assert handles[0].info.api_url == handles[1].info.api_url
        assert sorted(handle.process is None for handle in handles) == [False, True]  # one started it
    finally:
        for handle in sorted(handles, key=lambda h: h.process is not None):  # the starter last
            handle.stop()
