"""The Next.js route (server-examples/nextjs) as a real ``next start`` process, and the CLI pointed at it.

``nextjs_full`` (the route with the whole contract), ``nextjs_original`` and ``nextjs_three_fixed`` are
shared with the client's end-to-end tests and the window's: tests/support/upload_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.conftest import SampleFile
from tests.support.safetensors_files import whole_models
from tests.support.upload_apis import UploadApi


@pytest.fixture
def cli(private_home: Path, upload_api: UploadApi) -> Cli:
    """Pointed at our FastAPI server unless a test gives another server's environment."""
    return Cli(private_home, upload_api)


@pytest.fixture
def make_file(make_file: Callable[..., SampleFile], tmp_path: Path) -> Callable[..., SampleFile]:
    """Whole .safetensors files, as the CLI checks they are."""
    return whole_models(make_file, tmp_path)
