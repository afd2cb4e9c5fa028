"""The per-file overhead cuts, checked by what they leave out, never by a clock.

An upload given its token (``--token`` or ``DESKTOP_UPLOADER_TOKEN``) never asks the keychain, so
keyring's backends are never loaded (0.1–0.4 s of every upload's start on the benchmark machine);
and a command's process freezes its objects before the interpreter's final collections
(0.1–0.3 s of every exit). docs/benchmarks.md, "Per-file overhead", has the measurements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.storage import object_sha256, open_multipart_uploads

# Runs `python -m desktop_uploader …` as a user does, and reports at the very end of the process (the
# first atexit handler registered runs last) what was imported and whether the collector was frozen.
PROBE = (
    "import atexit, gc, runpy, sys\n"
    "def report():\n"
    "    print(json.dumps({'keyring': 'keyring' in sys.modules, 'frozen': gc.get_freeze_count()}), file=sys.stderr)\n"
    "import json\n"
    "atexit.register(report)\n"
    "sys.argv = ['desktop-uploader', *sys.argv[1:]]\n"
    "runpy.run_module('desktop_uploader', run_name='__main__', alter_sys=True)\n"
)


def _upload(sandbox: SandboxInfo, home: Path, path: Path, *, token_in_env: bool) -> tuple[int, Any, dict[str, Any]]:
    env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(home)}
    env.pop("DESKTOP_UPLOADER_TOKEN", None)
    argv = [sys.executable, "-c", PROBE, "upload", str(path), "--server", sandbox.api_url, "--json"]
    if token_in_env:
        env["DESKTOP_UPLOADER_TOKEN"] = sandbox.token
    else:
        argv.append(f"--token={sandbox.token}")  # joined: a token may start with "-"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, check=False)
    probe = json.loads(done.stderr.strip().splitlines()[-1])
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, probe


@pytest.mark.parametrize("token_in_env", [False, True], ids=["--token", "environment"])
def test_an_upload_given_its_token_never_loads_the_keychain_and_exits_frozen(
    sandbox: SandboxInfo, s3: Any, make_file: Any, tmp_path: Path, token_in_env: bool
) -> None:
    sample = make_file(3 << 20, name="lora.bin")
    code, result, probe = _upload(sandbox, tmp_path / "home", sample.path, token_in_env=token_in_env)
    assert code == 0, result
    [upload] = result["uploads"]
    assert upload["status"] == "completed"
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sample.sha256
    assert open_multipart_uploads(s3, sandbox.bucket, upload["s3Key"]) == []
    assert probe["keyring"] is False
    assert probe["frozen"] > 0
