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
import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.contenders import Contender, first_upload, first_upload_preset_parts, fixed_parts, ours
from benchmarks.measure import GiB, Sample, make_file, run_measured, warm
from benchmarks.servers import SinkServers
from benchmarks.wanlab import ADDR_SERVER, CLEAN, FAT, LINKS, LOSSY, Lab, Link, self_test

__all__ = ["CLEAN", "FAT", "LINKS", "LOSSY", "Lab", "Link", "wan_scenarios"]
DEFAULT_CASES = ("clean-cubic", "clean-bbr", "lossy-cubic", "lossy-bbr")  # fat-* only when asked for


# -- the WAN contenders --------------------------------------------------------------------------------------


def wan_contenders() -> list[Contender]:
    result = [
        ours("ours-default", "Ours, default settings"),
        ours("ours-auto", "Ours, Auto", flags=["--concurrency", "auto"]),
        fixed_parts(),
        first_upload(),
        first_upload_preset_parts(),
    ]
    for n in (1, 3, 6, 12, 24):
        result.append(ours(f"ours-{n}", f"Ours, {n} parts in flight", flags=["--concurrency", str(n)]))
    for n in (18, 20, 22, 24):  # a learned lossy start's parts (5 MiB): how few still fill the link, each how long
        flags = ["--concurrency", str(n), "--chunk-size", "5MiB"]
        result.append(ours(f"ours-{n}x5mib", f"Ours, {n} parts of 5 MiB in flight", flags=flags))
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
    from desktop_uploader.engine.autotuning import AutoTuning

    level = AutoTuning().start
    with contextlib.suppress(OSError):
        for line in log_file.read_text(errors="replace").splitlines():
            if "Auto: " in line and " parts in flight" in line:
                level = int(line.split("Auto: ", 1)[1].split(" ", 1)[0])
    return level


def part_times(uploads: dict[str, Any]) -> dict[str, float]:
    """How long the parts stored by the bound took at the sink, from a part's request to its last byte: the
    issue's 10-20 s target for a part (a longer part makes progress look dead and a pause loses it)."""
    seconds = sorted(t for upload in uploads.values() for t in upload.get("part_seconds", []))
    if not seconds:
        return {}
    return {"part_seconds_median": statistics.median(seconds), "part_seconds_max": seconds[-1]}


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
    with contextlib.suppress(OSError):  # each run's log kept, to read what Auto decided in it
        shutil.copyfile(log_file, work / f"{scenario}-{contender.name}-r{round_no}.log")
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
    extra.update(part_times(uploads))
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
    cases = {c for c in getattr(args, "wan_cases", "").split(",") if c} or set(DEFAULT_CASES)
    shutil.rmtree(work / "wan-sink" / "spool", ignore_errors=True)
    with Lab(work / "wan") as lab:
        # The emulator must not be the bottleneck: its own ceiling (no rate, no delay) and the clean link,
        # and the fat one when it is run (at 200 Mbit/s the Python forwarder is closest to its limit).
        checks = [(Link("unlimited", 0, 0.0, 0.0), 4), (CLEAN, 1)]
        if any(case.startswith("fat-") for case in cases):
            checks.append((FAT, 1))
        for link, flows in checks:
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
            for link in LINKS.values():
                if not any(case.startswith(f"{link.name}-") for case in cases):
                    continue
                lab.start_link(link)
                if servers.sink is None:
                    target = servers.start()
                    _wait_api(lab, target.api_url)
                for cc in ("cubic", "bbr"):
                    scenario = f"wan-{link.name}-{cc}"
                    if scenario.removeprefix("wan-") not in cases:
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
    """``python -m benchmarks.wan selftest [--links clean,fat]``: the emulator's ceiling and raw TCP per link."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wan")
    parser.add_argument("what", choices=["selftest"])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--links", default="clean,lossy", help="which links besides the unlimited one: clean,lossy,fat")
    parser.add_argument("--work", type=Path, default=Path("/tmp/du-bench/wan-selftest"))
    args = parser.parse_args(argv)
    chosen = [LINKS[name] for name in args.links.split(",") if name]
    plan: list[tuple[Link, int, str]] = [(Link("unlimited", 0, 0.0, 0.0), 4, "cubic")]
    for link in chosen:
        plan += [(link, 1, "cubic"), (link, 4, "cubic")] if link.loss == 0 else [(link, 1, "cubic"), (link, 1, "bbr")]
    with Lab(args.work) as lab:
        for link, flows, cc in plan:
            lab.start_link(link)
            lab.set_congestion_control(cc)
            result = self_test(lab, link, args.seconds, flows)
            counters = lab.stop_link()
            ideal = link.ideal_goodput / 1e6 if link.rate else None
            share = {"of_link": round(result["goodput_mbps"] / ideal, 3)} if ideal else {}
            print(json.dumps({"link": link.name, "cc": cc, **result, **share, "emulator": counters}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
