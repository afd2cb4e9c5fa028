"""The fault-injection suite's world: proxies in front of storage and the API, a redacted log, the long run."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.logsetup import configure_logging
from desktop_uploader.sandbox.info import SandboxInfo
from tests.faults.harness import LazyServer, SeedResult, World
from tests.faults.scenario import SEED_ACTIONS
from tests.faults.targets import USER_PREFIX
from tests.support.api_servers import api_server
from tests.support.nextjs_route import RouteUser, nextjs_route
from tests.support.proxy import Proxy

REPORT_ENV = "FAULTS_REPORT"  # a .jsonl file each seeded run appends its result to
LONGRUN_ENV = "FAULTS_LONGRUN"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The 200-seed run is opt-in: ``pytest -m longrun tests/faults`` or FAULTS_LONGRUN=1."""
    wanted = "longrun" in (config.getoption("markexpr", "") or "") or os.environ.get(LONGRUN_ENV) == "1"
    if wanted:
        return
    skip = pytest.mark.skip(reason="the long fault run; select it with -m longrun (or FAULTS_LONGRUN=1)")
    for item in items:
        if item.get_closest_marker("longrun") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fault_storage_proxy(sandbox: SandboxInfo) -> Iterator[Proxy]:
    """The proxy in front of storage that every server of the fault world presigns for (one per session, so the
    Next.js route, started once, keeps pointing at it)."""
    with Proxy.start(sandbox.s3_endpoint) as proxy:
        yield proxy
        assert not proxy.plan_errors, proxy.plan_errors


@pytest.fixture(scope="session")
def fault_next_server(
    sandbox: SandboxInfo, fault_storage_proxy: Proxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LazyServer]:
    """The Next.js route with the whole contract (chunked too) behind an API proxy, started once, when first used.

    Its part URLs go through the fault world's storage proxy, like our server's; it knows the sandbox's token as
    the sandbox's user, so its uploads land under the same prefix the checks look at.
    """
    with contextlib.ExitStack() as stack:

        def start() -> tuple[Proxy, Path]:
            route = stack.enter_context(
                nextjs_route(
                    sandbox,
                    tmp_path_factory.mktemp("faults-next"),
                    alice=RouteUser(sandbox.token, USER_PREFIX.removeprefix("loras/").rstrip("/")),
                    UPLOADER_ACTIONS="full",
                    UPLOAD_API_CHUNKED_ENABLED="1",
                    UPLOAD_API_S3_PUBLIC_ENDPOINT=fault_storage_proxy.url,
                )
            )
            return stack.enter_context(Proxy.start(route.url, peek_bytes=256 * 1024)), route.log

        server = LazyServer(start)
        yield server
        assert server.started is None or not server.started.plan_errors, server.started.plan_errors


@pytest.fixture(scope="module")
def world(
    sandbox: SandboxInfo,
    s3: Any,
    fault_storage_proxy: Proxy,
    fault_next_server: LazyServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("faults")
    log_file = workdir / "logs" / "engine-and-server.log"
    root = logging.getLogger()
    level = root.level
    configure_logging(log_file)  # the app's own set-up: a rotating file behind the redacting filter
    try:
        with contextlib.ExitStack() as stack:
            storage_proxy = fault_storage_proxy
            api_url = stack.enter_context(api_server(sandbox, workdir / "api", s3_public_endpoint=storage_proxy.url))
            api_proxy = stack.enter_context(Proxy.start(api_url, peek_bytes=256 * 1024))
            # The seed's server: only start/complete/abort; capabilities, chunked and legacy answer 404.
            seed_url = stack.enter_context(
                api_server(
                    sandbox,
                    workdir / "seed-api",
                    s3_public_endpoint=storage_proxy.url,
                    actions=SEED_ACTIONS,
                    capabilities_enabled=False,
                    chunked_enabled=False,
                    legacy_enabled=False,
                )
            )
            seed_proxy = stack.enter_context(Proxy.start(seed_url, peek_bytes=256 * 1024))
            world = World(sandbox, s3, storage_proxy, api_proxy, log_file, seed_proxy, fault_next_server)
            yield world
            world.install(None)  # the session's proxies outlive this module: no plan of its seeds stays behind
            proxies = (storage_proxy, *world.api_proxies())
            assert not any(p.plan_errors for p in proxies), [p.plan_errors for p in proxies]
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_desktop_uploader", False):
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)


def record(result: SeedResult) -> None:
    target = os.environ.get(REPORT_ENV)
    if target:
        with open(Path(target), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result.as_json(), sort_keys=True) + "\n")
