"""The sandbox: SeaweedFS plus the upload API, on loopback, with credentials that survive restarts.

The identity (S3 keys, the API token) is generated once and kept in the sandbox's data dir, so an
upload interrupted in one session resumes in the next against the same store and the same user.
Ports are new each time; a small ``sandbox.json`` tells other processes of the same user (the
CLI while the GUI runs it, say) where the running sandbox is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from desktop_uploader.engine.private import private_dir
from desktop_uploader.sandbox.info import RUNTIME_FILE, SandboxInfo, running_sandbox
from desktop_uploader.sandbox.seaweed import SeaweedServer
from desktop_uploader.server.app import create_app
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.errors import ApiError
from desktop_uploader.server.run import ServerThread
from desktop_uploader.server.storage import Storage

log = logging.getLogger(__name__)

BUCKET = "uploads"
USER_ID = "sandbox-user"


@dataclass(frozen=True)
class SandboxIdentity:
    access_key: str
    secret_key: str
    token: str

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SandboxIdentity:
        path = data_dir / "identity.json"
        with contextlib.suppress(OSError, ValueError, TypeError):
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        identity = cls(
            access_key="SANDBOX" + secrets.token_hex(6).upper(),
            secret_key=secrets.token_urlsafe(30),
            token=_word(),
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(identity)), encoding="utf-8")
        os.chmod(path, 0o600)
        return identity


def _word() -> str:
    """A token that a shell and argparse take as a word: never one that starts with "-"."""
    while (token := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return token


def _make_bucket_when_ready(storage: Storage, timeout: float = 30.0) -> None:
    """Create the bucket once weed's filer takes writes.

    S3 answers before the filer behind it is ready, and then says "busy" (503): that means "not
    yet", until the deadline. Any other refusal is the real cause and is raised as it is.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            storage.ensure_bucket()
            return
        except ApiError as exc:
            if exc.status != 503 or time.monotonic() >= deadline:
                raise
            log.info("Storage is not ready for the bucket yet (%s)", exc.message)
        time.sleep(0.1)


class Sandbox:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        cache_dir: Path | None = None,
        log_dir: Path | None = None,
        server_overrides: dict[str, Any] | None = None,
    ) -> None:
        """``cache_dir`` gets the unpacked storage server, ``log_dir`` its log (both default to ``data_dir``)."""
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.log_dir = log_dir
        self.server_overrides = server_overrides or {}
        self.weed: SeaweedServer | None = None
        self.api: ServerThread | None = None
        self.info: SandboxInfo | None = None
        self._stop_lock = threading.Lock()

    def __enter__(self) -> SandboxInfo:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def server_config(self, identity: SandboxIdentity, s3_endpoint: str, **overrides: Any) -> ServerConfig:
        tokens = self.data_dir / "tokens.json"
        tokens.write_text(json.dumps({identity.token: USER_ID}), encoding="utf-8")
        os.chmod(tokens, 0o600)
        settings: dict[str, Any] = {
            "bucket": BUCKET,
            "s3_endpoint": s3_endpoint,
            "s3_access_key": identity.access_key,
            "s3_secret_key": identity.secret_key,
            "tokens_file": tokens,
            "spool_dir": self.data_dir / "spool",
            "local_store_dir": self.data_dir,  # SeaweedFS writes here: a file past its disk's room is refused
            **self.server_overrides,
            **overrides,
        }
        return ServerConfig(**settings)

    def start(self) -> SandboxInfo:
        private_dir(self.data_dir)  # its store holds every uploaded file, and its credentials
        # A sandbox.json that no sandbox answers for is a killed one's: it must not send other processes
        # to its dead ports while this one starts (one that does answer is left to its owner).
        if running_sandbox(self.data_dir) is None:
            with contextlib.suppress(OSError):
                (self.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
        identity = SandboxIdentity.load_or_create(self.data_dir)
        try:
            self.weed = SeaweedServer.start(
                self.data_dir,
                access_key=identity.access_key,
                secret_key=identity.secret_key,
                cache_dir=self.cache_dir,
                log_dir=self.log_dir,
            )
            config = self.server_config(identity, self.weed.s3_endpoint)
            _make_bucket_when_ready(Storage(config))
            self.api = ServerThread.start(create_app(config), access_log=True)
        except BaseException:
            self.stop()
            raise
        self.info = SandboxInfo(
            api_url=self.api.url,
            token=identity.token,
            s3_endpoint=self.weed.s3_endpoint,
            bucket=BUCKET,
            access_key=identity.access_key,
            secret_key=identity.secret_key,
            data_dir=str(self.data_dir),
            pid=os.getpid(),
        )
        runtime = self.data_dir / RUNTIME_FILE
        runtime.write_text(self.info.to_json(), encoding="utf-8")
        os.chmod(runtime, 0o600)
        log.info("Sandbox ready: API %s, S3 %s", self.api.url, self.weed.s3_endpoint)
        return self.info

    def storage_exit_code(self) -> int | None:
        """The storage server's exit code once it has ended (reaped, so it leaves no zombie); None while it runs."""
        return self.weed.process.poll() if self.weed is not None else None

    def stop(self) -> None:
        with self._stop_lock:
            if self.api is not None:
                self.api.stop()
                self.api = None
            if self.weed is not None:
                self.weed.stop()
                self.weed = None
            with contextlib.suppress(OSError):
                (self.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
