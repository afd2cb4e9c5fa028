"""The Next.js route (server-examples/nextjs) as a real ``next start`` process, and the CLI pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desktop_uploader.sandbox.info import SandboxInfo
from tests.cli.conftest import Cli
from tests.conftest import SampleFile
from tests.support.nextjs_route import NextRoute, nextjs_route
from tests.support.safetensors_files import whole_models


@pytest.fixture(scope="session")
def nextjs_full(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NextRoute]:
    """The route with the whole contract (UPLOADER_ACTIONS=full, chunked on), its S3 client set to WHEN_REQUIRED."""
    workdir = tmp_path_factory.mktemp("nextjs-full")
    with nextjs_route(sandbox, workdir, UPLOADER_ACTIONS="full", UPLOAD_API_CHUNKED_ENABLED="1") as route:
        yield route


@pytest.fixture(scope="session")
def nextjs_original(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NextRoute]:
    """The route as our users' backend is today: start/complete/abort only, the SDK's default checksums."""
    with nextjs_route(sandbox, tmp_path_factory.mktemp("nextjs-original"), UPLOADER_ACTIONS="original") as route:
        yield route


@pytest.fixture
def cli(private_home: Path, sandbox: SandboxInfo) -> Cli:
    return Cli(private_home, sandbox)


@pytest.fixture
def make_file(make_file: Callable[..., SampleFile], tmp_path: Path) -> Callable[..., SampleFile]:
    """Whole .safetensors files, as the CLI checks they are."""
    return whole_models(make_file, tmp_path)
