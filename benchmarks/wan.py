"""The simulated WAN: a client namespace and a server namespace joined by the userspace link emulator.

Layout: namespace ``…-cli`` (198.18.0.1) runs the contenders; namespace ``…-srv`` (198.18.1.1)
runs the discard sink and the upload API; linkemu.py forwards between them with the link's rate,
delay, loss and queue. The client's congestion control is set per namespace
(``net.ipv4.tcp_congestion_control`` is per namespace; choosing one that is not in the global
``tcp_allowed_congestion_control`` list adds it there, so that list is recorded first and restored
by netguard.py when the run ends, however it ends).

Each WAN run is bounded in time: a contender runs until it finishes or ``--wan-seconds`` pass, and
its goodput is the payload that reached storage (the sink's count, plus the chunked path's
not-yet-flushed spool) divided by the time since the contender was started. So start-up, API round
trips and TCP ramp-up all count against it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.contenders import Contender, ours
from benchmarks.measure import GiB, Sample, make_file, run_measured, warm
from benchmarks.servers import ROOT, SinkServers, _read_line, stop_process

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


# -- the WAN contenders --------------------------------------------------------------------------------------


def wan_contenders() -> list[Contender]:
    result = [
        ours("ours-default", "Ours, default settings"),
        ours("ours-auto", "Ours, Auto", flags=["--concurrency", "auto"]),
    ]
    for n in (1, 3, 6, 12, 24):
        result.append(ours(f"ours-{n}", f"Ours, {n} parts in flight", flags=["--concurrency", str(n)]))
    result.append(ours("ours-chunked", "Ours, chunked fallback through the API", flags=["--method", "chunked"]))
    result.append(Contender("boto3", "boto3", "boto3 upload_file (default TransferConfig)"))
    return result


def parts_in_flight(contender: Contender, log_file: Path) -> int | None:
    """Parts in flight when the run ended: the flag, or Auto's last decision in the CLI's log."""
    if contender.kind != "ours" or "chunked" in contender.flags:
        return None
    if "--concurrency" in contender.flags:
        value = contender.flags[contender.flags.index("--concurrency") + 1]
        if value != "auto":
            return int(value)
    from desktop_uploader.engine.autotune import AutoTuning

    level = AutoTuning().start
    with contextlib.suppress(OSError):
        for line in log_file.read_text(errors="replace").splitlines():
            if "Auto: " in line and " parts in flight" in line:
                level = int(line.split("Auto: ", 1)[1].split(" ", 1)[0])
    return level


def spool_bytes(spool: Path) -> int:
    total = 0
    for path in spool.rglob("*"):
        if path.is_file() and path.suffix != ".json":
            with contextlib.suppress(OSError):
                total += path.stat().st_size
    return total


def run_wan_one(
    scenario: str,
    contender: Contender,
    lab: Lab,
    servers: SinkServers,
    target: Any,
    path: Path,
    work: Path,
    round_no: int,
    bound: float,
) -> Sample:
    servers.reset()
    size = path.stat().st_size
    prepared = contender.prepare(target, path, work)
    log_file = work / "homes" / contender.name / "logs" / "desktop-uploader.log"
    log_file.unlink(missing_ok=True)
    at_bound: dict[str, Any] = {}
    spool = work / "wan-sink" / "spool"
    # Only this run's chunks count: a chunked upload stopped at its bound leaves its spool behind.
    spool_before = spool_bytes(spool)

    def snapshot_at_bound(elapsed: float) -> bool:
        # Count what arrived by the bound, not what drains while the contender winds down after it.
        if elapsed < bound:
            return False
        at_bound.update(servers.stats(), spool=spool_bytes(spool))
        return True

    result = run_measured(
        prepared.argv,
        env=prepared.env,
        cwd=prepared.cwd,
        timeout=bound + 30,
        prefix=lab.in_client(),
        on_tick=snapshot_at_bound,
    )
    flight = parts_in_flight(contender, log_file)
    finished = result.returncode == 0 and not at_bound and not result.timed_out
    stats = at_bound or servers.stats()
    spooled = int(at_bound.get("spool", spool_bytes(spool))) - spool_before
    payload = int(stats.get("payload_bytes", 0)) + max(0, spooled)
    elapsed = bound if at_bound else result.wall
    goodput = payload / elapsed / 1e6 if elapsed > 0 else 0.0
    uploads = stats.get("uploads", {})
    extra: dict[str, Any] = {
        "goodput_mbps": round(goodput, 3),
        "payload_bytes": payload,
        "finished": finished,
        "uploads": len(uploads),
    }
    if flight is not None:
        extra["parts_in_flight"] = flight
    note = (
        "" if finished else ("time bound reached" if at_bound else f"exit {result.returncode}: {result.stderr[-300:]}")
    )
    return Sample(
        scenario,
        contender.name,
        round_no,
        size,
        finished,
        round(result.wall, 3),
        round(result.cpu, 3),
        result.max_rss,
        round(goodput, 3),
        round(result.cpu / (payload / GiB), 3) if payload else 0.0,
        note,
        extra,
    )


def wan_scenarios(work: Path, args: argparse.Namespace, log: Callable[[str], None], pick: Any) -> list[Sample]:
    size = 64 << 20 if args.quick else GiB
    bound = 15.0 if args.quick else args.wan_seconds
    rounds = 1 if args.quick else args.wan_rounds
    path = make_file(work / "files" / f"model-{size >> 20}MiB.safetensors", size)
    warm(path)
    samples: list[Sample] = []
    contenders = pick(wan_contenders())
    cases = {c for c in getattr(args, "wan_cases", "").split(",") if c}
    shutil.rmtree(work / "wan-sink" / "spool", ignore_errors=True)
    with Lab(work / "wan") as lab:
        # The emulator must not be the bottleneck: its own ceiling (no rate, no delay) and the clean link.
        for link, flows in ((Link("unlimited", 0, 0.0, 0.0), 4), (CLEAN, 1)):
            lab.start_link(link)
            lab.set_congestion_control("cubic")
            found = self_test(lab, link, 5.0 if args.quick else 12.0, flows)
            lab.stop_link()
            samples.append(
                Sample(
                    "wan-selftest",
                    f"raw-tcp-{link.name}-{flows}-flows",
                    1,
                    0,
                    True,
                    0,
                    0,
                    0,
                    found["goodput_mbps"],
                    0,
                    f"TCP handshake RTT {found['rtt_ms']} ms",
                    {"goodput_mbps": found["goodput_mbps"], "rtt_ms": found["rtt_ms"]},
                )
            )
            log(f"self-test {link.name}, {flows} flow(s): {found}")
        servers = SinkServers(work / "wan-sink", host=ADDR_SERVER, prefix=lab.in_server())
        try:
            for link in (CLEAN, LOSSY):
                lab.start_link(link)
                if servers.sink is None:
                    target = servers.start()
                    _wait_api(lab, target.api_url)
                for cc in ("cubic", "bbr"):
                    scenario = f"wan-{link.name}-{cc}"
                    if cases and scenario.removeprefix("wan-") not in cases:
                        continue
                    lab.set_congestion_control(cc)
                    for round_no in range(1, rounds + 1):
                        for contender in contenders:
                            sample = run_wan_one(scenario, contender, lab, servers, target, path, work, round_no, bound)
                            samples.append(sample)
                            rate = sample.extra["goodput_mbps"]
                            log(
                                f"{scenario:<16} r{round_no} {contender.name:<14} {rate:6.2f} MB/s "
                                f"({rate * 1e6 / link.ideal_goodput * 100:5.1f}% of ideal) "
                                f"{'finished' if sample.ok else 'bounded'} {sample.max_rss / 2**20:5.1f} MiB "
                                f"{sample.note[:80]}"
                            )
                counters = lab.stop_link()
                log(f"link {link.name}: {json.dumps(counters)}")
        finally:
            servers.stop()
    return samples


def _wait_api(lab: Lab, url: str, timeout: float = 30.0) -> None:
    code = (
        "import sys, time, urllib.request\n"
        "end = time.monotonic() + float(sys.argv[2])\n"
        "while time.monotonic() < end:\n"
        "    try:\n"
        "        urllib.request.urlopen(sys.argv[1], timeout=2); break\n"
        "    except Exception as e:\n"
        "        if getattr(e, 'code', None): break\n"
        "        time.sleep(0.2)\n"
    )
    subprocess.run(
        [*lab.in_client(), sys.executable, "-c", code, url + "/api/user/influencers/presigned-upload", str(timeout)],
        timeout=timeout + 10,
        check=False,
    )


@contextlib.contextmanager
def lab_for_tests(work: Path) -> Iterator[Lab]:
    with Lab(work) as lab:
        yield lab


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.wan selftest``: the emulator's own ceiling and the two links' raw TCP figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wan")
    parser.add_argument("what", choices=["selftest"])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--work", type=Path, default=Path("/tmp/du-bench/wan-selftest"))
    args = parser.parse_args(argv)
    with Lab(args.work) as lab:
        for link, flows, cc in (
            (Link("unlimited", 0, 0.0, 0.0), 4, "cubic"),
            (CLEAN, 1, "cubic"),
            (CLEAN, 4, "cubic"),
            (LOSSY, 1, "cubic"),
            (LOSSY, 1, "bbr"),
        ):
            lab.start_link(link)
            lab.set_congestion_control(cc)
            result = self_test(lab, link, args.seconds, flows)
            counters = lab.stop_link()
            print(json.dumps({"link": link.name, "cc": cc, **result, "emulator": counters}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
