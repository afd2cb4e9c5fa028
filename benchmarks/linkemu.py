"""A userspace link emulator: two network namespaces joined through TUN devices by a Python forwarder.

This kernel has no netem, but TUN devices and namespaces work. The forwarder opens one TUN device
inside each namespace (``setns`` before each open: a TUN file belongs to the namespace it was
opened in) and moves IP packets between them, applying in each direction, in this order:

1. random loss (``--loss``, independent per packet),
2. a drop-tail queue of ``--queue`` bytes in front of
3. a serializer at ``--rate`` bits per second, then
4. a fixed propagation delay (``--delay`` seconds one way; RTT = 2 × delay).

Departure times are computed on arrival (``max(now, link free) + size / rate``), so the loop
wakes only to deliver, not per serialized packet. The TUN devices vanish when this process exits,
whatever the reason; the namespaces are the caller's to remove (see wan.py).

Addresses: 198.18.0.1 (namespace A) and 198.18.1.1 (namespace B), point to point. 198.18.0.0/15
is reserved for benchmarking (RFC 2544) and exists nowhere else on this machine.

Run: ``python -m benchmarks.linkemu --ns-a A --ns-b B --rate 50e6 --delay 0.025 --loss 0.01``;
prints one JSON line when the link is up, forwards until stdin closes or SIGINT/SIGTERM, then
prints its counters as a JSON line.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import math
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
ADDR_A = "198.18.0.1"
ADDR_B = "198.18.1.1"

_libc = ctypes.CDLL(None, use_errno=True)


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def open_tun(namespace: str, name: str) -> int:
    """A TUN device named ``name`` inside ``namespace`` (the fd stays bound to it)."""
    home = "/proc/self/ns/net"
    home_fd = os.open(home, os.O_RDONLY)
    try:
        setns(f"/run/netns/{namespace}")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    finally:
        if _libc.setns(home_fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "could not return to the original network namespace")
        os.close(home_fd)
    os.set_blocking(fd, False)
    return fd


def ip(namespace: str, *args: str) -> None:
    subprocess.run(["ip", "-n", namespace, *args], check=True, timeout=10)


class Direction:
    """One way of the link: loss, a drop-tail queue, a serializer and a delay line."""

    def __init__(self, rate: float, delay: float, loss: float, queue_bytes: int, rng: random.Random) -> None:
        self.rate = rate  # bits per second; 0 = unlimited
        self.delay = delay
        self.loss = loss
        self.queue_bytes = queue_bytes
        self.rng = rng
        self.link_free = 0.0
        self.queued: deque[tuple[float, int]] = deque()  # (departure, size) of packets not yet serialized
        self.queued_bytes = 0
        self.line: deque[tuple[float, bytes]] = deque()  # (delivery time, packet)
        self.passed = self.lost = self.tail_dropped = 0
        self.bytes_passed = 0

    def arrive(self, packet: bytes, now: float) -> None:
        if self.loss and self.rng.random() < self.loss:
            self.lost += 1
            return
        while self.queued and self.queued[0][0] <= now:
            self.queued_bytes -= self.queued.popleft()[1]
        size = len(packet)
        if self.queued_bytes + size > self.queue_bytes:
            self.tail_dropped += 1
            return
        start = max(now, self.link_free)
        departure = start + (size * 8 / self.rate if self.rate else 0.0)
        self.link_free = departure
        self.queued.append((departure, size))
        self.queued_bytes += size
        self.line.append((departure + self.delay, packet))

    def due(self, now: float) -> list[bytes]:
        ready = []
        while self.line and self.line[0][0] <= now:
            ready.append(self.line.popleft()[1])
        return ready

    def next_time(self) -> float | None:
        return self.line[0][0] if self.line else None

    def counters(self) -> dict[str, int]:
        return {
            "passed": self.passed,
            "bytes": self.bytes_passed,
            "lost": self.lost,
            "tail_dropped": self.tail_dropped,
        }


def forward(fd_a: int, fd_b: int, a_to_b: Direction, b_to_a: Direction, stop: list[bool], control: int | None) -> None:
    poller = select.poll()
    poller.register(fd_a, select.POLLIN)
    poller.register(fd_b, select.POLLIN)
    if control is not None:
        poller.register(control, select.POLLIN | select.POLLHUP)
    ways = ((fd_a, a_to_b, fd_b), (fd_b, b_to_a, fd_a))
    clock = time.monotonic
    while not stop[0]:
        now = clock()
        waits = [t for t in (a_to_b.next_time(), b_to_a.next_time()) if t is not None]
        # Round up: a zero timeout for a delivery still 0.3 ms away would spin a whole core.
        timeout_ms = max(0, math.ceil((min(waits) - now) * 1000)) if waits else 200
        for fd, event in poller.poll(timeout_ms):
            if fd == control:
                if event & (select.POLLHUP | select.POLLERR) or not os.read(control, 4096):
                    stop[0] = True
                continue
        now = clock()
        for source, way, _ in ways:
            for _ in range(256):  # drain what is waiting, bounded so the other side gets its turn
                try:
                    packet = os.read(source, 65535)
                except BlockingIOError:
                    break
                way.arrive(packet, now)
        now = clock()
        for _, way, sink in ways:
            for packet in way.due(now):
                try:
                    os.write(sink, packet)
                    way.passed += 1
                    way.bytes_passed += len(packet)
                except OSError:
                    way.tail_dropped += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Userspace link emulator between two network namespaces.")
    parser.add_argument("--ns-a", required=True)
    parser.add_argument("--ns-b", required=True)
    parser.add_argument("--rate", type=float, default=50e6, help="bits per second each way (0 = unlimited)")
    parser.add_argument("--delay", type=float, default=0.025, help="one-way delay in seconds")
    parser.add_argument("--loss", type=float, default=0.0, help="loss probability per packet, each way")
    parser.add_argument("--queue", type=int, default=0, help="drop-tail queue in bytes (default: one BDP)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=6 * 3600, help="exit after this long, whatever happens")
    args = parser.parse_args(argv)
    queue = args.queue or max(64 * 1024, int(args.rate / 8 * args.delay * 2)) if args.rate else 64 << 20
    rng = random.Random(args.seed)
    fd_a = open_tun(args.ns_a, "tun-a")
    fd_b = open_tun(args.ns_b, "tun-b")
    ip(args.ns_a, "link", "set", "lo", "up")
    ip(args.ns_b, "link", "set", "lo", "up")
    ip(args.ns_a, "addr", "add", ADDR_A, "peer", ADDR_B, "dev", "tun-a")
    ip(args.ns_b, "addr", "add", ADDR_B, "peer", ADDR_A, "dev", "tun-b")
    ip(args.ns_a, "link", "set", "tun-a", "up", "mtu", "1500")
    ip(args.ns_b, "link", "set", "tun-b", "up", "mtu", "1500")
    a_to_b = Direction(args.rate, args.delay, args.loss, queue, rng)
    b_to_a = Direction(args.rate, args.delay, args.loss, queue, rng)
    stop = [False]

    def on_signal(*_: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(max(1, int(args.max_seconds)))
    print(json.dumps({"ready": True, "a": ADDR_A, "b": ADDR_B, "queue_bytes": queue}), flush=True)
    control = sys.stdin.fileno() if not sys.stdin.isatty() else None
    try:
        forward(fd_a, fd_b, a_to_b, b_to_a, stop, control)
    finally:
        os.close(fd_a)
        os.close(fd_b)
    print(json.dumps({"a_to_b": a_to_b.counters(), "b_to_a": b_to_a.counters()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
