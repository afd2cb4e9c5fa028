"""The Next.js route (server-examples/nextjs) as a real ``next start`` process, and the CLI pointed at it.

``nextjs_full`` (the route with the whole contract) and ``nextjs_three_fixed`` are shared with the
client's end-to-end tests: tests/support/upload_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desktop_uploader.sandbox.info import SandboxInfo
from tests.cli.conftest import Cli
from tests.conftest import SampleFile
from tests.support.nextjs_route import NextRoute, nextjs_route
from tests.support.safetensors_files import whole_models
from tests.support.upload_apis import UploadApi


@pytest.fixture(scope="session")
def nextjs_original(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NextRoute]:
    """The route as our users' backend is today: start/complete/abort only, the SDK's default checksums.

    Its part URLs are signed for a proxy in front of storage (``route.storage``), which counts what arrives.
    """
    workdir = tmp_path_factory.mktemp("nextjs-original")
    with nextjs_route(sandbox, workdir, storage_proxy=True, UPLOADER_ACTIONS="original") as route:
        yield route


@pytest.fixture
def cli(private_home: Path, upload_api: UploadApi) -> Cli:
    """Pointed at our FastAPI server unless a test gives another server's environment."""
    return Cli(private_home, upload_api)


@pytest.fixture
def make_file(make_file: Callable[..., SampleFile], tmp_path: Path) -> Callable[..., SampleFile]:
    """Whole .safetensors files, as the CLI checks they are."""
    return whole_models(make_file, tmp_path)
