"""The Next.js route of ``server-examples/nextjs`` as a real ``next start`` process over the sandbox's SeaweedFS.

Built once (``next build``, skipped while ``.next/BUILD_ID`` is newer than every source), then served
on a free loopback port with its settings in the environment, the way a user deploys it. Readiness is
an answer to ``GET`` on the route (401 without a token in ``full`` mode, 405 in ``original``). Stopped
by its process group: SIGINT, then SIGKILL after a bound. A route that does not come up raises with
what it printed, so the real cause shows.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.api import PRESIGNED, Api
from tests.support.proxy import Proxy
from tests.support.waiting import SLACK, deadline_after

ROUTE_DIR = Path(__file__).resolve().parents[2] / "server-examples" / "nextjs"
NEXT = ROUTE_DIR / "node_modules" / ".bin" / "next"
_SOURCES = ("app", "package.json", "package-lock.json", "tsconfig.json", "next.config.mjs")
_BUILD_SECONDS = 300  # ~35 s on a busy 2-core machine; times SLACK


class RouteFailedError(RuntimeError):
    """The route could not be built or started; the message holds its output."""


@dataclass(frozen=True)
class RouteUser:
    token: str
    user_id: str

    @property
    def prefix(self) -> str:
        return f"loras/{self.user_id}/"


@dataclass(frozen=True)
class NextRoute:
    url: str
    pid: int
    log: Path
    alice: RouteUser
    bob: RouteUser
    tokens: Path | None = None  # the tokens file the route reads (again whenever it changes)
    storage: Proxy | None = None  # the proxy in front of storage that part URLs are signed for, if any

    def add_user(self, user: RouteUser | None = None) -> RouteUser:
        """A new user of the running route (or ``user``, known elsewhere), with a prefix nobody else writes to.

        The route reads its tokens file again when the file changes, so no restart is needed. The file
        is replaced whole (written aside, then renamed), so the route never reads half of it.
        """
        assert self.tokens is not None, "the route's tokens file is unknown"
        user = user or RouteUser(uuid.uuid4().hex, f"nx{uuid.uuid4().hex[:10]}")
        known: dict[str, str] = json.loads(self.tokens.read_text(encoding="utf-8"))
        aside = self.tokens.with_name(f".{user.user_id}.json")
        aside.write_text(json.dumps({**known, user.token: user.user_id}), encoding="utf-8")
        os.replace(aside, self.tokens)
        return user

    def api(self, user: RouteUser | None = None) -> Api:
        return Api(self.url, (user or self.alice).token)

    def cli_env(self, user: RouteUser | None = None) -> dict[str, str]:
        return {"DESKTOP_UPLOADER_SERVER": self.url, "DESKTOP_UPLOADER_TOKEN": (user or self.alice).token}

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _newest_source() -> float:
    newest = 0.0
    for name in _SOURCES:
        path = ROUTE_DIR / name
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        newest = max([newest, *(p.stat().st_mtime for p in files if p.exists())])
    return newest


def build() -> None:
    """``next build``, unless the last build is newer than every source."""
    if not NEXT.exists():
        raise RouteFailedError(
            f"{NEXT} is missing: install the route's packages with "
            "`make server-examples/nextjs/node_modules/.installed` (npm ci)."
        )
    build_id = ROUTE_DIR / ".next" / "BUILD_ID"
    if build_id.exists() and build_id.stat().st_mtime > _newest_source():
        return
    env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
    done = subprocess.run(
        [str(NEXT), "build"],
        cwd=ROUTE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=_BUILD_SECONDS * SLACK,
        check=False,
    )
    if done.returncode != 0:
        raise RouteFailedError(f"next build failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the route's process group, then SIGKILL after a bound."""
    if process.poll() is not None:
        return
    for sig, bound in ((signal.SIGINT, 10 * SLACK), (signal.SIGKILL, 10 * SLACK)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=bound)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60) -> None:
    deadline = deadline_after(timeout)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RouteFailedError(f"next start exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            requests.get(url + PRESIGNED, timeout=5)
            return  # any answer: the route is serving
        except requests.RequestException:
            time.sleep(0.05)
    output = log.read_text(errors="replace")
    raise RouteFailedError(f"next start did not answer within {timeout * SLACK:.0f} s:\n{output}")


@contextmanager
def nextjs_route(
    info: SandboxInfo,
    workdir: Path,
    *,
    storage_proxy: bool = False,
    alice: RouteUser | None = None,
    **env: str,
) -> Iterator[NextRoute]:
    """Serve the built route over the sandbox's storage with ``env`` added (e.g. ``UPLOADER_ACTIONS``).

    ``alice`` is the first user (a fresh one unless given: the fault suite passes the sandbox's own
    token and user, so the route writes under the same ``loras/sandbox-user/`` as our server).

    With ``storage_proxy``, part URLs are signed for a :class:`Proxy` in front of storage
    (``UPLOAD_API_S3_PUBLIC_ENDPOINT``; it relays the Host header the signature covers), so a test
    counts, holds or breaks what reaches storage: ``NextRoute.storage``.
    """
    with ExitStack() as stack:
        proxy = stack.enter_context(Proxy.start(info.s3_endpoint)) if storage_proxy else None
        if proxy is not None:
            env = {"UPLOAD_API_S3_PUBLIC_ENDPOINT": proxy.url, **env}
        route = stack.enter_context(_serve(info, workdir, env, alice))
        yield NextRoute(route.url, route.pid, route.log, route.alice, route.bob, route.tokens, proxy)


@contextmanager
def _serve(info: SandboxInfo, workdir: Path, env: dict[str, str], alice: RouteUser | None) -> Iterator[NextRoute]:
    build()
    workdir.mkdir(parents=True, exist_ok=True)
    alice = alice or RouteUser(uuid.uuid4().hex, f"nx{uuid.uuid4().hex[:10]}")
    bob = RouteUser(uuid.uuid4().hex, f"nx{uuid.uuid4().hex[:10]}")
    tokens = workdir / "tokens.json"
    tokens.write_text(json.dumps({alice.token: alice.user_id, bob.token: bob.user_id}), encoding="utf-8")
    settings = {
        "NEXT_TELEMETRY_DISABLED": "1",
        "NODE_ENV": "production",
        "UPLOAD_API_BUCKET": info.bucket,
        "UPLOAD_API_S3_ENDPOINT": info.s3_endpoint,
        "UPLOAD_API_S3_REGION": "us-east-1",
        "UPLOAD_API_S3_ACCESS_KEY": info.access_key,
        "UPLOAD_API_S3_SECRET_KEY": info.secret_key,
        "UPLOAD_API_TOKENS_FILE": str(tokens),
        **env,
    }
    log = workdir / "next.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:  # a file, not a pipe: a chatty server never blocks on a full pipe
        process = subprocess.Popen(
            [str(NEXT), "start", "-H", "127.0.0.1", "-p", str(port)],
            cwd=ROUTE_DIR,
            env={**os.environ, **settings},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(process, url, log)
        yield NextRoute(url, process.pid, log, alice, bob, tokens)
    finally:
        _stop(process)
