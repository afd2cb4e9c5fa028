"""Faults a real server won't produce on demand, injected by a proxy between the client and storage."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from desktop_uploader.engine.api_client import ApiClient
from desktop_uploader.engine.events import FallingBack, Progress, Retrying, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.signed_urls import signed_at
from tests.support.api_servers import api_server
from tests.support.logfail import FAULTS
from tests.support.proxy import Delay, Forward, Proxy, RequestInfo, Respond, Stall
from tests.support.storage import object_sha256, open_multipart_uploads

# Every test here breaks something on purpose; the retries and failures that follow are logged, and expected.
pytestmark = pytest.mark.allow_log(*FAULTS)


@pytest.fixture
def storage_proxy(sandbox: Any) -> Iterator[Proxy]:
    with Proxy.start(sandbox.s3_endpoint) as proxy:
        yield proxy


@contextlib.contextmanager
def api_via(sandbox: Any, proxy: Proxy, workdir: Path, **overrides: Any) -> Iterator[str]:
    """An API whose presigned URLs point at the proxy, so every part crosses it."""
    with api_server(sandbox, workdir, s3_public_endpoint=proxy.url, **overrides) as url:
        yield url


def part_puts(proxy: Proxy) -> list[Any]:
    return [r for r in proxy.stats.records("PUT") if "partNumber" in r.query]


def test_kill_9_then_resume_resends_at_most_concurrency_plus_one_parts(
    sandbox: Any, storage_proxy: Proxy, make_file: Any, s3: Any, private_home: Path, tmp_path: Path
) -> None:
    sample = make_file(64 * MiB)
    part, concurrency = 5 * MiB, 3
    with api_via(sandbox, storage_proxy, tmp_path / "api") as url:
        env = {
            "DESKTOP_UPLOADER_HOME": str(private_home),
            "DESKTOP_UPLOADER_SERVER": url,
            "DESKTOP_UPLOADER_TOKEN": sandbox.token,
        }
        import os

        env = {**os.environ, **env}
        argv = [sys.executable, "-m", "desktop_uploader"]
        flags = ["--chunk-size", "5MiB", "--concurrency", str(concurrency)]
        uploading = subprocess.Popen(
            [*argv, "upload", str(sample.path), *flags, "--bandwidth-limit", "12MiB", "--send-anyway"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        database = private_home / "data" / "uploads.sqlite3"
        deadline = time.monotonic() + 60
        while stored(database) < 6:
            assert uploading.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        uploading.send_signal(signal.SIGKILL)
        uploading.wait(10)
        sent_before = storage_proxy.stats.sent_body_bytes("PUT")
        assert sent_before < sample.size, "killed too late to prove anything"

        resumed = subprocess.run(
            [*argv, "resume", "--all", "--json", *flags], env=env, capture_output=True, text=True, timeout=120
        )
        assert resumed.returncode == 0, resumed.stderr
        [result] = __import__("json").loads(resumed.stdout)["uploads"]
    assert object_sha256(s3, sandbox.bucket, result["s3Key"]) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, result["s3Key"])
    # Counted where the bytes land, not by the client: everything storage was sent, both runs together.
    resent = storage_proxy.stats.sent_body_bytes("PUT") - sample.size
    print(f"killed after {sent_before / MiB:.1f} MiB sent; re-sent {resent / MiB:.1f} MiB")
    assert 0 <= resent <= (concurrency + 1) * part, f"re-sent {resent / MiB:.1f} MiB"


def stored(database: Path) -> int:
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM parts").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def test_urls_expiring_mid_upload_are_resigned(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage_proxy: Proxy, tmp_path: Path
) -> None:
    # Links of 4 s, not 2: a link's time left is known to about a second (X-Amz-Date and the server's Date
    # header count whole seconds), and the 0.5 s margin of a 2 s link was once used up on a busy machine.
    sample = make_file(30 * MiB)
    settings = Settings(method="presigned", chunk_size=5 * MiB, concurrency=2, bandwidth_limit=2 * MiB)
    with api_via(sandbox, storage_proxy, tmp_path / "api", url_expiry_seconds=4) as url:
        engine = make_engine(settings, api_url=url)
        began = time.monotonic()
        job = engine.upload(sample.path)
        took = time.monotonic() - began
    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
    assert took > 3 * 4, "the upload must outlive several URL lifetimes"
    puts = part_puts(storage_proxy)
    expired = [(p.query["partNumber"], p.query["X-Amz-Date"]) for p in puts if p.status == 403]
    assert expired == [], "no URL is used after it expired"
    signed_at = {p.query["X-Amz-Date"] for p in puts}
    assert len(signed_at) >= 3, "parts went out on freshly signed URLs"


def test_a_link_is_never_thought_to_live_longer_than_its_signature_says(
    sandbox: Any, s3: Any, storage_proxy: Proxy, tmp_path: Path
) -> None:
    """X-Amz-Date and the answer's Date count whole seconds: read as the earliest the server's time could be,
    a link seemed to live up to a second longer than storage allows (a 2 s link's 403 on a busy machine)."""
    with api_via(sandbox, storage_proxy, tmp_path / "api", url_expiry_seconds=2) as url:
        api = ApiClient(url, sandbox.token, Settings())
        try:
            started = api.start("deadline.safetensors", 3, 15 * MiB)
            wall_minus_mono = time.time() - time.monotonic()  # the same machine: storage's clock is ours
            for link in started.urls.values():
                real = signed_at(link.url) + float(parse_qs(urlsplit(link.url).query)["X-Amz-Expires"][0])
                assert link.expires_at + wall_minus_mono <= real + 0.05, (link.expires_at + wall_minus_mono, real)
            api.abort(started.upload_id, started.s3_key)
        finally:
            api.close()
    assert not open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/")


def test_an_expired_url_is_resigned_without_costing_an_attempt(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage_proxy: Proxy, tmp_path: Path
) -> None:
    sample = make_file(6 * MiB)
    delayed: list[int] = []

    def hold_first_put(request: RequestInfo) -> Any:
        if request.method == "PUT" and not delayed:
            delayed.append(request.seq)
            return Delay(2.5)  # by the time storage sees it, the 2 s URL has expired
        return Forward()

    storage_proxy.set_fault_plan(hold_first_put)
    with api_via(sandbox, storage_proxy, tmp_path / "api", url_expiry_seconds=2) as url:
        engine = make_engine(Settings(method="presigned", retries=1), api_url=url)
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message  # with retries=1, counting it would have failed
    held = [p for p in part_puts(storage_proxy) if p.seq == delayed[0]]
    again = [p for p in part_puts(storage_proxy) if p.query["partNumber"] == held[0].query["partNumber"]]
    assert [p.status for p in again] == [403, 200]  # the held part, refused once, then sent on a new URL
    assert engine.of(job.id, Retrying) == []
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


SIGNATURE_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code>'
    b"<Message>The request signature we calculated does not match.</Message></Error>"
)


