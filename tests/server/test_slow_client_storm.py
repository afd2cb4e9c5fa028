"""A storm of slow clients against ``desktop-uploader serve`` in its own process: all are cut, memory stays flat.

100 authenticated chunk requests send their head and part of their body, then stall; 2,000 more
connections send half a request head, without a token, then stall. The server, with 1-second
header and body-stall deadlines, must close every one of them (each after a 408), go on answering,
and hold no more than 100 MB more than it did idle. The per-user cap on requests in flight is set to
admit all 100 stalled requests, so that it is the deadline, not a 429, that ends each of them.

The numbers (idle and peak RSS, how long the cut took) are printed, not asserted: speed claims are no
test's business. Every wait is for the server to act, bounded by a generous fail-safe.
"""

from __future__ import annotations

import re
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psutil
import pytest
import requests

from desktop_uploader.engine.limits import MiB
from tests.support.api import CHUNKED, Api
from tests.support.serve_process import serve_process
from tests.support.waiting import deadline_after, wait_until

STALLED_BODIES = 100
HALF_HEADS = 2_000
DEADLINE = 1.0  # the server's header and body-stall deadlines, in seconds
FAIL_SAFE = 120.0  # seconds (times the waiting module's slack) before a test that hangs gives up
FDS_NEEDED = STALLED_BODIES + HALF_HEADS + 512  # plus pytest's, the sandbox's and the libraries' own
RSS_GROWTH_LIMIT = 100 * 1000 * 1000
CHUNK_BYTES = 4 * MiB  # the declared chunk; 64 KiB of it is sent
HALF_HEAD = f"POST {CHUNKED} HTTP/1.1\r\nHost: test\r\nContent-Type: application/oct".encode()


@pytest.fixture
def enough_fds() -> Iterator[None]:
    """Room for every socket here and in the server (a child inherits the limit): raise the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = (1 << 16) if hard == resource.RLIM_INFINITY else hard
    if ceiling < FDS_NEEDED:
        pytest.skip(f"needs {FDS_NEEDED} open files; the hard RLIMIT_NOFILE here is {hard}")
    if soft != resource.RLIM_INFINITY and soft < FDS_NEEDED:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(ceiling, 2 * FDS_NEEDED), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def metric(url: str, name: str) -> float:
    text = requests.get(url + "/metrics", timeout=30).text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def cuts(url: str) -> tuple[float, float]:
    """Connections the server has cut: (head too slow, body stalled)."""
    name = "upload_api_connections_cut_total"
    return metric(url, name + '{reason="headers"}'), metric(url, name + '{reason="body"}')


def stalled_chunk_head(token: str, upload_id: str, key: str) -> bytes:
    return (
        f"POST {CHUNKED}?uploadId={quote(upload_id)}&s3Key={quote(key)}&offset=0 HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {CHUNK_BYTES}\r\n\r\n"
    ).encode() + bytes(64 * 1024)


def opened(url: str, payload: bytes) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=FAIL_SAFE)
    sock.sendall(payload)
    sock.setblocking(False)
    return sock


class Storm:
    """Sockets to watch until the server closes each one, sampling the server's RSS as it goes."""

    def __init__(self, server: psutil.Process) -> None:
        self.server = server
        self.selector = selectors.DefaultSelector()  # epoll: no FD_SETSIZE ceiling at 1024
        self.answers: dict[socket.socket, bytes] = {}
        self.open: set[socket.socket] = set()
        self.peak_rss = 0
        self.peak_fds = 0

    def add(self, sock: socket.socket) -> None:
        self.selector.register(sock, selectors.EVENT_READ)
        self.answers[sock] = b""
        self.open.add(sock)
        if len(self.answers) % 100 == 0:
            self.sample()

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, self.server.memory_info().rss)
        self.peak_fds = max(self.peak_fds, self.server.num_fds())

    def until_all_closed(self) -> None:
        fail_safe = deadline_after(FAIL_SAFE)
        while self.open:
            assert time.monotonic() < fail_safe, f"{len(self.open)} of {len(self.answers)} connections still open"
            self.sample()
            for key, _ in self.selector.select(timeout=1.0):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    self.answers[sock] += data
                    continue
                self.selector.unregister(sock)
                self.open.discard(sock)
                sock.close()
        self.selector.close()


