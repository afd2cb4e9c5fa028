"""Extra, differently configured API servers over the sandbox's real SeaweedFS, on loopback threads.

The sandbox's own API has the defaults; tests that need a 1-second URL expiry, a second user, or a
server that knows only the seed's three actions get one of these: the same application code,
serving real HTTP, with other settings.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop_uploader.sandbox.info import SandboxInfo
from desktop_uploader.server.app import create_app
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.run import ServerThread

SECOND_USER_TOKEN = "second-user-token-0123456789abcdef"
SECOND_USER = "second-user"


@contextmanager
def api_server(info: SandboxInfo, workdir: Path, **overrides: Any) -> Iterator[str]:
    """Serve the upload API with ``overrides``; the sandbox's token and a second user are both valid."""
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = workdir / "tokens.json"
    tokens.write_text(json.dumps({info.token: "sandbox-user", SECOND_USER_TOKEN: SECOND_USER}), encoding="utf-8")
    settings: dict[str, Any] = {
        "bucket": info.bucket,
        "s3_endpoint": info.s3_endpoint,
        "s3_access_key": info.access_key,
        "s3_secret_key": info.secret_key,
        "tokens_file": tokens,
        "spool_dir": workdir / "spool",
        **overrides,
    }
    server = ServerThread.start(create_app(ServerConfig(**settings)))
    try:
        yield server.url
    finally:
        server.stop()


@dataclass(frozen=True)
class OwnUser:
    """A user nobody else's test shares: what the server lists for it is only what its test left there."""

    url: str
    token: str
    user_id: str

    @property
    def prefix(self) -> str:
        return f"loras/{self.user_id}/"

    def env(self) -> dict[str, str]:
        return {"DESKTOP_UPLOADER_SERVER": self.url, "DESKTOP_UPLOADER_TOKEN": self.token}


@contextmanager
def own_user_server(
    info: SandboxInfo, workdir: Path, user: OwnUser | None = None, **overrides: Any
) -> Iterator[OwnUser]:
    """The upload API (with ``overrides``) over the sandbox's storage, for one new user of its own (or ``user``)."""
    token, user_id = (user.token, user.user_id) if user else (uuid.uuid4().hex, f"u{uuid.uuid4().hex[:10]}")
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = workdir / "own-tokens.json"
    tokens.write_text(json.dumps({token: user_id}), encoding="utf-8")
    with api_server(info, workdir, tokens_file=tokens, **overrides) as url:
        yield OwnUser(url, token, user_id)
