"""A real HAProxy in front of API instances on loopback: round robin, health checks on /healthz.

Started in the foreground (``-db``) as a child of the test, stopped by its pid. Its port is chosen
by binding port 0 and releasing it just before HAProxy binds it, so a start that loses that race is
tried again on another port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import requests

BINARY = shutil.which("haproxy") or ""
# Stopping HAProxy can cut a /healthz check it has half sent (every 500 ms), and the instance then logs
# this; a busy make-test lane once hit it at a test's teardown. Tests behind HAProxy allow it.
CHECK_CUT_AT_STOP = r"^WARNING uvicorn\.error: Invalid HTTP request received\.$"

_CONFIG = """\
global
    maxconn 512
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout check 10s
    retries 3
    option redispatch
frontend api
    bind 127.0.0.1:{port}
    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /healthz
{servers}
"""


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    for _ in range(2_000):
        if process.poll() is not None:
            return False
        try:
            if requests.get(url + "/healthz", timeout=5).status_code == 200:
                return True
        except requests.ConnectionError:
            continue
    return False


@contextmanager
def haproxy(workdir: Path, backends: list[str]) -> Iterator[str]:
    """The URL of an HAProxy balancing round-robin over ``backends`` (URLs of API instances)."""
    workdir.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(
        # Lenient checks: on a busy machine one slow /healthz must not take a live instance out of the
        # rotation (tests count on every instance being picked). A stopped one is caught by the failed
        # connection itself: ``retries`` and ``option redispatch`` send the request elsewhere.
        f"    server i{n} {urlsplit(url).netloc} check inter 500ms fall 3 rise 1"
        for n, url in enumerate(backends)
    )
    for _ in range(5):
        port = _free_port()
        config = workdir / "haproxy.cfg"
        config.write_text(_CONFIG.format(port=port, servers=servers), encoding="utf-8")
        log = open(workdir / "haproxy.log", "wb")  # noqa: SIM115 - closed below, after the process
        process = subprocess.Popen([BINARY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            if _ready(url, process):
                yield url
                return
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()
    raise RuntimeError(f"HAProxy did not start; see {workdir / 'haproxy.log'}")
