"""Fixtures shared by every test: one real sandbox per session, files to upload, storage checks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.api import Api
from tests.support.sandbox_process import SandboxProcess
from tests.support.storage import s3_client

# Any unexpected WARNING or ERROR record fails the test that logged it (tests/support/logfail.py).
# disks: the small_disk fixture; upload_apis: the FastAPI server or the Next.js route a client test talks to;
# disk_room: the run stops, saying so, when the machine's disk is nearly full.
pytest_plugins = [
    "tests.support.logfail",
    "tests.support.disks",
    "tests.support.upload_apis",
    "tests.support.disk_room",
]

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
STARTED: list[SandboxProcess] = []  # the session's sandbox, once a test has asked for it
# Tests never read or write a real keychain: with no usable backend, secrets go to the private home.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    home = tmp_path_factory.mktemp("sandbox-home")
    process = SandboxProcess.start(home)
    STARTED.append(process)
    try:
        yield process
    finally:
        STARTED.remove(process)
        process.stop()


@pytest.fixture(scope="session")
def sandbox(sandbox_process: SandboxProcess) -> SandboxInfo:
    return sandbox_process.info


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Every later test that stores would fail after its retries and its timeout, naming no cause: the run
    stops at the first one instead, saying where the sandbox's own words are (before any fixture is set up)."""
    if "sandbox_process" not in getattr(item, "fixturenames", ()):
        return
    for process in STARTED:
        if process.process.poll() is not None:
            pytest.exit(
                f"the session's sandbox exited ({process.process.returncode}) before {item.nodeid}; "
                f"see {process.stderr_path} and the logs in {process.home / 'logs'}",
                returncode=3,
            )


@pytest.fixture(scope="session")
def s3(sandbox: SandboxInfo) -> Any:
    return s3_client(sandbox)


@pytest.fixture
def api(sandbox: SandboxInfo) -> Api:
    return Api(sandbox.api_url, sandbox.token)


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the real user's settings, queue or logs."""
    home = tmp_path / "home"
    monkeypatch.setenv("DESKTOP_UPLOADER_HOME", str(home))
    return home


@dataclass(frozen=True)
class SampleFile:
    path: Path
    size: int
    sha256: str

    def read(self) -> bytes:
        return self.path.read_bytes()


@pytest.fixture
def make_file(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., SampleFile]:
    """Files of pseudo-random bytes (incompressible, reproducible per test and name) of any size.

    The bytes differ from test to test: the tests share the sandbox's user, and an upload one test
    leaves unfinished must not be continued by another that uploads a file of the same name (the app
    does continue such an upload when its stored parts match the file byte for byte).
    """

    def make(size: int, name: str = "model.safetensors", seed: int = 0) -> SampleFile:
        path = tmp_path / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        block = hashlib.sha256(f"{request.node.nodeid}:{name}:{seed}".encode()).digest() * 32768  # 1 MiB pattern
        counter = 0
        with open(path, "wb") as handle:
            remaining = size
            while remaining:
                # Vary each MiB so that parts differ (equal parts would hide part-order bugs).
                chunk = (counter.to_bytes(8, "big") + block[8:])[: min(remaining, len(block))]
                handle.write(chunk)
                digest.update(chunk)
                remaining -= len(chunk)
                counter += 1
        return SampleFile(path, size, digest.hexdigest())

    return make
