"""The engine's connections: a dropped part's buffered bytes are thrown away, and few wait unsent.

On a 5 MB/s uplink a part that Auto sheds, or a pause cuts, used to leave megabytes in its socket's
send buffer, and the kernel went on sending them after the close: seconds of the link spent on bytes
storage throws away (benchmarks/capbench.py measured 15 s of a 5 MB/s cap per run). These tests open a
connection with the socket options of the engine's real HTTP adapter against a loopback peer that
reads nothing, so what the kernel does with the buffer is all there is to see.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from urllib3.connection import HTTPConnection

from desktop_uploader.engine.http import UNSENT_LOW_WATER, new_session


@pytest.fixture
def silent_peer() -> Iterator[socket.socket]:
    """A listening socket whose connections are never read until the test says so."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def engine_connection(server: socket.socket) -> HTTPConnection:
    """A connection made as the engine makes them: the options of a session's own adapter."""
    host, port = server.getsockname()
    adapter = new_session().get_adapter(f"http://{host}:{port}/")
    pool_options = adapter.poolmanager.connection_pool_kw  # type: ignore[attr-defined]
    options = pool_options.get("socket_options", HTTPConnection.default_socket_options)
    connection = HTTPConnection(host, port, socket_options=options)
    connection.connect()
    return connection


def fill_until_full(sock: socket.socket) -> int:
    """Hand the kernel bytes until it takes no more; how many it took."""
    sock.setblocking(False)
    handed = 0
    block = b"\0" * 64 * 1024
    try:
        while True:
            handed += sock.send(block)
    except BlockingIOError:
        return handed


def drain(peer: socket.socket) -> tuple[int, bool]:
    """Read the peer's side to the end: the bytes that arrived, and whether it ended in a reset."""
    peer.settimeout(30)  # a bound for a broken kernel, not a timing: both endings arrive at once
    received = 0
    try:
        while chunk := peer.recv(64 * 1024):
            received += len(chunk)
    except ConnectionResetError:
        return received, True
    return received, False


def test_closing_a_connection_mid_body_discards_what_its_buffers_hold(silent_peer: socket.socket) -> None:
    connection = engine_connection(silent_peer)
    peer, _ = silent_peer.accept()
    assert connection.sock is not None
    handed = fill_until_full(connection.sock)
    connection.close()  # what urllib3 does when a part's body stops (shed, paused, cancelled)
    received, reset = drain(peer)
    peer.close()
    assert reset, "the close was graceful: the kernel would send the whole buffer to storage"
    assert received < handed / 2, f"{received} of {handed} bytes crossed after the part was dropped"


@pytest.mark.skipif(not hasattr(socket, "TCP_NOTSENT_LOWAT"), reason="the kernel has no TCP_NOTSENT_LOWAT")
def test_a_connection_keeps_few_bytes_waiting_unsent(silent_peer: socket.socket) -> None:
    """Bytes the kernel holds unsent count as "sent" in progress and are lost by a pause: keep them few."""
    connection = engine_connection(silent_peer)
    peer, _ = silent_peer.accept()
    assert connection.sock is not None
    low_water = connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT)
    connection.close()
    peer.close()
    assert low_water == UNSENT_LOW_WATER
