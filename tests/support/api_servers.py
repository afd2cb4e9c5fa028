"""Extra, differently configured API servers over the sandbox's real SeaweedFS, on loopback threads.

The sandbox's own API has the defaults; tests that need a 1-second URL expiry, a second user, or a
server that knows only the seed's three actions get one of these: the same application code,
serving real HTTP, with other settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
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
