"""Loopback scenarios: every contender on the same file against the same server, interleaved.

Rounds run A B C … A B C …, so whatever else the machine does at the time (other test runs share
its two cores) hits every contender alike. Between runs the object is deleted from SeaweedFS so
the disk does not fill up; the sink keeps nothing.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.contenders import Contender
from benchmarks.measure import GiB, Sample, payload_size, run_measured
from benchmarks.resident import ResidentWindow, run_resident
from benchmarks.servers import SinkServers, Target

Log = Callable[[str], None]
MIN_FREE = 4 << 30  # never let a benchmark fill the disk other people's work shares


def run_one(
    scenario: str,
    contender: Contender,
    target: Target,
    path: Path,
    work: Path,
    round_no: int,
    *,
    sink: SinkServers | None = None,
    timeout: float = 300.0,
    window: ResidentWindow | None = None,
) -> Sample:
    if contender.kind == "window":
        if window is None:
            raise ValueError("the window contender needs a window started on this target")
        return run_resident(scenario, window, path, round_no, sink)
    size = payload_size(path)
    if sink is not None:
        sink.reset()
    try:
        prepared = contender.prepare(target, path, work)
    except Exception as exc:  # a contender that can't even start is a failed sample, not a dead benchmark
        return Sample(scenario, contender.name, round_no, size, False, 0, 0, 0, 0, 0, f"prepare failed: {exc!r}")
    server_cpu = target.server_cpu()
    result = run_measured(prepared.argv, env=prepared.env, cwd=prepared.cwd, timeout=timeout)
    server_cpu = target.server_cpu() - server_cpu
    ok = result.returncode == 0 and not result.timed_out
    note = ""
    if ok and prepared.finish is not None:
        try:
            prepared.finish(result.stdout)
        except Exception as exc:
            ok, note = False, f"finish failed: {exc!r}"
    if ok and contender.kind == "ours":
        ok, note = _ours_completed(result.stdout)
    if not ok and not note:
        note = ("timed out; " if result.timed_out else f"exit {result.returncode}; ") + result.stderr.strip()[-300:]
    extra: dict[str, Any] = {"server_cpu": round(server_cpu, 3)}
    if sink is not None:
        extra |= sink.timing(result.started, result.ended)
    gib = size / GiB
    return Sample(
        scenario,
        contender.name,
        round_no,
        size,
        ok,
        round(result.wall, 4),
        round(result.cpu, 4),
        result.max_rss,
        round(size / result.wall / 1e6, 1) if ok else 0.0,
        round(result.cpu / gib, 3),
        note,
        extra,
    )


def _ours_completed(stdout: str) -> tuple[bool, str]:
    import json

    try:
        uploads = json.loads(stdout)["uploads"]
    except (ValueError, KeyError):
        return False, "no JSON result"
    bad = [u for u in uploads if u.get("status") != "completed"]
    if bad:
        return False, f"{bad[0].get('status')}: {bad[0].get('message', '')}"
    method = uploads[0].get("method", "") if uploads else ""
    return True, "" if method == "presigned-s3" else f"method {method}"


def delete_object(target: Target, key: str) -> None:
    if not key:
        return
    with contextlib.suppress(Exception):
        target.s3_client().delete_object(Bucket=target.bucket, Key=key)


def clear_bucket(target: Target) -> None:
    """Remove every object and unfinished upload (SeaweedFS keeps 1 GiB per run otherwise)."""
    client = target.s3_client()
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=target.bucket, Key=item["Key"])
    with contextlib.suppress(Exception):
        uploads = client.list_multipart_uploads(Bucket=target.bucket).get("Uploads", [])
        for upload in uploads:
            client.abort_multipart_upload(Bucket=target.bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def run_rounds(
    scenario: str,
    contenders: list[Contender],
    target: Target,
    path: Path,
    work: Path,
    rounds: int,
    log: Log,
    *,
    sink: SinkServers | None = None,
    timeout: float = 300.0,
    first_round: int = 1,
    window: ResidentWindow | None = None,
) -> list[Sample]:
    samples: list[Sample] = []
    for round_no in range(first_round, first_round + rounds):
        for contender in contenders:
            free = shutil.disk_usage(work).free
            if free < 2 * payload_size(path) + MIN_FREE:
                raise RuntimeError(f"only {free >> 30} GiB of disk left; stopping before storage fills it")
            began = time.monotonic()
            sample = run_one(
                scenario, contender, target, path, work, round_no, sink=sink, timeout=timeout, window=window
            )
            samples.append(sample)
            log(
                f"{scenario:<10} r{round_no} {contender.name:<18} "
                + (
                    f"{sample.mbps:8.1f} MB/s {sample.cpu_per_gib:5.2f} CPU-s/GiB {sample.max_rss / 2**20:6.1f} MiB"
                    f" server {sample.extra.get('server_cpu', 0):5.2f} CPU-s"
                    + (f" data {sample.extra['data_mbps']:.0f} MB/s" if "data_mbps" in sample.extra else "")
                    if sample.ok
                    else f"FAILED {sample.note}"
                )
                + f"  ({time.monotonic() - began:.1f} s)"
            )
            if sink is None:
                clear_bucket(target)
    return samples
