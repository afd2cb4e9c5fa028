"""Clients that stall, drip, or crowd: the API cuts them within its configured limits and stays up.

Everything here is real sockets against a real API server on loopback. Nothing waits for time to
pass: a test waits for the server to act (a socket becoming readable, a gauge in /metrics), with a
generous fail-safe far above the small limits the server is configured with.
"""

from __future__ import annotations

import re
import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.api import CHUNKED, PRESIGNED, Api
from tests.support.api_servers import SECOND_USER_TOKEN, api_server

FAIL_SAFE = 30.0  # seconds; far above every limit configured below


@contextmanager
def raw_connection(url: str) -> Iterator[socket.socket]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=FAIL_SAFE)
    try:
        yield sock
    finally:
        sock.close()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the fail-safe raises if it never does)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def metric(url: str, name: str, labels: str = "") -> float:
    text = requests.get(url + "/metrics", timeout=FAIL_SAFE).text
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_for_metric(url: str, name: str, value: float) -> None:
    """Polls /metrics until the server reports ``value`` (a readiness check, not a sleep)."""
    for _ in range(10_000):
        if metric(url, name) == value:
            return
    raise AssertionError(f"{name} never became {value}")


def head(path: str, token: str, length: int, content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.fixture(scope="module")
def strict_api(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_server(
        sandbox, tmp_path_factory.mktemp("strict"), header_timeout_seconds=0.3, body_stall_seconds=0.3
    ) as url:
        yield url


def test_a_connection_that_sends_nothing_is_cut(strict_api: str) -> None:
    before = metric(strict_api, "upload_api_connections_cut_total", '{reason="headers"}')
    with raw_connection(strict_api) as sock:
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert metric(strict_api, "upload_api_connections_cut_total", '{reason="headers"}') == before + 1


def test_half_sent_headers_are_cut(strict_api: str, sandbox: Any) -> None:
    with raw_connection(strict_api) as sock:
        sock.sendall(f"POST {PRESIGNED} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {sandbox.token}\r\n".encode())
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_headers_dripped_a_byte_at_a_time_are_cut_though_bytes_keep_coming(strict_api: str) -> None:
    """Slowloris: every byte would reset an idle timer; the head's deadline counts from its start."""
    endless = b"GET /healthz HTTP/1.1\r\nHost: test\r\n" + b"X-Drip: " + b"a" * 100_000
    with raw_connection(strict_api) as sock:
        for byte in endless:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            readable, _, _ = select.select([sock], [], [], 0.01)  # the pace of the drip: until the server acts
            if readable:
                break
        else:
            raise AssertionError("the server never cut the dripping connection")
        try:
            answer: bytes | None = read_until_closed(sock)
        except ConnectionResetError:
            # Cut while the last dripped bytes were still unread on its side: the kernel turns that close into
            # a reset, which can discard the 408 before it is read. Cut is what matters; a 408, when it arrives.
            answer = None
        assert answer is None or answer.startswith(b"HTTP/1.1 408 "), answer


@pytest.mark.parametrize(
    ("path", "content_type"),
    [(PRESIGNED, "application/json"), (CHUNKED, "application/octet-stream"), (CHUNKED, "application/json")],
)
def test_a_stalled_body_is_cut_with_408(strict_api: str, sandbox: Any, path: str, content_type: str) -> None:
    before = metric(strict_api, "upload_api_connections_cut_total", '{reason="body"}')
    target = f"{path}?uploadId=u&s3Key=k&offset=0" if content_type.endswith("octet-stream") else path
    with raw_connection(strict_api) as sock:
        sock.sendall(head(target, sandbox.token, 1000, content_type) + b'{"action": "li')
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"stopped arriving" in answer and b"connection: close" in answer.lower()
    assert metric(strict_api, "upload_api_connections_cut_total", '{reason="body"}') == before + 1


def test_a_keep_alive_connection_serves_requests_within_the_limits(strict_api: str, sandbox: Any) -> None:
    """The deadlines cut stalls, not clients: a prompt client on one connection is served, request after request."""
    session = requests.Session()
    api = Api(strict_api, sandbox.token, session)
    for _ in range(3):
        api.ok(api.presigned({"action": "list"}))
    assert api.ok(api.capabilities())["actions"]


@contextmanager
def held_request(url: str, token: str) -> Iterator[None]:
    """A request whose body is still on its way: it holds its place among the requests in flight."""
    before = metric(url, "upload_api_requests_in_flight")
    with raw_connection(url) as sock:
        sock.sendall(head(PRESIGNED, token, 100) + b"{")
        wait_for_metric(url, "upload_api_requests_in_flight", before + 1)
        yield


def test_requests_in_flight_are_capped_per_user_with_429_and_retry_after(sandbox: Any, tmp_path: Path) -> None:
    with api_server(sandbox, tmp_path / "api", max_in_flight_per_user=2, retry_after_seconds=7) as url:
        alice, bob = Api(url, sandbox.token), Api(url, SECOND_USER_TOKEN)
        with held_request(url, sandbox.token), held_request(url, sandbox.token):
            refused = alice.presigned({"action": "list"})
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "7" and "your limit" in refused.json()["error"]
            bob.ok(bob.presigned({"action": "list"}))  # another user is not held up
            assert requests.get(url + "/healthz", timeout=FAIL_SAFE).status_code == 200
        # The held requests ended (their clients left): alice is served again.
        wait_for_metric(url, "upload_api_requests_in_flight", 0)
        alice.ok(alice.presigned({"action": "list"}))
        assert metric(url, "upload_api_requests_refused_busy_total", '{cap="user"}') == 1


def test_requests_in_flight_are_capped_in_total(sandbox: Any, tmp_path: Path) -> None:
    with api_server(sandbox, tmp_path / "api", max_in_flight=2, max_in_flight_per_user=5) as url:
        bob = Api(url, SECOND_USER_TOKEN)
        with held_request(url, sandbox.token), held_request(url, sandbox.token):
            refused = bob.presigned({"action": "list"})
            assert refused.status_code == 429 and "this server's limit" in refused.json()["error"]
            assert int(refused.headers["Retry-After"]) >= 1
            anonymous = requests.post(url + PRESIGNED, json={"action": "list"}, timeout=FAIL_SAFE)
            assert anonymous.status_code == 429
        wait_for_metric(url, "upload_api_requests_in_flight", 0)
        bob.ok(bob.presigned({"action": "list"}))


@pytest.mark.allow_log(r"uvicorn\.error: Invalid HTTP request received")
def test_a_request_head_growing_past_the_size_limit_is_refused(sandbox: Any, tmp_path: Path) -> None:
    settings = {"max_header_bytes": 8 * 1024, "header_timeout_seconds": 600}  # the size limit, not the clock
    with api_server(sandbox, tmp_path / "api", **settings) as url, raw_connection(url) as sock:
        # Still incomplete past the limit: h11 gives up on it at once, without waiting for the deadline.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 9 * 1024)
        assert read_until_closed(sock).startswith(b"HTTP/1.1 400 ")
