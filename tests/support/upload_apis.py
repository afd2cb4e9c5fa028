"""The upload APIs the client's end-to-end tests run against: our FastAPI server and the Next.js drop-in route.

A pytest plugin (registered in tests/conftest.py). ``upload_api`` is the server a test's client talks
to. A test directory or module opts in to both kinds by setting ``pytest_generate_tests =
every_upload_api`` (tests/cli, tests/engine/test_methods.py): each of its tests then runs as
``[fastapi]`` (the sandbox's API, as a user runs it) and ``[nextjs]`` (server-examples/nextjs in full
mode over the same SeaweedFS), since issue 12 promises that everything the client does against our
server it does against the route. Elsewhere, and for a test marked ``fastapi_only`` (about our
server itself, or needing it configured otherwise) or ``without_upload_api`` (never asks a server),
``upload_api`` is the FastAPI one and the test keeps its plain id.

The route is started once per session, on first use, and every ``[nextjs]`` test gets a user of its
own (``NextRoute.add_user``): what the route lists for it is only what that test left there.
``seed_api`` is the same kind of server offering only the seed's three actions and answers: our
server so configured, or the route as our users run it with the one-line fix (``nextjs_three_fixed``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.api_servers import OwnUser, api_server, own_user_server
from tests.support.nextjs_route import NextRoute, RouteUser, nextjs_route

FASTAPI = "fastapi"
NEXTJS = "nextjs"
KINDS = (FASTAPI, NEXTJS)
SANDBOX_USER = "sandbox-user"  # the user the sandbox's token stands for on our server


@dataclass(frozen=True)
class UploadApi:
    """One upload API as the client sees it: where it is, who the test is there, how records name it."""

    kind: str
    url: str
    token: str
    user_id: str
    server_id: str  # the server a resume record belongs to, as the engine fixture names it

    @property
    def prefix(self) -> str:
        return f"loras/{self.user_id}/"

    @property
    def comfyui_prefix(self) -> str:
        return f"/runpod-volume/{self.prefix}"

    def env(self) -> dict[str, str]:
        return {"DESKTOP_UPLOADER_SERVER": self.url, "DESKTOP_UPLOADER_TOKEN": self.token}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fastapi_only(reason): runs against our FastAPI server only; the reason says why"
    )
    config.addinivalue_line(
        "markers", "without_upload_api(reason): never asks an upload API, so one run (no [nextjs]) proves it"
    )


def every_upload_api(metafunc: pytest.Metafunc) -> None:
    """Run each test that uses ``upload_api`` once per kind of server, unless it is marked for one."""
    if "api_kind" not in metafunc.fixturenames:
        return
    for marker in ("fastapi_only", "without_upload_api"):
        if metafunc.definition.get_closest_marker(marker) is not None:
            return
    metafunc.parametrize("api_kind", KINDS, indirect=True)


@pytest.fixture
def api_kind(request: pytest.FixtureRequest) -> str:
    kind: str = getattr(request, "param", FASTAPI)
    return kind


@pytest.fixture(scope="session")
def nextjs_full(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NextRoute]:
    """The route with the whole contract (UPLOADER_ACTIONS=full, chunked and single-request uploads on), its S3
    client set to WHEN_REQUIRED."""
    workdir = tmp_path_factory.mktemp("nextjs-full")
    offered = {"UPLOAD_API_CHUNKED_ENABLED": "1", "UPLOAD_API_LEGACY_ENABLED": "1"}
    with nextjs_route(sandbox, workdir, UPLOADER_ACTIONS="full", **offered) as route:
        yield route


@pytest.fixture
def upload_api(api_kind: str, sandbox: SandboxInfo, request: pytest.FixtureRequest) -> UploadApi:
    """The server this test's client uploads to; the route only when asked for, so it starts only if needed."""
    if api_kind == NEXTJS:
        route: NextRoute = request.getfixturevalue("nextjs_full")
        user = route.add_user()
        return UploadApi(NEXTJS, route.url, user.token, user.user_id, route.url)
    return UploadApi(FASTAPI, sandbox.api_url, sandbox.token, SANDBOX_USER, sandbox.server_id)


@pytest.fixture(scope="session")
def nextjs_original(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NextRoute]:
    """The route as our users' backend is today: start/complete/abort only, the SDK's default checksums.

    Its part URLs are signed for a proxy in front of storage (``route.storage``), which counts what arrives.
    """
    workdir = tmp_path_factory.mktemp("nextjs-original")
    with nextjs_route(sandbox, workdir, storage_proxy=True, UPLOADER_ACTIONS="original") as route:
        yield route


@pytest.fixture(scope="session")
def nextjs_three_fixed(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NextRoute]:
    """Our users' route with the one-line fix and nothing else: start/complete/abort, WHEN_REQUIRED checksums.

    Its part URLs are signed for a proxy in front of storage (``route.storage``), which counts what arrives.
    """
    workdir = tmp_path_factory.mktemp("nextjs-three-fixed")
    env = {"UPLOADER_ACTIONS": "original", "UPLOADER_CHECKSUMS": "when-required"}
    with nextjs_route(sandbox, workdir, storage_proxy=True, **env) as route:
        yield route


SeedApi = Callable[..., AbstractContextManager[UploadApi]]


@pytest.fixture
def seed_api(api_kind: str, sandbox: SandboxInfo, tmp_path: Path, request: pytest.FixtureRequest) -> SeedApi:
    """Opens a server of the test's kind that knows only start/complete/abort, no GET, and answers as the seed.

    For ``user`` (a user of the test's own, with uploads already on the full server) or else a new one.
    """
    route: NextRoute | None = request.getfixturevalue("nextjs_three_fixed") if api_kind == NEXTJS else None

    @contextmanager
    def open_seed(user: OwnUser | None = None) -> Iterator[UploadApi]:
        if route is not None:
            known = route.add_user(RouteUser(user.token, user.user_id) if user else None)
            yield UploadApi(NEXTJS, route.url, known.token, known.user_id, route.url)
            return
        seed_only = {"actions": ("start", "complete", "abort"), "capabilities_enabled": False}
        if user is None:
            with api_server(sandbox, tmp_path / "seed", **seed_only) as url:
                yield UploadApi(FASTAPI, url, sandbox.token, SANDBOX_USER, url)
            return
        with own_user_server(sandbox, tmp_path / "seed", user, **seed_only) as own:
            yield UploadApi(FASTAPI, own.url, own.token, own.user_id, own.url)

    return open_seed
