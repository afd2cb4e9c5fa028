"""Every method delivers byte-identical objects; fallback, pause, cancel and file changes behave.

Each test that asks an upload API runs against our FastAPI server and the Next.js drop-in route
(``[fastapi]``, ``[nextjs]``: tests/support/upload_apis.py), unless it is marked for one.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Completed, FallingBack, Progress, Retrying, Started, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.api_servers import api_server
from tests.support.logfail import RETRIED, UPLOAD_FAILED
from tests.support.nextjs_route import nextjs_route
from tests.support.proxy import Proxy, RequestInfo, ResetRequest, Respond
from tests.support.storage import object_sha256, open_multipart_uploads
from tests.support.upload_apis import NEXTJS, UploadApi, every_upload_api

pytest_generate_tests = every_upload_api

SIZE = 64 * MiB


@pytest.mark.parametrize(
    ("settings", "method"),
    [
        (Settings(method="presigned", concurrency=3, chunk_size=8 * MiB), "presigned-s3"),
        (Settings(method="chunked"), "chunked-s3"),
    ],
    ids=["presigned", "chunked"],
)
def test_64_mib_arrives_byte_identical(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, settings: Settings, method: str
) -> None:
    arrives_byte_identical(make_engine, make_file, s3, sandbox, None, settings, method)


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
def test_64_mib_arrives_byte_identical_direct(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, direct_target: Any
) -> None:
    settings = Settings(method="direct-s3", concurrency=4, chunk_size=8 * MiB)
    arrives_byte_identical(make_engine, make_file, s3, sandbox, direct_target, settings, "direct-s3")


def arrives_byte_identical(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, direct_target: Any, settings: Settings, method: str
) -> None:
    sample = make_file(SIZE)
    engine = make_engine(settings, direct=direct_target if method == "direct-s3" else None)
    job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None and job.result.method == method
    assert object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, job.result.s3_key)
    assert engine.of(job.id, Started)[0].method == method
    progress = [e.confirmed for e in engine.of(job.id, Progress)]
    assert progress == sorted(progress) and progress[-1] == SIZE
    assert engine.state.get(job.id) is None, "a finished upload leaves no resume record"
    if method != "direct-s3":
        assert job.result.comfyui_path and job.result.comfyui_path.endswith("_model.safetensors")


def test_small_file_through_the_single_request_path(make_engine: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    sample = make_file(3 * MiB, name="tiny.pt")
    job = make_engine(Settings(method="legacy")).upload(sample.path)
    assert job.status == Status.COMPLETED and job.result is not None
    assert job.result.method == "serverless-function"
    assert object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


@pytest.mark.parametrize("method", ["presigned", "chunked", "legacy", "direct-s3"])
def test_a_backslash_in_a_file_name_is_part_of_the_name(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, direct_target: Any, method: str
) -> None:
    """On Linux and macOS a backslash is a character like any other: an audit's back\\slash.safetensors was
    stored as slash.safetensors, the part before it taken for a Windows folder."""
    if sys.platform == "win32":
        pytest.skip("Windows file names can't hold a backslash")
    stem = f"back\\slash-{uuid.uuid4().hex[:8]}"
    sample = make_file(3 * MiB, name=f"{stem}.safetensors")
    direct = direct_target if method == "direct-s3" else None
    job = make_engine(Settings(method=method), direct=direct).upload(sample.path)
    assert job.status == Status.COMPLETED and job.result is not None, job.message
    assert job.result.s3_key.endswith(f"_{stem.replace(chr(92), '_')}.safetensors"), job.result.s3_key
    assert object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_zero_byte_file(make_engine: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    sample = make_file(0, name="empty.bin")
    job = make_engine(Settings(method="presigned")).upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None
    assert s3.get_object(Bucket=sandbox.bucket, Key=job.result.s3_key)["Body"].read() == b""


def test_the_seeds_512_kb_setting_uploads_correctly(make_engine: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    sample = make_file(12 * MiB)
    engine = make_engine(Settings(chunk_size=512 * 1024, method="presigned"))
    job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    started = engine.of(job.id, Started)[0]
    assert started.part_size == 5 * MiB and any("below the 5.0 MiB minimum" in a for a in started.adjustments)
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_a_server_that_knows_only_start_complete_abort(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, seed_api: Any
) -> None:
    sample = make_file(23 * MiB)
    with seed_api() as seed:
        settings = Settings(method="presigned", chunk_size=5 * MiB, concurrency=3)
        engine = make_engine(settings, api_url=seed.url, token=seed.token)
        job = engine.upload(sample.path)
        assert engine.manager.api is not None and not engine.manager.api.capabilities().advertised
    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
    assert job.result.etag == ""  # the seed's complete says no etag, and the client makes none up


@pytest.mark.allow_log(*UPLOAD_FAILED)
@pytest.mark.fastapi_only("our server with its presigned path switched off, a setting the route does not have")
def test_when_presigned_start_fails_the_fallback_runs(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, tmp_path: Path
) -> None:
    sample = make_file(9 * MiB)
    with api_server(sandbox, tmp_path / "no-presigned", presigned_enabled=False) as url:
        engine = make_engine(Settings(), api_url=url)
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    assert job.method == "chunked-s3" and job.result is not None and job.result.method == "chunked-s3"
    fallback = engine.of(job.id, FallingBack)
    assert [(f.from_method, f.to_method) for f in fallback] == [("presigned-s3", "chunked-s3")]
    assert object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def slow(settings: Settings | None = None, **changes: Any) -> Settings:
    """Slow enough to act mid-upload: 5 MiB parts, 2 in flight, 10 MB/s."""
    base = settings or Settings(method="presigned", chunk_size=5 * MiB, concurrency=2, bandwidth_limit=10 * MiB)
    return base.replace(**changes)


@pytest.mark.parametrize("method", ["presigned", "chunked"])
def test_pause_then_resume_completes(make_engine: Any, make_file: Any, s3: Any, sandbox: Any, method: str) -> None:
    pause_then_resume(make_engine, make_file, s3, sandbox, None, method)


@pytest.mark.without_upload_api("direct-s3 talks to storage only")
def test_pause_then_resume_completes_direct(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, direct_target: Any
) -> None:
    pause_then_resume(make_engine, make_file, s3, sandbox, direct_target, "direct-s3")


def pause_then_resume(make_engine: Any, make_file: Any, s3: Any, sandbox: Any, direct_target: Any, method: str) -> None:
    sample = make_file(40 * MiB)
    engine = make_engine(slow(method=method), direct=direct_target if method == "direct-s3" else None)
    job = engine.manager.add(sample.path)
    engine.wait_for(lambda: engine.manager.job(job).confirmed >= 10 * MiB)
    engine.manager.pause(job)
    assert engine.manager.wait([job], 5), "pause must take effect within a second or so"
    paused = engine.manager.job(job)
    assert paused.status == Status.PAUSED and paused.resumable
    assert engine.of(job, Retrying) == [], "a pause stops parts; it is not a failure to retry"
    record = engine.state.get(job)
    assert record is not None
    stored = record.chunk_offset if method == "chunked" else sum(p.size for p in engine.state.parts(job).values())
    assert stored >= 8 * MiB
    engine.manager.resume(job)
    assert engine.manager.wait([job], 60)
    done = engine.manager.job(job)
    assert done.status == Status.COMPLETED, done.message
    assert done.result is not None and object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    assert [e.result.s3_key for e in engine.of(job, Completed)] == [record.s3_key]  # same upload, resumed
    resumed = [e for e in engine.of(job, Started) if e.resumed_bytes]
    assert len(resumed) == 1 and resumed[0].resumed_bytes >= stored


def test_cancel_leaves_no_multipart_upload(make_engine: Any, make_file: Any, s3: Any, sandbox: Any) -> None:
    sample = make_file(40 * MiB)
    engine = make_engine(slow())
    job = engine.manager.add(sample.path)
    engine.wait_for(lambda: engine.manager.job(job).confirmed >= 5 * MiB)
    record = engine.state.get(job)
    assert record is not None and record.s3_key
    assert open_multipart_uploads(s3, sandbox.bucket, record.s3_key)
    engine.manager.cancel(job)
    assert engine.manager.wait([job], 10)
    assert engine.manager.job(job).status == Status.CANCELLED
    assert not open_multipart_uploads(s3, sandbox.bucket, record.s3_key)
    assert engine.state.get(job) is None


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_file_changed_between_pause_and_resume_is_refused(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    sample = make_file(40 * MiB)
    original = sample.read()
    engine = make_engine(slow())
    job = engine.manager.add(sample.path)
    engine.wait_for(lambda: engine.manager.job(job).confirmed >= 5 * MiB)
    engine.manager.pause(job)
    assert engine.manager.wait([job], 5)
    record = engine.state.get(job)
    assert record is not None and record.s3_key
    with open(sample.path, "r+b") as handle:  # someone edits the file while the upload is paused
        handle.seek(20 * MiB)
        handle.write(b"edited")
    engine.manager.resume(job)
    assert engine.manager.wait([job], 30)
    failed = engine.manager.job(job)
    assert failed.status == Status.FAILED and not failed.resumable
    assert "has changed since the upload started" in failed.message
    assert not open_multipart_uploads(s3, sandbox.bucket, record.s3_key), "the stale upload must be aborted"
    assert sample.path.read_bytes()[: 20 * MiB] == original[: 20 * MiB]  # we never write to the user's file


@contextmanager
def presigning_for_a_proxy(kind: str, sandbox: Any, workdir: Path) -> Iterator[tuple[str, str, Proxy]]:
    """A server of ``kind`` whose part URLs point at a proxy in front of storage: (its URL, a token, the proxy)."""
    if kind == NEXTJS:
        with nextjs_route(sandbox, workdir, storage_proxy=True, UPLOADER_ACTIONS="full") as route:
            assert route.storage is not None
            yield route.url, route.alice.token, route.storage
        return
    with Proxy.start(sandbox.s3_endpoint) as proxy, api_server(sandbox, workdir, s3_public_endpoint=proxy.url) as url:
        yield url, sandbox.token, proxy


def test_the_url_lifetime_setting_reaches_the_urls(
    make_engine: Any, make_file: Any, sandbox: Any, tmp_path: Path, upload_api: UploadApi
) -> None:
    sample = make_file(6 * MiB)
    with presigning_for_a_proxy(upload_api.kind, sandbox, tmp_path / "api") as (url, token, proxy):
        settings = Settings(method="presigned", url_expiry_seconds=300)
        job = make_engine(settings, api_url=url, token=token).upload(sample.path)
        lifetimes = {r.query.get("X-Amz-Expires") for r in proxy.stats.records("PUT")}
    assert job.status == Status.COMPLETED and lifetimes == {"300"}


@pytest.mark.allow_log(*RETRIED)
def test_a_chunked_retry_says_how_long_it_waits(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, upload_api: UploadApi
) -> None:
    """The window's countdown reads the delay; chunked retries used to say 0 s whatever the wait."""
    sample = make_file(6 * MiB, name="chunked-countdown.safetensors")
    busy_once: list[int] = []

    def plan(request: RequestInfo) -> Any:
        if request.method == "POST" and "offset" in request.query and not busy_once:
            busy_once.append(request.seq)
            return Respond(503, b'{"error": "busy"}', {"Content-Type": "application/json", "Retry-After": "1"})
        return None

    with Proxy.start(upload_api.url) as api:
        api.set_fault_plan(plan)
        engine = make_engine(Settings(method="chunked", backoff_base=0.05), api_url=api.url)
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    [retry] = engine.of(job.id, Retrying)
    assert retry.method == "chunked-s3" and retry.delay >= 1.0, retry
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


