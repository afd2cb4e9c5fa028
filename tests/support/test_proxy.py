"""The test proxy, between a real ``requests`` client and a real (tiny, threaded) HTTP/1.1 server.

The proxy is only useful if it is invisible when told to be and breaks things exactly as documented when
told to, so every fault is checked from the client's side (what ``requests`` raises, or what a raw socket
sees: RST versus FIN) and, where it matters, from the server's side (what really arrived).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.proxy import (
    Delay,
    Proxy,
    RequestInfo,
    ResetRequest,
    ResetResponse,
    Respond,
    SlowBody,
    Stall,
    Truncate,
)
from tests.support.waiting import wait_until

MiB = 1024 * 1024


# --------------------------------------------------------------------------------------------------------------
# A real upstream server


@dataclass(frozen=True)
class Seen:
    """One request as the upstream received it."""

    method: str
    target: str
    headers: dict[str, str]
    length: int
    sha256: str
    complete: bool
    peer_port: int


def pattern(size: int) -> bytes:
    """Deterministic, non-repeating-looking content, so a shifted or dropped chunk shows."""
    block = hashlib.sha256(b"proxy-test").digest() * 2048  # 64 KiB
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += counter.to_bytes(4, "big") + block[4:]
        counter += 1
    return bytes(out[:size])


class UpstreamServer(ThreadingHTTPServer):
    """Records what arrived; routes: /download?size=N, /chunked?pieces=N&size=N, /early-reject (413 without
    reading the body), /reset-mid-response (RST after a few body bytes); anything else echoes as JSON."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def seen_paths(self) -> list[str]:
        with self.lock:
            return [s.target for s in self.seen]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The /reset route breaks its own socket on purpose; no tracebacks for that."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "100 Continue" for Expect
    disable_nagle_algorithm = True  # else each response waits ~40 ms for a delayed ACK
    server: UpstreamServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/early-reject":
            self._send(413, b"too large", {"Connection": "close"})
            self.close_connection = True
            return
        length, digest, complete = self._read_body()
        with self.server.lock:
            self.server.seen.append(
                Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    length,
                    digest,
                    complete,
                    self.client_address[1],
                )
            )
        if not complete:
            self.close_connection = True
            return
        if url.path == "/download":
            self._send(200, pattern(int(query["size"])), {"Content-Type": "application/octet-stream"})
        elif url.path == "/chunked":
            self._send_chunked(int(query["pieces"]), int(query["size"]))
        elif url.path == "/reset-mid-response":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
        else:
            echo = {
                "method": self.command,
                "target": self.path,
                "headers": dict(self.headers.items()),
                "length": length,
                "sha256": digest,
            }
            self._send(200, json.dumps(echo).encode(), {"Content-Type": "application/json", "X-Upstream": "yes"})

    def _read_body(self) -> tuple[int, str, bool]:
        digest = hashlib.sha256()
        length = 0
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b""):
                            pass
                        return length, digest.hexdigest(), True
                    data = self.rfile.read(size)
                    self.rfile.readline()
                    digest.update(data)
                    length += len(data)
                    if len(data) < size:
                        return length, digest.hexdigest(), False
            expected = int(self.headers.get("Content-Length", "0"))
            while length < expected:
                data = self.rfile.read(min(MiB, expected - length))
                if not data:
                    break
                digest.update(data)
                length += len(data)
            return length, digest.hexdigest(), length == expected
        except (OSError, ValueError):
            return length, digest.hexdigest(), False

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_chunked(self, pieces: int, size: int) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        body = pattern(pieces * size)
        for i in range(pieces):
            piece = body[i * size : (i + 1) * size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(upstream: UpstreamServer) -> Iterator[Proxy]:
    with Proxy.start(upstream.url) as started:
        yield started
    assert not started.plan_errors


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``check`` to hold (an exception counts as "not yet")."""
    wait_until(check, timeout, errors_mean_not_yet=True)


def only(method: str, action: Any) -> Callable[[RequestInfo], Any]:
    return lambda info: action if info.method == method else None


def raw_exchange(proxy: Proxy, request: bytes) -> tuple[bytes, BaseException | None]:
    """Send raw bytes and read until the proxy ends the connection: what arrived, and the error that ended it
    (None for a clean EOF)."""
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        sock.sendall(request)
        received = bytearray()
        try:
            while data := sock.recv(65536):
                received += data
        except OSError as exc:
            return bytes(received), exc
        return bytes(received), None


# --------------------------------------------------------------------------------------------------------------
# Transparent forwarding


def test_forwarding_is_transparent_and_keeps_the_host_header(proxy: Proxy, upstream: UpstreamServer) -> None:
    response = requests.get(f"{proxy.url}/echo/a%20b?x=1&y=", headers={"X-Custom": "Value"}, timeout=5)

    assert response.status_code == 200
    assert response.headers["X-Upstream"] == "yes"
    echo = response.json()
    assert echo["target"] == "/echo/a%20b?x=1&y="
    assert echo["headers"]["Host"] == proxy.address  # what a presigned URL for the proxy signs
    assert echo["headers"]["X-Custom"] == "Value"
    [record] = proxy.stats.records()
    assert (record.method, record.path, record.query) == ("GET", "/echo/a b", {"x": "1", "y": ""})
    assert (record.status, record.forwarded, record.action) == (200, True, "Forward")

    with requests.Session() as session:  # HEAD: headers of a body that is not there, and framing stays right
        head = session.head(f"{proxy.url}/download?size=1000", timeout=5)
        assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "1000", b"")
        assert session.get(f"{proxy.url}/download?size=10", timeout=5).content == pattern(10)
    assert proxy.stats.connections() == 2


def test_a_32_mib_put_is_streamed_and_arrives_intact(proxy: Proxy, upstream: UpstreamServer, tmp_path: Path) -> None:
    body = os.urandom(32 * MiB)
    path = tmp_path / "part.bin"
    path.write_bytes(body)
    del body

    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            response = requests.put(f"{proxy.url}/bucket/key?partNumber=1", data=handle, timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 200
    assert response.json()["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert response.json()["length"] == 32 * MiB
    assert peak < 8 * MiB  # client, proxy and server together: nobody held the whole body
    assert proxy.body_bytes("PUT") == proxy.stats.sent_body_bytes("PUT") == 32 * MiB
    assert proxy.stats.requests("PUT") == 1


def test_keep_alive_serves_many_requests_over_one_connection(proxy: Proxy, upstream: UpstreamServer) -> None:
    with requests.Session() as session:
        for i in range(5):
            assert session.get(f"{proxy.url}/echo/{i}", timeout=5).status_code == 200
            assert session.put(f"{proxy.url}/put/{i}", data=b"x" * 1000, timeout=5).json()["length"] == 1000

    assert proxy.stats.connections() == 1
    assert proxy.stats.requests() == 10
    assert len({seen.peer_port for seen in upstream.seen}) == 1  # one upstream connection, reused


def test_chunked_bodies_in_both_directions(proxy: Proxy, upstream: UpstreamServer) -> None:
    pieces = [pattern(100_000)[i:] for i in range(10)]

    sent = requests.put(f"{proxy.url}/chunked-upload", data=iter(pieces), timeout=5)
    received = requests.get(f"{proxy.url}/chunked?pieces=7&size=50000", timeout=5)

    assert upstream.seen[0].headers["transfer-encoding"] == "chunked"
    assert sent.json()["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert received.headers["Transfer-Encoding"] == "chunked"
    assert received.content == pattern(7 * 50_000)
    assert proxy.body_bytes("PUT") == sum(map(len, pieces))


def test_expect_100_continue_is_relayed_from_the_upstream(proxy: Proxy, upstream: UpstreamServer) -> None:
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        head = f"PUT /expect HTTP/1.1\r\nHost: {proxy.address}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        sock.sendall(head.encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 100")
        sock.sendall(b"hello")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert upstream.seen[0].sha256 == hashlib.sha256(b"hello").hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Counting


def test_counts_requests_and_body_bytes_per_method(proxy: Proxy, upstream: UpstreamServer) -> None:
    requests.put(f"{proxy.url}/bucket/a%C3%A9?partNumber=3&uploadId=abc", data=b"p" * 1000, timeout=5)
    requests.post(f"{proxy.url}/bucket/a?uploads", data=b"q" * 10, timeout=5)
    requests.get(f"{proxy.url}/bucket/a", timeout=5)

    stats = proxy.stats
    assert (stats.requests("PUT"), stats.requests("POST"), stats.requests("GET"), stats.requests()) == (1, 1, 1, 3)
    assert (stats.body_bytes("PUT"), stats.body_bytes("post"), stats.body_bytes()) == (1000, 10, 1010)
    assert proxy.body_bytes() == 1000
    put, post, get = stats.records()
    assert (put.path, put.query, put.body_bytes, put.status) == (
        "/bucket/aé",
        {"partNumber": "3", "uploadId": "abc"},
        1000,
        200,
    )
    assert (post.query, post.body_bytes) == ({"uploads": ""}, 10)
    assert (get.method, get.body_bytes, get.forwarded) == ("GET", 0, True)
    assert [r.seq for r in stats.records()] == [1, 2, 3]

    proxy.reset()
    assert (stats.requests(), stats.body_bytes(), stats.sent_body_bytes(), stats.records()) == (0, 0, 0, [])


# --------------------------------------------------------------------------------------------------------------
# Faults


def test_reset_request_cuts_the_upload_and_is_not_counted_as_forwarded(proxy: Proxy, upstream: UpstreamServer) -> None:
    proxy.set_fault_plan(only("PUT", ResetRequest(after_bytes=256 * 1024)))

    with pytest.raises(requests.ConnectionError):
        requests.put(f"{proxy.url}/bucket/part", data=pattern(MiB), timeout=5)

    eventually(lambda: len(upstream.seen) == 1)
    assert (upstream.seen[0].length, upstream.seen[0].complete) == (256 * 1024, False)
    assert (proxy.stats.requests("PUT"), proxy.body_bytes("PUT")) == (0, 0)
    assert proxy.stats.sent_body_bytes("PUT") == 256 * 1024
    [record] = proxy.stats.records()
    assert (record.forwarded, record.body_bytes, record.status, record.action) == (
        False,
        256 * 1024,
        None,
        "ResetRequest",
    )

    # A raw client sees an RST, not an orderly close; a body shorter than after_bytes never completes upstream.
    head = f"PUT /small HTTP/1.1\r\nHost: {proxy.address}\r\nContent-Length: 10\r\n\r\n".encode()
    received, error = raw_exchange(proxy, head + b"0123456789")
    assert (received, type(error)) == (b"", ConnectionResetError)
    eventually(lambda: len(upstream.seen) == 2)
    assert (upstream.seen[1].length, upstream.seen[1].complete) == (9, False)

    # A request without a body is not forwarded at all (its head alone would be complete).
    proxy.set_fault_plan(lambda info: ResetRequest() if info.method == "GET" else None)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy.url}/no-body", timeout=5)
    assert "/no-body" not in upstream.seen_paths()

    proxy.set_fault_plan(None)
    assert requests.put(f"{proxy.url}/bucket/part", data=b"ok", timeout=5).status_code == 200


def test_reset_response_loses_the_answer_after_the_server_did_the_work(proxy: Proxy, upstream: UpstreamServer) -> None:
    proxy.set_fault_plan(only("PUT", ResetResponse(after_bytes=0)))
    with pytest.raises(requests.ConnectionError):
        requests.put(f"{proxy.url}/bucket/part", data=b"x" * 5000, timeout=5)
    assert upstream.seen[0].complete
    assert (proxy.stats.requests("PUT"), proxy.body_bytes("PUT")) == (1, 5000)
    assert proxy.stats.records()[0].status == 200

    proxy.set_fault_plan(only("GET", ResetResponse(after_bytes=200)))
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.get(f"{proxy.url}/download?size=100000", timeout=5)
    received, error = raw_exchange(
        proxy, f"GET /download?size=100000 HTTP/1.1\r\nHost: {proxy.address}\r\n\r\n".encode()
    )
    assert isinstance(error, ConnectionResetError)
    assert received.startswith(b"HTTP/1.1 200") or received == b""
    assert len(received) <= 200


def test_stall_drives_the_client_into_its_read_timeout(proxy: Proxy, upstream: UpstreamServer) -> None:
    proxy.set_fault_plan(only("PUT", Stall(seconds=5)))

    with pytest.raises(requests.exceptions.ReadTimeout):  # an answer after the stall would be no timeout
        requests.put(f"{proxy.url}/bucket/part", data=pattern(MiB), timeout=(2, 0.3))

    assert upstream.seen == []
    eventually(lambda: proxy.active_connections == 0)  # the client left: the stall ends with it


def test_stop_returns_promptly_while_a_stall_is_in_progress(proxy: Proxy, upstream: UpstreamServer) -> None:
    proxy.set_fault_plan(lambda info: Stall(seconds=60) if info.path == "/stall" else SlowBody(bytes_per_second=10))
    outcomes: dict[str, BaseException] = {}

    def client(path: str) -> None:
        try:
            requests.get(f"{proxy.url}{path}", timeout=30)
        except requests.RequestException as exc:
            outcomes[path] = exc

    threads = [threading.Thread(target=client, args=(path,)) for path in ("/stall", "/download?size=1000")]
    for thread in threads:
        thread.start()
    eventually(lambda: proxy.stats.records("GET")[0].status == 200)  # the slow body is under way
    eventually(lambda: proxy.active_connections == 2)  # and so is the stall

    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 30  # far less than the 60 s stall it cut short (a bound, not a speed)
    for thread in threads:
        thread.join(5)
    assert isinstance(outcomes["/stall"], requests.ConnectionError)
    assert isinstance(
        outcomes["/download?size=1000"], (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
    )
    assert not [t for t in threading.enumerate() if t.name.startswith(f"proxy:{proxy.port}:")]
    proxy.stop()  # idempotent


def test_truncate_closes_cleanly_after_part_of_the_body(proxy: Proxy, upstream: UpstreamServer) -> None:
    proxy.set_fault_plan(only("GET", Truncate(keep_bytes=1000)))

    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        requests.get(f"{proxy.url}/download?size=100000", timeout=5)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        requests.get(f"{proxy.url}/chunked?pieces=4&size=10000", timeout=5)

    received, error = raw_exchange(
        proxy, f"GET /download?size=100000 HTTP/1.1\r\nHost: {proxy.address}\r\n\r\n".encode()
    )
    assert error is None  # FIN, not RST
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Length: 100000" in head
    assert body == pattern(100_000)[:1000]

    short = requests.get(f"{proxy.url}/download?size=500", timeout=5)  # not longer than keep_bytes: untouched
    assert short.content == pattern(500)


def test_slow_body_and_delay_take_their_time_and_keep_the_content(proxy: Proxy, upstream: UpstreamServer) -> None:
    proxy.set_fault_plan(lambda info: SlowBody(bytes_per_second=100_000) if info.path == "/download" else Delay(0.4))

    started = time.monotonic()
    response = requests.get(f"{proxy.url}/download?size=50000", timeout=5)
    assert response.content == pattern(50_000)
    assert time.monotonic() - started >= 0.4

    started = time.monotonic()
    assert requests.put(f"{proxy.url}/delayed", data=b"abc", timeout=5).json()["length"] == 3
    assert time.monotonic() - started >= 0.4


def test_respond_answers_without_the_upstream_and_keeps_the_connection(proxy: Proxy, upstream: UpstreamServer) -> None:
    proxy.set_fault_plan(only("PUT", Respond(503, b"slow down", {"Retry-After": "1"})))

    with requests.Session() as session:
        response = session.put(f"{proxy.url}/bucket/part", data=pattern(MiB), timeout=5)
        assert (response.status_code, response.content, response.headers["Retry-After"]) == (503, b"slow down", "1")
        assert session.get(f"{proxy.url}/after", timeout=5).status_code == 200

    assert upstream.seen_paths() == ["/after"]
    assert proxy.stats.connections() == 1
    record = proxy.stats.records("PUT")[0]
    assert (record.status, record.forwarded, record.body_bytes, record.action) == (503, False, 0, "Respond")

    # A client waiting for "100 Continue" (botocore) is answered at once, as S3 would, with a reason phrase.
    head = f"PUT /x HTTP/1.1\r\nHost: {proxy.address}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    received, error = raw_exchange(proxy, head.encode())
    assert error is None
    assert received.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert received.endswith(b"\r\n\r\nslow down")


def test_down_refuses_connections_and_up_comes_back_on_the_same_port(proxy: Proxy, upstream: UpstreamServer) -> None:
    with requests.Session() as session:
        assert session.get(f"{proxy.url}/before", timeout=5).status_code == 200
        proxy.down()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((proxy.host, proxy.port), timeout=2).close()
        with pytest.raises(requests.ConnectionError):
            session.get(f"{proxy.url}/while-down", timeout=2)  # the kept-alive connection was dropped too
        proxy.up()
        assert session.get(f"{proxy.url}/after", timeout=5).status_code == 200

    proxy.down(seconds=0.3)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy.url}/while-down", timeout=2)
    eventually(lambda: requests.get(f"{proxy.url}/back", timeout=2).status_code == 200, timeout=3)
    assert "/while-down" not in upstream.seen_paths()


# --------------------------------------------------------------------------------------------------------------
# Robustness


def test_garbage_and_vanishing_clients_do_not_hurt_the_proxy(proxy: Proxy, upstream: UpstreamServer) -> None:
    received, _ = raw_exchange(proxy, b"THIS IS NOT HTTP\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400")

    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:  # leaves mid-body
        sock.sendall(f"PUT /gone HTTP/1.1\r\nHost: {proxy.address}\r\nContent-Length: 1000000\r\n\r\n".encode())
        sock.sendall(b"x" * 1000)
    eventually(lambda: proxy.active_connections == 0)
    assert proxy.stats.requests() == 0

    assert requests.get(f"{proxy.url}/still-fine", timeout=5).status_code == 200


def test_upstream_failures_reach_the_client_as_they_would_directly(proxy: Proxy, upstream: UpstreamServer) -> None:
    # An upstream that refuses a body early (and closes) is heard: the client gets its status.
    response = requests.put(f"{proxy.url}/early-reject", data=pattern(4 * MiB), timeout=5)
    assert (response.status_code, response.content) == (413, b"too large")

    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.get(f"{proxy.url}/reset-mid-response", timeout=5)

    def broken_plan(info: RequestInfo) -> None:
        raise RuntimeError("bug in a plan")

    proxy.set_fault_plan(broken_plan)
    assert requests.get(f"{proxy.url}/still-fine", timeout=5).status_code == 200
    assert [str(e) for e in proxy.plan_errors] == ["bug in a plan"]
    proxy.plan_errors.clear()


def test_an_unreachable_upstream_is_a_502(upstream: UpstreamServer) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = placeholder.getsockname()[1]
        with Proxy.start(f"http://127.0.0.1:{port}") as proxy:
            response = requests.put(f"{proxy.url}/x", data=b"abc", timeout=5)
    assert response.status_code == 502
    assert proxy.stats.records()[0].status == 502
