"""The 5 MB/s-cap scenario of issue 15: a 300 MiB file through a capped uplink to the sandbox SeaweedFS.

Measured for ours (default settings, which are Auto), from its progress events: time to the first
stored byte; at each sample, bytes sent minus bytes stored (what a pause would lose) in seconds
of the cap; the stored rate against the cap; and one real Ctrl-C (SIGINT) mid-way: what the
process had sent, what storage kept (list-parts), and how long the pause took. ``again`` is a second
whole upload on the same store, its parts sized by what the first measured (engine/linkmemory.py);
each round's store is fresh, so ``ours`` is always a first upload. s5cmd and boto3
run through the same cap for throughput only. The cap is capproxy.py (a token bucket on
loopback), placed between every client and SeaweedFS, so presigned URLs are written for the
proxy by an API server started here (``--s3-public-endpoint``).

Run: ``python -m benchmarks.capbench [--rounds 1] [--pause-at 30]``; writes a results JSON in
benchmarks/results/ and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.capread import parse_points, read_cap, table
from benchmarks.contenders import Contender, ours
from benchmarks.measure import MiB, Sample, make_file, run_measured, warm
from benchmarks.servers import ROOT, VENV_BIN, SeaweedSandbox, Target, _read_line, _wait_http, free_port, stop_process

RESULTS = ROOT / "benchmarks" / "results"


class CappedStore:
    """Fresh SeaweedFS (the sandbox), the cap proxy in front of its S3 port, and an API presigning for the proxy."""

    def __init__(self, work: Path, rate: float) -> None:
        self.work = work
        self.rate = rate
        self.sandbox = SeaweedSandbox(work / "seaweedfs")
        self.proxy: subprocess.Popen[str] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.direct: Target | None = None

    def start(self) -> Target:
        shutil.rmtree(self.work / "seaweedfs", ignore_errors=True)
        direct = self.direct = self.sandbox.start()
        upstream = direct.s3_endpoint.split("://", 1)[1].rstrip("/")
        self.proxy = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.capproxy", "--upstream", upstream, "--rate", str(self.rate)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.work / "capproxy.log", "wb"),  # noqa: SIM115
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        assert self.proxy.stdout is not None
        line = _read_line(self.proxy.stdout, 20)
        if not line:
            raise RuntimeError(f"the cap proxy did not start; see {self.work / 'capproxy.log'}")
        capped = f"http://127.0.0.1:{json.loads(line)['port']}"
        tokens = self.work / "tokens.json"
        tokens.write_text(json.dumps({direct.token: "bench"}), encoding="utf-8")
        port = free_port("127.0.0.1")
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": direct.access_key,
            "AWS_SECRET_ACCESS_KEY": direct.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "DESKTOP_UPLOADER_HOME": str(self.work / "api-home"),
        }
        argv = [
            str(VENV_BIN / "desktop-uploader"),
            "serve",
            "--port",
            str(port),
            "--bucket",
            direct.bucket,
            "--s3-endpoint",
            direct.s3_endpoint,
            "--s3-public-endpoint",
            capped,
            "--tokens-file",
            str(tokens),
            "--spool-dir",
            str(self.work / "spool"),
            "--max-file-size",
            str(200 << 30),
        ]
        log = self.work / "capped-api.log"
        self.api = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=open(log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        api_url = f"http://127.0.0.1:{port}"
        _wait_http(api_url + "/api/user/influencers/presigned-upload", self.api, log)
        return dataclasses.replace(direct, name="capped", api_url=api_url, s3_endpoint=capped)

    def passed(self) -> int:
        """Bytes the cap has let through so far, all connections together (what the link carried)."""
        assert self.proxy is not None and self.proxy.stdin is not None and self.proxy.stdout is not None
        self.proxy.stdin.write("stats\n")
        self.proxy.stdin.flush()
        line = _read_line(self.proxy.stdout, 10)
        return int(json.loads(line)["up_bytes"]) if line else 0

    def wait_idle(self, quiet: float = 3.0, timeout: float = 120.0) -> int:
        """Wait until nothing crosses the cap for ``quiet`` seconds; returns the bytes that crossed meanwhile.

        A process that exits (or drops a connection) with bytes still in its socket buffers does not
        take them back: the kernel goes on sending them. After a pause those bytes would take the
        next contender's share of the cap, so each run starts on an idle link.
        """
        start = last = self.passed()
        calm_since = time.monotonic()
        deadline = calm_since + timeout
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.passed()
            if now != last:
                last, calm_since = now, time.monotonic()
            elif time.monotonic() - calm_since >= quiet:
                break
        return last - start

    def proxy_counters(self) -> dict[str, Any]:
        """Stops the proxy and returns what it passed (the proxy prints its counters on the way out)."""
        if self.proxy is None:
            return {}
        proxy, self.proxy = self.proxy, None
        assert proxy.stdin is not None and proxy.stdout is not None
        proxy.stdin.close()
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            stop_process(proxy)
        lines = [x for x in proxy.stdout.read().splitlines() if x.startswith("{")]
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        return result

    def s3(self) -> Any:
        assert self.direct is not None
        return self.direct.s3_client()

    def stop(self) -> None:
        self.proxy_counters()
        if self.api is not None:
            stop_process(self.api)
        self.sandbox.stop()
        shutil.rmtree(self.work / "seaweedfs", ignore_errors=True)


def observed_argv(
    contender: Contender, target: Target, path: Path, work: Path, progress: Path
) -> tuple[list[str], dict[str, str]]:
    """Ours as the CLI runs it, through ours_observed.py so its progress events are logged."""
    prepared = contender.prepare(target, path, work)
    argv = [sys.executable, "-m", "benchmarks.clients.ours_observed", str(progress), *prepared.argv[1:]]
    return argv, {**prepared.env, "PYTHONPATH": str(ROOT)}


def parts_kept(store: CappedStore) -> tuple[int, int]:
    """Bytes and parts storage holds for unfinished multipart uploads (only ours: a fresh store), then aborts them."""
    s3 = store.s3()
    assert store.direct is not None
    bucket = store.direct.bucket
    total = count = 0
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        parts = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]).get("Parts", [])
        total += sum(int(p["Size"]) for p in parts)
        count += len(parts)
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return total, count


def run_ours(
    store: CappedStore, target: Target, path: Path, work: Path, round_no: int, cap: float, name: str = "ours-default"
) -> Sample:
    """One whole upload; ``name`` "ours-again" is the second on this store, its parts sized by the first."""
    progress = work / f"progress-{name}-{round_no}.jsonl"
    progress.unlink(missing_ok=True)
    argv, env = observed_argv(ours("ours-default", "Ours, default"), target, path, work, progress)
    before = store.passed()
    result = run_measured(argv, env=env, cwd=ROOT, timeout=600)
    crossed = store.passed() - before
    reading = read_cap(parse_points(progress.read_text()), cap)
    size = path.stat().st_size
    ok = result.returncode == 0
    extra = {**dataclasses.asdict(reading), "of_cap": round(size / result.wall / cap, 3), "crossed_cap": crossed}
    return Sample(
        "cap-5MBps",
        name,
        round_no,
        size,
        ok,
        round(result.wall, 3),
        round(result.cpu, 3),
        result.max_rss,
        round(size / result.wall / 1e6, 3),
        0.0,
        "" if ok else result.stderr[-300:],
        extra,
    )


def run_ours_paused(
    target: Target, store: CappedStore, path: Path, work: Path, round_no: int, cap: float, at: float
) -> Sample:
    """One real Ctrl-C after ``at`` seconds: what was sent by then, what storage kept, how long the pause took."""
    progress = work / f"progress-pause-{round_no}.jsonl"
    progress.unlink(missing_ok=True)
    argv, env = observed_argv(ours("ours-default", "Ours, default"), target, path, work, progress)
    before = store.passed()
    began = time.monotonic()
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        while time.monotonic() - began < at and process.poll() is None:
            time.sleep(0.05)
        points = parse_points(progress.read_text())
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
        interrupted = time.monotonic()
        out, err = process.communicate(timeout=90)
        paused_in = time.monotonic() - interrupted
    except BaseException:
        stop_process(process)
        raise
    last = points[-1] if points else None
    crossed = store.passed() - before
    kept, parts = parts_kept(store)
    size = path.stat().st_size
    after = parse_points(progress.read_text())
    extra = {
        "pause_at_s": round(interrupted - began, 2),
        "sent_at_sigint": last.sent if last else 0,
        "stored_at_sigint": last.confirmed if last else 0,
        "stored_at_exit_events": after[-1].confirmed if after else 0,
        "kept_by_storage": kept,
        "parts_kept": parts,
        "lost_s_of_cap": round(max(0, (last.sent if last else 0) - kept) / cap, 2),
        "pause_took_s": round(paused_in, 2),
        "crossed_cap": crossed,
        "exit": process.returncode,
        "cli_json": out[-600:],
        **{f"run_{k}": v for k, v in dataclasses.asdict(read_cap(after, cap)).items()},
    }
    return Sample(
        "cap-5MBps-pause",
        "ours-default",
        round_no,
        size,
        True,
        round(interrupted - began + paused_in, 3),
        0.0,
        0,
        0.0,
        0.0,
        err[-300:],
        extra,
    )


def run_peer(
    store: CappedStore, contender: Contender, target: Target, path: Path, work: Path, round_no: int, cap: float
) -> Sample:
    prepared = contender.prepare(target, path, work)
    before = store.passed()
    result = run_measured(prepared.argv, env=prepared.env, cwd=prepared.cwd, timeout=600)
    crossed = store.passed() - before
    size = path.stat().st_size
    ok = result.returncode == 0
    return Sample(
        "cap-5MBps",
        contender.name,
        round_no,
        size,
        ok,
        round(result.wall, 3),
        round(result.cpu, 3),
        result.max_rss,
        round(size / result.wall / 1e6, 3),
        0.0,
        "" if ok else result.stderr[-300:],
        {"of_cap": round(size / result.wall / cap, 3), "crossed_cap": crossed},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capbench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rate", type=float, default=5e6, help="the cap, bytes per second (default 5e6)")
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument(
        "--pause-at", default="12,30", help="Ctrl-C after this many seconds; a list is taken round by round"
    )
    parser.add_argument("--contenders", default="ours,pause,s5cmd,boto3")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "du-bench-cap")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda n, _f: (_ for _ in ()).throw(KeyboardInterrupt(signal.Signals(n).name)))
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    wanted = set(args.contenders.split(","))
    pauses = [float(x) for x in args.pause_at.split(",") if x]
    path = make_file(work / "files" / f"model-{args.size_mib}MiB.safetensors", args.size_mib * MiB)
    warm(path)
    out = args.out or RESULTS / f"cap-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "rate": args.rate,
        "size": path.stat().st_size,
        "load_before": os.getloadavg(),
        "cores": os.cpu_count(),
    }
    samples: list[Sample] = []
    began = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s load {os.getloadavg()[0]:.2f}] {text}", flush=True)

    def save() -> None:
        meta["load_after"] = os.getloadavg()
        out.write_text(json.dumps({"meta": meta, "samples": [dataclasses.asdict(s) for s in samples]}, indent=1))

    peers = [Contender("s5cmd", "s5cmd", "s5cmd cp (defaults)"), Contender("boto3", "boto3", "boto3 upload_file")]
    for round_no in range(1, args.rounds + 1):
        store = CappedStore(work, args.rate)
        target = store.start()
        try:
            if "ours" in wanted:
                samples.append(run_ours(store, target, path, work, round_no, args.rate))
                log(f"r{round_no} ours {samples[-1].mbps:.2f} MB/s {json.dumps(samples[-1].extra)}")
                save()
            if "again" in wanted:  # the same home and server: a second upload, planned by what the first measured
                store.wait_idle()
                samples.append(run_ours(store, target, path, work, round_no, args.rate, "ours-again"))
                log(f"r{round_no} ours again {samples[-1].mbps:.2f} MB/s {json.dumps(samples[-1].extra)}")
                save()
            if "pause" in wanted:
                samples.append(
                    run_ours_paused(
                        target, store, path, work, round_no, args.rate, pauses[(round_no - 1) % len(pauses)]
                    )
                )
                samples[-1].extra["crossed_after_exit"] = store.wait_idle()
                shown = {k: v for k, v in samples[-1].extra.items() if k != "cli_json"}
                log(f"r{round_no} ours paused {json.dumps(shown)}")
                save()
            for peer in peers:
                if peer.name in wanted:
                    store.wait_idle()
                    samples.append(run_peer(store, peer, target, path, work, round_no, args.rate))
                    done = samples[-1]
                    log(f"r{round_no} {peer.name} {done.mbps:.2f} MB/s ok={done.ok} {done.note[:200]}")
                    save()
            meta.setdefault("proxy", []).append(store.proxy_counters())
        finally:
            store.stop()
            save()
    log(f"results: {out}")
    print(table([dataclasses.asdict(s) for s in samples]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
