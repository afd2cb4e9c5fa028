"""The benchmark driver: scenarios, the results JSON, and the tables."""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.contenders import Contender, loopback_contenders, ours
from benchmarks.loopback import run_rounds
from benchmarks.measure import GiB, MiB, Sample, make_file, warm
from benchmarks.servers import ROOT, SeaweedSandbox, SinkServers

SCENARIOS = ("checksums", "sink", "seaweedfs", "small", "folder", "memory", "wan")
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict[str, Any]:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (
            int(line.split()[1]) * 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    import boto3
    import requests

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / GiB, 1),
        "kernel": platform.release(),
        "os": cmd("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "python": platform.python_version(),
        "requests": requests.__version__,
        "boto3": boto3.__version__,
        "awscli": (cmd("aws", "--version") or "").split(" ")[0],
        "rclone": cmd("rclone", "--version").splitlines()[0] if shutil.which("rclone") else "",
        "curl": cmd("curl", "--version").splitlines()[0].split(" (")[0] if shutil.which("curl") else "",
        "weed": cmd(str(Path(sys.executable).parent / "weed"), "version").splitlines()[-1:] or "",
        "git": cmd("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, default=5, help="rounds for the loopback scenarios (default 5)")
    parser.add_argument("--wan-rounds", type=int, default=3, help="rounds for the WAN scenarios (default 3)")
    parser.add_argument("--wan-seconds", type=float, default=60.0, help="time bound of one WAN run (default 60)")
    parser.add_argument(
        "--wan-cases", default="", help="e.g. lossy-cubic,fat-cubic (default: the clean and lossy links)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 64 MiB files, one round, short WAN runs")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "du-bench")
    parser.add_argument("--contenders", default="", help="comma-separated contender names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/<time>.json)")
    args = parser.parse_args(argv)
    # SIGTERM (and SIGINT, which a shell ignores in background jobs) must unwind like an error does, so
    # every server, emulator and contender this run started is stopped by its own cleanup.
    signal.signal(signal.SIGTERM, _interrupted)
    # An installed app starts from compiled bytecode, as boto3 and the rest of site-packages do here. This
    # checkout is an editable install, and with PYTHONDONTWRITEBYTECODE set (as on this machine) our CLI
    # would compile every module of its own on every start: 40 ms per run that no user pays.
    compileall.compile_dir(ROOT / "desktop_uploader", quiet=1)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    size = 64 * MiB if args.quick else GiB
    rounds = 1 if args.quick else args.rounds
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or RESULTS / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    samples: list[Sample] = []
    meta: dict[str, Any] = {"started": stamp, "machine": machine(), "load_before": loadavg(), "args": vars(args)}
    meta["args"] = {k: str(v) for k, v in meta["args"].items()}
    wanted = {c for c in args.contenders.split(",") if c}

    def log(line: str) -> None:
        print(f"[{time.monotonic() - began:7.1f}s load {os.getloadavg()[0]:.2f}] {line}", flush=True)

    def save() -> None:
        meta["load_after"] = loadavg()
        meta["seconds"] = round(time.monotonic() - began, 1)
        payload = {"meta": meta, "samples": [dataclasses.asdict(s) for s in samples]}
        out.write_text(json.dumps(payload, indent=1), encoding="utf-8")

    def pick(contenders: list[Contender]) -> list[Contender]:
        return [c for c in contenders if not wanted or c.name in wanted]

    path = make_file(work / "files" / f"model-{size >> 20}MiB.safetensors", size)
    warm(path)
    try:
        if "sink" in only:
            servers = SinkServers(work / "sink")
            target = servers.start()
            try:
                samples += run_rounds(
                    "sink", pick(loopback_contenders()), target, path, work, rounds, log, sink=servers
                )
            finally:
                servers.stop()
            save()
        if "seaweedfs" in only:
            # SeaweedFS keeps deleted objects' space until a vacuum, so each round gets a fresh store:
            # a 4-round run otherwise fills 70 GiB of disk.
            last_url = ""
            for round_no in range(1, rounds + 1):
                sandbox = SeaweedSandbox(work / "seaweedfs")
                shutil.rmtree(work / "seaweedfs", ignore_errors=True)
                target = sandbox.start()
                carry_link_memory(work / "homes", last_url, target.api_url)
                last_url = target.api_url
                try:
                    contenders = pick(loopback_contenders())
                    samples += run_rounds("seaweedfs", contenders, target, path, work, 1, log, first_round=round_no)
                finally:
                    sandbox.stop()
                    shutil.rmtree(work / "seaweedfs", ignore_errors=True)
                save()
        perfile = [kind for kind in ("small", "folder") if kind in only]
        if perfile:
            from benchmarks.perfile import per_file_scenarios

            samples += per_file_scenarios(work, perfile, rounds, log, pick, save)
            save()
        if "memory" in only:
            samples += memory_scenario(work, size, min(rounds, 3), log, pick)
            save()
        if "checksums" in only:
            samples += checksum_costs(path, log)
            save()
        if "wan" in only:
            from benchmarks.wan import LINKS, wan_scenarios

            meta["links"] = {
                f"wan-{name}-{cc}": round(link.ideal_goodput / 1e6, 3)
                for name, link in LINKS.items()
                for cc in ("cubic", "bbr")
            }
            samples += wan_scenarios(work, args, log, pick)
            save()
    finally:
        save()
        log(f"results: {out}")
    from benchmarks.report import summary_text

    print(summary_text(json.loads(out.read_text())))
    return 0


def carry_link_memory(homes: Path, old: str, new: str) -> None:
    """What ours learned of the last round's store, kept for this round's: a fresh store per round is on
    a new port, a new server to the engine, so without this every SeaweedFS round is a first upload
    (engine/linkmemory.py). ``ours-first`` forgets it anyway."""
    for path in homes.glob("*/data/links.json"):
        readings = json.loads(path.read_text(encoding="utf-8"))
        if old in readings:
            readings[new] = readings.pop(old)
            path.write_text(json.dumps(readings), encoding="utf-8")


def checksum_costs(path: Path, log: Any) -> list[Sample]:
    """CPU per GiB of each integrity check on its own: the pre-pass over a part before its PUT."""
    from functools import partial

    from desktop_uploader.engine.checksums import CRC32, CRC32C, checksum_of_span
    from desktop_uploader.engine.partbody import md5_of_span

    size = path.stat().st_size
    samples = []
    kinds = (
        ("md5 (Content-MD5)", md5_of_span),
        ("crc32 (x-amz-checksum-crc32)", partial(checksum_of_span, CRC32)),
        ("crc32c (x-amz-checksum-crc32c)", partial(checksum_of_span, CRC32C)),
    )
    for round_no in (1, 2, 3):
        for name, digest in kinds:
            cpu, wall = time.process_time(), time.monotonic()
            for offset in range(0, size, 8 * MiB):
                digest(path, offset, min(8 * MiB, size - offset))
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            gib = size / GiB
            samples.append(
                Sample(
                    "checksums",
                    name,
                    round_no,
                    size,
                    True,
                    round(wall, 3),
                    round(cpu, 3),
                    0,
                    round(size / wall / 1e6, 1),
                    round(cpu / gib, 3),
                )
            )
            log(f"checksums  r{round_no} {name:<30} {cpu / gib:.2f} CPU-s/GiB")
    return samples


def memory_scenario(work: Path, size: int, rounds: int, log: Any, pick: Any) -> list[Sample]:
    """Peak RSS of our CLI for a small and a 10x larger file, at the default and at 24 parts in flight."""
    big = make_file(work / "files" / f"model-{(size * 10) >> 20}MiB.safetensors", size * 10)
    small = make_file(work / "files" / f"model-{size >> 20}MiB.safetensors", size)
    warm(big)
    servers = SinkServers(work / "sink-memory")
    target = servers.start()
    samples: list[Sample] = []
    contenders = pick(
        [
            ours("ours-default", "Ours, default settings"),
            ours("ours-24", "Ours, 24 parts in flight", flags=["--concurrency", "24"]),
            ours("ours-64", "Ours, 64 parts in flight", flags=["--concurrency", "64"]),
        ]
    )
    try:
        for path, label in ((small, "memory-1x"), (big, "memory-10x")):
            samples += run_rounds(label, contenders, target, path, work, rounds, log, sink=servers, timeout=900)
    finally:
        servers.stop()
    return samples


if __name__ == "__main__":
    raise SystemExit(main())
