"""Run the real ``desktop-uploader`` command in a subprocess, with a private home.

Every test here runs against each kind of upload API (``[fastapi]``, ``[nextjs]``:
tests/support/upload_apis.py) unless it is marked for one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SampleFile
from tests.support.safetensors_files import whole_models
from tests.support.upload_apis import UploadApi, every_upload_api

pytest_generate_tests = every_upload_api


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    home: Path
    api: UploadApi  # the server it is pointed at unless a test says otherwise

    def env(self, server: bool = True, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(self.home), "COLUMNS": "200"}
        if server:
            env.update(self.api.env())
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str,
        server: bool = True,
        timeout: float = 180,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> CliResult:
        done = subprocess.run(
            [sys.executable, "-m", "desktop_uploader", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(server, env),
            cwd=cwd,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "desktop_uploader", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(True, env),
            preexec_fn=_ctrl_c_as_in_a_terminal if os.name == "posix" else None,  # noqa: PLW1509
        )


def _ctrl_c_as_in_a_terminal() -> None:
    """The command gets Ctrl+C and a hang-up as from a terminal, however the test run was started.

    A shell's background job (``make test &``, a CI step run with ``nohup``) ignores SIGINT (and under
    ``nohup`` SIGHUP), children inherit that, and Python then installs no Ctrl+C handler: the tests that
    press Ctrl+C saw the upload run to the end, and so did those that hang up. The app itself keeps an
    inherited "ignore", as ``nohup`` users expect.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture
def cli(private_home: Path, upload_api: UploadApi) -> Cli:
    return Cli(private_home, upload_api)


@pytest.fixture
def make_file(make_file: Callable[..., SampleFile], tmp_path: Path) -> Callable[..., SampleFile]:
    """Whole .safetensors files, as the CLI checks they are (tests/support/safetensors_files.py)."""
    return whole_models(make_file, tmp_path)
