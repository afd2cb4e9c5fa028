"""``desktop-uploader serve`` set up wrong: one sentence that names the flag to fix, never a traceback.

A CLI audit found a port out of range answered by a traceback, missing settings named by the config's
field names (``tokens_file: Field required``), and a missing tokens file as ``[Errno 2] …``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def serve(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop_uploader", "serve", *flags],
        env={**os.environ, "DESKTOP_UPLOADER_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def ready(tmp_path: Path) -> tuple[str, ...]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"a-token-of-twenty-chars": "someone"}', encoding="utf-8")
    return ("--bucket", "models", "--tokens-file", str(tokens), "--spool-dir", str(tmp_path / "spool"))


@pytest.mark.parametrize(
    ("flags", "said", "code"),
    [
        (("--port", "99999"), "'99999' is not a port: give a number from 0 to 65535.", 2),
        ((), "--tokens-file (or UPLOAD_API_TOKENS_FILE) is required", 2),
        (("--bucket", "models", "--tokens-file", "/no/such/tokens.json", "--spool-dir", "spool"), "can't be read", 2),
    ],
)
def test_a_setting_to_fix_is_named_by_its_flag(tmp_path: Path, flags: tuple[str, ...], said: str, code: int) -> None:
    answer = serve(tmp_path, *flags)
    assert answer.returncode == code, answer.stderr
    assert said in answer.stderr
    assert "Traceback" not in answer.stderr and "Field required" not in answer.stderr


def test_a_tokens_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    flags = ready(tmp_path)
    Path(flags[3]).write_text("{", encoding="utf-8")
    answer = serve(tmp_path, *flags)
    assert answer.returncode == 2 and f"The tokens file {flags[3]} is not valid JSON" in answer.stderr


def test_a_port_in_use_is_said_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        answer = serve(tmp_path, *ready(tmp_path), "--port", str(port))
    assert answer.returncode == 1
    assert f"can't listen on 127.0.0.1:{port}: Address already in use." in answer.stderr
    assert "Traceback" not in answer.stderr