def established_to(server: psutil.Process, port: int) -> int:
    return sum(
        1
        for c in server.net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def test_thousands_of_stalled_clients_are_all_cut_and_memory_stays_bounded(
    enough_fds: None, sandbox: Any, tmp_path: Path
) -> None:
    settings = {
        "header_timeout_seconds": DEADLINE,
        "body_stall_seconds": DEADLINE,
        "max_in_flight": 2 * STALLED_BODIES,
        "max_in_flight_per_user": STALLED_BODIES,  # all 100 admitted: the deadline ends them, not a 429
    }
    with serve_process(sandbox, tmp_path / "serve", **settings) as served:
        url, port = served.url, urlsplit(served.url).port or 0
        server = psutil.Process(served.pid)
        api = Api(url, sandbox.token)
        api.session.headers["Connection"] = "close"  # no kept-alive connection of ours among the server's
        started = api.ok(api.chunked({"action": "start", "fileName": "storm.safetensors", "fileSize": 3 * CHUNK_BYTES}))
        upload_id, key = started["uploadId"], started["s3Key"]
        chunk_head = stalled_chunk_head(sandbox.token, upload_id, key)

        # Warm-up: one of each kind of cut, so that idle RSS includes the code that serves them.
        warm_up = Storm(server)
        warm_up.add(opened(url, chunk_head))
        warm_up.add(opened(url, HALF_HEAD))
        warm_up.until_all_closed()
        assert requests.get(url + "/healthz", timeout=30).status_code == 200
        wait_until(lambda: established_to(server, port) == 0, 30, "the warm-up's connections to close")
        idle_rss = server.memory_info().rss
        idle_fds = server.num_fds()
        headers_before, bodies_before = cuts(url)

        storm = Storm(server)
        began = time.monotonic()
        for _ in range(STALLED_BODIES):
            storm.add(opened(url, chunk_head))
        for _ in range(HALF_HEADS):
            storm.add(opened(url, HALF_HEAD))
        all_open = time.monotonic()
        storm.until_all_closed()
        all_cut = time.monotonic()

        assert len(storm.answers) == STALLED_BODIES + HALF_HEADS
        not_408 = [a[:60] for a in storm.answers.values() if not a.startswith(b"HTTP/1.1 408 ")]
        assert not not_408, f"{len(not_408)} connections were not answered 408, e.g. {not_408[:3]}"
        assert cuts(url) == (headers_before + HALF_HEADS, bodies_before + STALLED_BODIES)
        assert metric(url, 'upload_api_requests_refused_busy_total{cap="user"}') == 0
        assert metric(url, 'upload_api_requests_refused_busy_total{cap="total"}') == 0

        # Still serving, holding nothing of the storm: no connection, no request, no staged byte.
        assert requests.get(url + "/healthz", timeout=30).status_code == 200
        assert metric(url, "upload_api_requests_in_flight") == 0
        wait_until(lambda: established_to(server, port) == 0, 30, "the server to hold no client connection")
        assert api.ok(api.chunked({"action": "status", "uploadId": upload_id, "s3Key": key}))["received"] == 0
        after_rss = server.memory_info().rss
        after_fds = server.num_fds()
        api.ok(api.chunked({"action": "abort", "uploadId": upload_id, "s3Key": key}))

        print(
            f"\nidle RSS {idle_rss / 1e6:.1f} MB, peak sampled {storm.peak_rss / 1e6:.1f} MB, "
            f"after the storm {after_rss / 1e6:.1f} MB; server fds idle {idle_fds}, peak {storm.peak_fds}, "
            f"after {after_fds}; opening {STALLED_BODIES + HALF_HEADS} connections took {all_open - began:.2f} s, "
            f"the last was cut {all_cut - all_open:.2f} s after they were all open ({all_cut - began:.2f} s in all)"
        )
        assert after_rss - idle_rss <= RSS_GROWTH_LIMIT
        problems = [line for line in served.log_text().splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) ", line)]
        assert not problems, problems[:5]
