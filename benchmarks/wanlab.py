"""The WAN lab: a client and a server network namespace joined by the userspace link emulator.

Layout: namespace ``…-cli`` (198.18.0.1) runs the contenders; namespace ``…-srv`` (198.18.1.1)
runs the servers; linkemu.py forwards between them with the link's rate, delay, loss and queue.
The client's congestion control is set per namespace, and netguard.py restores the global list of
allowed algorithms and removes the namespaces when the run ends, however it ends. The self test
here measures the lab itself: the emulator's own ceiling, and raw TCP over each link.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.servers import ROOT, _read_line, stop_process

ADDR_CLIENT = "198.18.0.1"
ADDR_SERVER = "198.18.1.1"
CC_SYSCTL = "net.ipv4.tcp_congestion_control"
LOCK_FILE = "/run/du-bench-wan.lock"
ALLOWED_SYSCTL = "net.ipv4.tcp_allowed_congestion_control"


@dataclass(frozen=True)
class Link:
    name: str
    rate: float  # bits/s
    delay: float  # one way, seconds
    loss: float

    @property
    def ideal_goodput(self) -> float:
        """Payload bytes/s a saturated link carries: 1448 of every 1500 bytes (IPv4 + TCP with timestamps)."""
        return self.rate / 8 * 1448 / 1500


CLEAN = Link("clean", 50e6, 0.025, 0.0)
LOSSY = Link("lossy", 50e6, 0.025, 0.01)
# A higher bandwidth-delay product: 200 Mbit/s at 100 ms RTT (2.5 MB in flight to fill it), run only
# when asked for (``--wan-cases fat-cubic``) and only worth reading where the self test shows the
# emulator carrying it (see docs/benchmarks.md).
FAT = Link("fat", 200e6, 0.05, 0.0)
LINKS = {link.name: link for link in (CLEAN, LOSSY, FAT)}


def _sysctl(name: str) -> str:
    return (Path("/proc/sys") / name.replace(".", "/")).read_text().strip()


class Lab:
    """Namespaces, the guard that removes them, and the emulator between them."""

    def __init__(self, work: Path) -> None:
        self.work = work
        tag = f"du{os.getpid()}"
        self.ns_client = f"{tag}-cli"
        self.ns_server = f"{tag}-srv"
        self.guard: subprocess.Popen[str] | None = None
        self.emulator: subprocess.Popen[str] | None = None

    def __enter__(self) -> Lab:
        self.work.mkdir(parents=True, exist_ok=True)
        # One WAN run at a time on a machine: a second one would record the first one's sysctl
        # changes as "the original" and restore those.
        self._lock = open(LOCK_FILE, "w")  # held for the run, released in __exit__
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RuntimeError("another WAN benchmark is running on this machine") from None
        self.guard = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.netguard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.work / "netguard.log", "ab"),
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        self._tell({"sysctl": ALLOWED_SYSCTL, "value": _sysctl(ALLOWED_SYSCTL)})
        for name in (self.ns_client, self.ns_server):
            self._tell({"netns": name})
            subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
        return self

    def _tell(self, item: dict[str, str]) -> None:
        assert self.guard is not None and self.guard.stdin is not None and self.guard.stdout is not None
        self.guard.stdin.write(json.dumps(item) + "\n")
        self.guard.stdin.flush()
        if not _read_line(self.guard.stdout, 10):
            raise RuntimeError("the cleanup guard did not answer; not touching the network")

    def __exit__(self, *_: object) -> None:
        self.stop_link()
        if self.guard is not None and self.guard.stdin is not None:
            self.guard.stdin.close()  # end-of-file: the guard undoes everything and exits
            try:
                self.guard.wait(60)
            except subprocess.TimeoutExpired:
                self.guard.kill()
        self._lock.close()

    def in_client(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns_client]

    def in_server(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns_server]

    def set_congestion_control(self, name: str) -> None:
        allowed = _sysctl(ALLOWED_SYSCTL).split()
        if name not in allowed:  # a namespace may only pick an allowed one; the guard restores the list
            (Path("/proc/sys") / ALLOWED_SYSCTL.replace(".", "/")).write_text(" ".join([*allowed, name]) + "\n")
        subprocess.run(
            ["ip", "netns", "exec", self.ns_client, "sysctl", "-q", "-w", f"{CC_SYSCTL}={name}"],
            check=True,
            timeout=10,
        )

    def start_link(self, link: Link) -> None:
        self.stop_link()
        self.emulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.linkemu",
                "--ns-a",
                self.ns_client,
                "--ns-b",
                self.ns_server,
                "--rate",
                str(link.rate),
                "--delay",
                str(link.delay),
                "--loss",
                str(link.loss),
                "--max-seconds",
                "14400",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.work / "linkemu.log", "ab"),  # noqa: SIM115
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        # The link must not slow down because other work shares the CPU: it gets a higher priority.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, self.emulator.pid, -10)
        assert self.emulator.stdout is not None
        line = _read_line(self.emulator.stdout, 20)
        if not line:
            raise RuntimeError(f"the link emulator did not start; see {self.work / 'linkemu.log'}")

    def stop_link(self) -> dict[str, Any]:
        if self.emulator is None:
            return {}
        emulator, self.emulator = self.emulator, None
        with contextlib.suppress(OSError):
            assert emulator.stdin is not None
            emulator.stdin.close()
        counters: dict[str, Any] = {}
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
            emulator.wait(10)
            assert emulator.stdout is not None
            lines = [x for x in emulator.stdout.read().splitlines() if x.startswith("{")]
            counters = json.loads(lines[-1]) if lines else {}
        stop_process(emulator)
        return counters


# -- self test: is the emulator the bottleneck? ----------------------------------------------------------------

BLAST = """
import socket, sys, time
host, port, seconds, flows = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
import threading
sent = [0] * flows
def run(i):
    s = socket.create_connection((host, port), timeout=30)
    block = b"x" * 65536
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sent[i] += s.send(block)
    s.close()