@pytest.mark.allow_log(*RETRIED)
def test_completion_outlasts_a_server_that_is_down_for_more_tries_than_a_part_gets(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, upload_api: UploadApi
) -> None:
    """A Next.js audit stopped its route for 15 s as the last part landed: every byte was stored, and the upload
    failed after the settings' 5 tries at 'complete'. Completion gets ten, whatever the tries per part."""
    sample = make_file(6 * MiB, name="redeployed.safetensors")
    refused: list[int] = []

    def plan(request: RequestInfo) -> Any:
        if request.method == "POST" and b'"complete"' in request.body and len(refused) < 7:
            refused.append(request.seq)
            return ResetRequest()  # the route is down: the connection breaks before it answers
        return None

    with Proxy.start(upload_api.url, peek_bytes=4096) as api:
        api.set_fault_plan(plan)
        settings = Settings(method="presigned", retries=5, backoff_base=0.05, backoff_cap=0.1)
        engine = make_engine(settings, api_url=api.url)
        job = engine.upload(sample.path)
        assert api.plan_errors == []
    assert job.status == Status.COMPLETED, job.message
    assert len(refused) == 7 and len(engine.of(job.id, Retrying)) == 7
    # Counted out of completion's own tries: the window and the log said "attempt 6/5" (an odd-inputs audit).
    assert [(r.attempt, r.max_attempts) for r in engine.of(job.id, Retrying)] == [(n, 10) for n in range(1, 8)]
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, job.result.s3_key)


@pytest.mark.allow_log(*RETRIED)
def test_a_retried_api_call_is_announced_with_its_delay(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, upload_api: UploadApi
) -> None:
    """A busy 'complete' used to be retried in silence: the window showed nothing while it waited."""
    sample = make_file(6 * MiB, name="api-countdown.safetensors")
    busy_once: list[int] = []

    def plan(request: RequestInfo) -> Any:
        if request.method == "POST" and b'"complete"' in request.body and not busy_once:
            busy_once.append(request.seq)
            return Respond(503, b'{"error": "busy"}', {"Content-Type": "application/json", "Retry-After": "1"})
        return None

    with Proxy.start(upload_api.url, peek_bytes=4096) as api:
        api.set_fault_plan(plan)
        engine = make_engine(Settings(method="presigned", backoff_base=0.05), api_url=api.url)
        job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    [retry] = engine.of(job.id, Retrying)
    assert (retry.method, retry.part, retry.busy) == ("presigned-s3", 0, True)
    assert retry.delay >= 1.0, retry
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
