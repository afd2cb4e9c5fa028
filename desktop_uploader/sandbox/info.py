"""What a running sandbox is, and how to find one: light enough for the CLI and GUI to import at start.

(The sandbox itself needs FastAPI, uvicorn and boto3; finding one must not.)
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

RUNTIME_FILE = "sandbox.json"
# How ``desktop-uploader sandbox`` begins the one line it prints when it can't start: the app, which
# starts it, passes on the reason that follows rather than saying "could not start" twice.
START_FAILED = "The sandbox could not start: "


@dataclass(frozen=True)
class SandboxInfo:
    api_url: str
    token: str
    s3_endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    data_dir: str
    pid: int = 0  # the process that serves it: a window using someone else's sandbox sees it end (0: unknown)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SandboxInfo:
        raw: dict[str, Any] = json.loads(text)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw or k != "pid"})

    @property
    def server_id(self) -> str:
        return sandbox_server_id(self.data_dir)


def sandbox_server_id(data_dir: str | Path) -> str:
    """Which sandbox an upload went to, stable across restarts (ports change, the data folder does not).

    ``data_dir`` as the sandbox has it: `desktop-uploader sandbox` resolves the folder it is given.
    """
    return f"sandbox:{data_dir}"


def running_sandbox(data_dir: Path) -> SandboxInfo | None:
    """The sandbox another process of ours runs on ``data_dir``, if it still answers."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError, requests.RequestException):
        info = SandboxInfo.from_json((data_dir / RUNTIME_FILE).read_text(encoding="utf-8"))
        if requests.get(f"{info.api_url}/healthz", timeout=1).ok:
            return info
    return None