def test_presigned_refused_by_storage_is_aborted_before_the_chunked_fallback(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage_proxy: Proxy, tmp_path: Path
) -> None:
    sample = make_file(12 * MiB)
    storage_proxy.set_fault_plan(
        lambda r: Respond(403, SIGNATURE_ERROR, {"Content-Type": "application/xml"}) if r.method == "PUT" else None
    )
    with api_via(sandbox, storage_proxy, tmp_path / "api") as url:
        engine = make_engine(Settings(), api_url=url)
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None and job.result.method == "chunked-s3"
    assert [(f.from_method, f.to_method) for f in engine.of(job.id, FallingBack)] == [("presigned-s3", "chunked-s3")]
    refused = {p.query["uploadId"] for p in part_puts(storage_proxy)}
    assert len(refused) == 1
    still_open = {u["UploadId"] for u in open_multipart_uploads(s3, sandbox.bucket, "loras/sandbox-user/")}
    assert not refused & still_open, "the presigned upload must be aborted before falling back"
    assert object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_busy_storage_is_retried_honouring_retry_after(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage_proxy: Proxy, tmp_path: Path
) -> None:
    sample = make_file(11 * MiB)
    refusals: list[int] = []

    def busy_twice(request: RequestInfo) -> Any:
        if request.method == "PUT" and len(refusals) < 2:
            refusals.append(request.seq)
            return Respond(
                503, b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>", {"Retry-After": "1"}
            )
        return None

    storage_proxy.set_fault_plan(busy_twice)
    with api_via(sandbox, storage_proxy, tmp_path / "api") as url:
        engine = make_engine(
            Settings(method="presigned", chunk_size=5 * MiB, concurrency=1, backoff_base=0.05), api_url=url
        )
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    retries = engine.of(job.id, Retrying)
    assert len(retries) == 2 and all(r.delay >= 1.0 for r in retries)
    assert "busy" in retries[0].reason and retries[0].max_attempts == 5
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_a_stalled_connection_times_out_and_the_part_is_resent(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage_proxy: Proxy, tmp_path: Path
) -> None:
    sample = make_file(6 * MiB)
    stalled: list[int] = []

    def stall_once(request: RequestInfo) -> Any:
        if request.method == "PUT" and not stalled:
            stalled.append(request.seq)
            return Stall(30)
        return None

    storage_proxy.set_fault_plan(stall_once)
    with api_via(sandbox, storage_proxy, tmp_path / "api") as url:
        engine = make_engine(Settings(method="presigned", read_timeout=1.5, backoff_base=0.05), api_url=url)
        job = engine.upload(sample.path, timeout=60)
    assert job.status == Status.COMPLETED, job.message
    assert "stalled" in engine.of(job.id, Retrying)[0].reason
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_a_resumed_run_reads_no_speed_from_bytes_a_silent_store_swallowed(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage_proxy: Proxy, tmp_path: Path
) -> None:
    """The window's try after a lost connection is a resume, often into a store that still says nothing.

    Its first attempt at a part is no retry by count, yet the socket buffers it fills in a moment are
    no speed either: a network audit saw "42 KiB/s · 1 h 2 min left" while storage was frozen.
    """
    sample = make_file(20 * MiB)
    stalled: list[int] = []

    def stall_the_resumed_runs_first_part(request: RequestInfo) -> Any:
        if request.method == "PUT" and "partNumber" in request.query and not stalled:
            stalled.append(request.seq)
            return Stall(30, take_bytes_per_second=8 * MiB)  # 5 MiB in 0.6 s: all before the part is 1.5 s old
        return None

    with api_via(sandbox, storage_proxy, tmp_path / "api") as url:
        first = make_engine(
            Settings(method="presigned", chunk_size=5 * MiB, concurrency=1, bandwidth_limit=8 * 1000 * 1000),
            api_url=url,
        )
        job = first.manager.add(sample.path)
        first.wait_for(lambda: first.manager.job(job).confirmed >= 5 * MiB)
        first.manager.pause(job)
        assert first.manager.wait([job], 10)
        first.manager.close()
        storage_proxy.set_fault_plan(stall_the_resumed_runs_first_part)
        second = make_engine(
            Settings(method="presigned", concurrency=1, read_timeout=2.0, backoff_base=0.05), api_url=url
        )
        [restored] = second.manager.restore_interrupted()
        second.manager.resume(restored)
        assert second.manager.wait([restored], 60)
    resumed = second.manager.job(restored)
    assert resumed.status == Status.COMPLETED, resumed.message
    events = [e for e in second.events if e.job_id == restored]
    first_retry = next(i for i, e in enumerate(events) if isinstance(e, Retrying))
    swallowed = [e for e in events[:first_retry] if isinstance(e, Progress) and e.in_flight > 0]
    assert swallowed, "the stalled part's bytes were taken by the store and shown as sent"
    assert [e.speed for e in swallowed] == [0.0] * len(swallowed)
    assert resumed.result is not None and object_sha256(s3, sandbox.bucket, resumed.result.s3_key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, resumed.result.s3_key)


