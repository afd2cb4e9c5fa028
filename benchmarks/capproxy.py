"""A bandwidth cap on loopback: a TCP proxy whose upload direction shares one token bucket.

Why a proxy and not the WAN lab: the lab's emulator (linkemu.py) can cap a link, but it runs the
discard sink in a network namespace, and the cap scenario needs the sandbox SeaweedFS (stored
bytes, list-parts after a pause); the lab also holds a machine-wide lock that other runs need.
So every client (ours, s5cmd, boto3) reaches storage through this proxy, and all bytes they send,
over all their connections, leave it at ``--rate`` bytes per second at most: one capped uplink.
Answers (server to client) are not capped: an upload's bottleneck is its uplink.

The proxy reads from a client only as tokens allow, in blocks of ``BLOCK`` bytes, so what waits
behind the cap sits in the client's socket buffer and the proxy's receive buffer (set to
``--queue`` bytes, the "router queue"): bytes a client counts as sent before storage has them,
as on a real capped link.

Run: ``python -m benchmarks.capproxy --upstream 127.0.0.1:8333 --rate 5e6``; prints one JSON line
``{"port": N}`` when listening, proxies until stdin closes or SIGINT/SIGTERM, then prints its
counters as a JSON line; a ``stats`` line on stdin prints them so far.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BLOCK = 16 * 1024


@dataclass
class TokenBucket:
    """``rate`` bytes per second with at most ``burst`` saved up; ``take`` says how long to wait first.

    Pure arithmetic on a given clock reading, so it can be checked without timing: the caller
    sleeps the returned seconds (the bytes are accounted for already, so concurrent takers queue
    up behind one another instead of all waking at once).
    """

    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float | None = None

    def take(self, amount: int, now: float) -> float:
        if self.stamp is None:
            self.stamp, self.tokens = now, self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class Counters:
    up_bytes: int = 0
    down_bytes: int = 0
    connections: int = 0
    first_up: float | None = None
    last_up: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "up_bytes": self.up_bytes,
            "down_bytes": self.down_bytes,
            "connections": self.connections,
            "up_seconds": round(self.last_up - self.first_up, 3) if self.first_up and self.last_up else None,
        }


class CapProxy:
    """Listens on loopback; each connection goes to ``upstream`` with the upload direction capped."""

    def __init__(self, upstream: tuple[str, int], rate: float, queue: int, clock: Callable[[], float]) -> None:
        self.upstream = upstream
        self.bucket = TokenBucket(rate, burst=max(BLOCK, rate / 20))  # at most 50 ms of the cap at once
        self.queue = queue
        self.clock = clock
        self.counters = Counters()
        self._lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, queue)  # inherited by accepted sockets
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port: int = self.listener.getsockname()[1]

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        with self.counters.lock:
            self.counters.connections += 1
        answers = threading.Thread(target=self._pump, args=(server, client, False), daemon=True)
        answers.start()
        self._pump(client, server, True)
        answers.join()
        client.close()
        server.close()

    def _wait_turn(self, amount: int) -> None:
        with self._lock:
            wait = self.bucket.take(amount, self.clock())
        if wait > 0:
            time.sleep(wait)

    def _pump(self, source: socket.socket, sink: socket.socket, capped: bool) -> None:
        try:
            while True:
                data = source.recv(BLOCK if capped else 256 * 1024)
                if not data:
                    break
                if capped:
                    self._wait_turn(len(data))
                sink.sendall(data)
                with self.counters.lock:
                    if capped:
                        now = self.clock()
                        self.counters.up_bytes += len(data)
                        self.counters.first_up = self.counters.first_up or now
                        self.counters.last_up = now
                    else:
                        self.counters.down_bytes += len(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capproxy", description=__doc__)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the storage")
    parser.add_argument("--rate", type=float, default=5e6, help="bytes per second, all connections together")
    parser.add_argument("--queue", type=int, default=256 * 1024, help="receive buffer per connection, bytes")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    proxy = CapProxy((host, int(port)), args.rate, args.queue, time.monotonic)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=proxy.serve, daemon=True).start()

    def watch_stdin() -> None:
        # ``stats`` prints the counters so far (the driver takes one before and after each run);
        # end-of-file stops the proxy.
        for line in sys.stdin:
            if line.strip() == "stats":
                with proxy.counters.lock:
                    print(json.dumps(proxy.counters.as_dict()), flush=True)
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps({"port": proxy.port}), flush=True)
    stop.wait()
    proxy.listener.close()
    print(json.dumps(proxy.counters.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