threads = [threading.Thread(target=run, args=(i,)) for i in range(flows)]
began = time.monotonic()
[t.start() for t in threads]
[t.join() for t in threads]
print(sum(sent))
"""

DISCARD = """
import socket, sys, threading, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen(64)
got = [0]; first = [None]; last = [None]
def serve(c):
    buf = bytearray(1 << 20)
    while True:
        n = c.recv_into(buf)
        if not n:
            break
        now = time.monotonic()
        if first[0] is None:
            first[0] = now
        last[0] = now
        got[0] += n
print("ready", flush=True)
def report():
    for line in sys.stdin:
        print(got[0], first[0], last[0], flush=True)
threading.Thread(target=report, daemon=True).start()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def tcp_rtt(lab: Lab, port: int) -> float:
    code = (
        "import socket, sys, time\n"
        "best = []\n"
        "for _ in range(5):\n"
        "    t = time.monotonic(); s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n"
        "    best.append(time.monotonic() - t); s.close(); time.sleep(0.05)\n"
        "print(sorted(best)[len(best) // 2])\n"
    )
    out = subprocess.run(
        [*lab.in_client(), sys.executable, "-c", code, ADDR_SERVER, str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return float(out.stdout.strip() or "nan")


def self_test(lab: Lab, link: Link, seconds: float, flows: int) -> dict[str, float]:
    """Raw TCP through the emulated link: goodput of ``flows`` bulk streams and the TCP handshake RTT."""
    port = 19000
    server = subprocess.Popen(
        [*lab.in_server(), sys.executable, "-c", DISCARD, ADDR_SERVER, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        _read_line(server.stdout, 20)
        rtt = tcp_rtt(lab, port)
        subprocess.run(
            [*lab.in_client(), sys.executable, "-c", BLAST, ADDR_SERVER, str(port), str(seconds), str(flows)],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        time.sleep(1.0)
        server.stdin.write("stats\n")
        server.stdin.flush()
        got, first, last = _read_line(server.stdout, 10).split()
        rate = int(got) / (float(last) - float(first)) if first != "None" else 0.0
    finally:
        stop_process(server)
    return {"rtt_ms": round(rtt * 1000, 1), "goodput_mbps": round(rate / 1e6, 3), "flows": flows}