def test_an_etag_that_is_not_the_parts_md5_is_retried(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage_proxy: Proxy, tmp_path: Path
) -> None:
    """Against the seed's server (no Content-MD5 signing), ETags are the integrity check."""
    sample = make_file(16 * MiB)
    lied: list[int] = []

    def lie_about_part_2(request: RequestInfo) -> Any:
        if request.method == "PUT" and request.query.get("partNumber") == "2" and not lied:
            lied.append(request.seq)
            return Respond(200, b"", {"ETag": '"00000000000000000000000000000000"'})
        return None

    storage_proxy.set_fault_plan(lie_about_part_2)
    with api_via(
        sandbox, storage_proxy, tmp_path / "api", actions=("start", "complete", "abort"), capabilities_enabled=False
    ) as url:
        engine = make_engine(
            Settings(method="presigned", chunk_size=5 * MiB, concurrency=1, backoff_base=0.05), api_url=url
        )
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    assert [r.part for r in engine.of(job.id, Retrying)] == [2]
    assert "damaged" in engine.of(job.id, Retrying)[0].reason
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_connections_are_kept_alive_across_parts(
    make_engine: Any, make_file: Any, sandbox: Any, storage_proxy: Proxy, tmp_path: Path
) -> None:
    sample = make_file(64 * MiB)
    with api_via(sandbox, storage_proxy, tmp_path / "api") as url:
        engine = make_engine(Settings(method="presigned", chunk_size=5 * MiB, concurrency=3), api_url=url)
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    assert len(part_puts(storage_proxy)) == 13
    assert storage_proxy.stats.connections() <= 6, "each worker thread reuses its pooled connection"


