"""An upload manager wired to the test's upload API (or another API server), with its events recorded.

The upload API is the sandbox's, unless the test module runs against every kind
(tests/support/upload_apis.py; tests/engine/test_methods.py does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Event
from desktop_uploader.engine.manager import JobView, ServerConnection, UploadManager
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore
from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.capped_link import SharedLink, install_cap
from tests.support.upload_apis import UploadApi
from tests.support.waiting import wait_until


@dataclass
class Engine:
    manager: UploadManager
    state: StateStore
    events: list[Event] = field(default_factory=list)

    def upload(self, path: Path, timeout: float = 120) -> JobView:
        job = self.manager.add(path)
        assert self.manager.wait([job], timeout), "upload did not settle in time"
        return self.manager.job(job)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60) -> None:
        wait_until(predicate, timeout)

    def of(self, job_id: str, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and e.job_id == job_id]


@pytest.fixture
def make_engine(upload_api: UploadApi, tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    made: list[Engine] = []

    def make(
        settings: Settings | None = None,
        *,
        api_url: str | None = None,
        token: str | None = None,
        direct: DirectTarget | None = None,
        state_path: Path | None = None,
        server_id: str | None = None,
    ) -> Engine:
        connection = ServerConnection(
            api_url or upload_api.url,
            token or upload_api.token,
            server_id or (api_url or upload_api.server_id),
            "test",
        )
        state = StateStore.open(state_path or tmp_path / "state.sqlite3")
        manager = UploadManager(settings or Settings(), state, connection, direct=direct)
        engine = Engine(manager, state)
        manager.subscribe(engine.events.append)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.manager.close(timeout=10)
        engine.state.close()


@pytest.fixture
def direct_target(sandbox: SandboxInfo) -> DirectTarget:
    return DirectTarget(
        sandbox.s3_endpoint, "us-east-1", sandbox.bucket, sandbox.access_key, sandbox.secret_key, "direct"
    )


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], SharedLink]:
    """A bandwidth cap that every part's body through the test proxy shares (tests/support/capped_link.py)."""
    return install_cap(monkeypatch)