@pytest.mark.parametrize("give_up", ["cancel", "remove"])
def test_discarding_a_failed_upload_that_kept_its_parts_aborts_it(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage_proxy: Proxy, tmp_path: Path, give_up: str
) -> None:
    sample = make_file(20 * MiB)
    allowed: list[int] = []

    def storage_goes_away_after_two_parts(request: RequestInfo) -> Any:
        if request.method != "PUT":
            return None
        if len(allowed) < 2:
            allowed.append(request.seq)
            return None
        return Respond(503, b"<Error><Code>ServiceUnavailable</Code></Error>")

    storage_proxy.set_fault_plan(storage_goes_away_after_two_parts)
    with api_via(sandbox, storage_proxy, tmp_path / "api") as url:
        engine = make_engine(
            Settings(method="presigned", chunk_size=5 * MiB, concurrency=1, retries=2, backoff_base=0.05), api_url=url
        )
        job = engine.upload(sample.path)
        assert job.status == Status.FAILED and job.resumable, "parts are stored: the upload is kept for resume"
        record = engine.state.get(job.id)
        assert record is not None and record.s3_key
        assert open_multipart_uploads(s3, sandbox.bucket, record.s3_key)
        getattr(engine.manager, give_up)(job.id)  # the row's Discard, or Del on the row
        engine.wait_for(lambda: engine.state.get(job.id) is None, 10)
        if give_up == "cancel":
            assert engine.manager.job(job.id).status == Status.CANCELLED
        else:
            assert job.id not in {j.id for j in engine.manager.jobs()}
    assert not open_multipart_uploads(s3, sandbox.bucket, record.s3_key)


def test_cancelling_a_resumed_upload_while_it_prepares_aborts_it(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    """Cancel lands while the app still asks a struggling server what it offers, before any method runs."""
    sample = make_file(20 * MiB)
    with Proxy.start(sandbox.api_url) as api_proxy:
        first = make_engine(
            Settings(method="presigned", chunk_size=5 * MiB, concurrency=1, bandwidth_limit=8 * 1000 * 1000),
            api_url=api_proxy.url,
        )
        job = first.manager.add(sample.path)
        first.wait_for(lambda: first.manager.job(job).confirmed >= 5 * MiB)
        first.manager.pause(job)
        assert first.manager.wait([job], 10)
        record = first.state.get(job)
        assert record is not None and record.s3_key
        first.manager.close()
        api_proxy.set_fault_plan(lambda r: Respond(503, b'{"error": "busy"}') if r.method == "GET" else None)
        second = make_engine(Settings(retries=6, backoff_base=1.0), api_url=api_proxy.url)
        [restored] = second.manager.restore_interrupted()
        second.manager.resume(restored)
        second.wait_for(lambda: sum(1 for r in api_proxy.stats.records("GET")) >= 2, 20)  # retrying, not running
        assert second.manager.job(restored).status == Status.STARTING
        second.manager.cancel(restored)
        assert second.manager.wait([restored], 15)
        assert second.manager.job(restored).status == Status.CANCELLED
        second.wait_for(lambda: second.state.get(restored) is None, 10)
    assert not open_multipart_uploads(s3, sandbox.bucket, record.s3_key)
