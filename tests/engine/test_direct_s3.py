"""direct-s3 against the sandbox's real S3 with a fault proxy in front: lost answers and busy storage.

SeaweedFS can't be told to lose an answer or to be busy, so a proxy between the engine and its S3
port does that (tests/support/proxy.py); everything else is the real engine and the real store.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from desktop_uploader.engine.events import Retrying, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.settings import Settings
from tests.support.logfail import RETRIED, UPLOAD_FAILED
from tests.support.proxy import Action, Proxy, RequestInfo, ResetResponse, Respond
from tests.support.storage import object_sha256, open_multipart_uploads

FAST = Settings(method="direct-s3", chunk_size=5 * MiB, concurrency=2, retries=3, backoff_base=0.05, backoff_cap=0.05)
NO_SUCH_UPLOAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code>'
    b"<Message>The specified multipart upload does not exist.</Message></Error>"
)


def is_create(request: RequestInfo) -> bool:
    return request.method == "POST" and "uploads" in request.query


def is_complete(request: RequestInfo) -> bool:
    return request.method == "POST" and "uploadId" in request.query and "partNumber" not in request.query


def first(matches: Callable[[RequestInfo], bool], action: Action) -> Callable[[RequestInfo], Action | None]:
    """A fault plan that breaks only the first request ``matches`` picks."""
    seen: list[int] = []

    def plan(request: RequestInfo) -> Action | None:
        if matches(request) and not seen:
            seen.append(request.seq)
            return action
        return None

    return plan


@pytest.fixture
def proxy(sandbox: Any) -> Iterator[Proxy]:
    with Proxy.start(sandbox.s3_endpoint) as started:
        yield started


@pytest.fixture
def target(direct_target: DirectTarget, proxy: Proxy) -> DirectTarget:
    """The sandbox's bucket through the proxy, under a prefix of this test's own, so its objects can be counted."""
    return dataclasses.replace(direct_target, endpoint=proxy.url, prefix=f"direct-{uuid.uuid4().hex[:12]}")


def objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])]


def assert_stored_once(s3: Any, sandbox: Any, target: DirectTarget, job: Any, sha256: str) -> None:
    """What a user would check: one object, the file's bytes, nothing half-done left in the bucket."""
    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None and job.result.method == "direct-s3"
    assert objects(s3, sandbox.bucket, target.prefix) == [job.result.s3_key], "exactly one object"
    assert object_sha256(s3, sandbox.bucket, job.result.s3_key) == sha256
    assert open_multipart_uploads(s3, sandbox.bucket, f"{target.prefix}/") == []


@pytest.mark.allow_log(*RETRIED, *UPLOAD_FAILED)
def test_a_lost_complete_answer_then_retry_stores_the_file_once(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, target: DirectTarget, proxy: Proxy
) -> None:
    """The answer to CompleteMultipartUpload is lost after storage acted, and storage can't be asked right
    then either: the upload fails. Retry must find the stored object, not upload the file a second time."""
    sample = make_file(12 * MiB, name="lost-complete.safetensors")
    lose_complete = first(is_complete, ResetResponse(0))
    proxy.set_fault_plan(lambda r: lose_complete(r) or (Respond(503) if r.method == "HEAD" else None))
    engine = make_engine(FAST.replace(retries=1), direct=target)
    job = engine.upload(sample.path)
    assert job.status == Status.FAILED and job.resumable, job.message
    assert len(objects(s3, sandbox.bucket, target.prefix)) == 1, "storage did complete the upload"

    proxy.set_fault_plan(None)
    engine.manager.retry(job.id)
    assert engine.manager.wait([job.id], 60)
    assert_stored_once(s3, sandbox, target, engine.manager.job(job.id), sample.sha256)
    assert engine.state.get(job.id) is None


@pytest.mark.allow_log(*RETRIED)
def test_a_lost_complete_answer_is_retried_within_the_upload(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, target: DirectTarget, proxy: Proxy
) -> None:
    sample = make_file(12 * MiB, name="lost-complete-retried.safetensors")
    proxy.set_fault_plan(first(is_complete, ResetResponse(0)))
    engine = make_engine(FAST, direct=target)
    job = engine.upload(sample.path)
    assert_stored_once(s3, sandbox, target, job, sample.sha256)


@pytest.mark.allow_log(*RETRIED)
def test_a_retried_complete_answered_no_such_upload_reports_the_stored_object(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, target: DirectTarget, proxy: Proxy
) -> None:
    """AWS answers a repeated complete with NoSuchUpload once it has cleaned up (SeaweedFS answers 200):
    the lost answer's object is then found by asking storage, and reported."""
    sample = make_file(12 * MiB, name="lost-complete-gone.safetensors")
    completes: list[int] = []

    def plan(request: RequestInfo) -> Action | None:
        if not is_complete(request):
            return None
        completes.append(request.seq)
        if len(completes) == 1:
            return ResetResponse(0)
        return Respond(404, NO_SUCH_UPLOAD, {"Content-Type": "application/xml"})

    proxy.set_fault_plan(plan)
    engine = make_engine(FAST, direct=target)
    job = engine.upload(sample.path)
    assert_stored_once(s3, sandbox, target, job, sample.sha256)
    assert len(completes) == 2


@pytest.mark.allow_log(*RETRIED)
def test_storage_busy_on_create_and_complete_is_retried(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, target: DirectTarget, proxy: Proxy
) -> None:
    sample = make_file(12 * MiB, name="busy.safetensors")
    busy_create, busy_complete = first(is_create, Respond(503)), first(is_complete, Respond(503))
    proxy.set_fault_plan(lambda r: busy_create(r) or busy_complete(r))
    engine = make_engine(FAST, direct=target)
    job = engine.upload(sample.path)
    assert_stored_once(s3, sandbox, target, job, sample.sha256)
    retried = engine.of(job.id, Retrying)
    assert [(e.method, e.attempt, e.busy) for e in retried] == [("direct-s3", 1, True)] * 2
    assert all(0 <= e.delay <= FAST.backoff_cap for e in retried)
    assert "busy" in retried[0].reason
    statuses = [r.status for r in proxy.stats.records("POST")]
    assert statuses.count(503) == 2


@pytest.mark.allow_log(*RETRIED)
def test_a_lost_create_answer_leaves_no_multipart_upload(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, target: DirectTarget, proxy: Proxy
) -> None:
    """Storage created an upload but its answer was lost; the retried create made a second one. The first,
    whose id nobody was told, is found by its key and aborted."""
    sample = make_file(7 * MiB, name="lost-create.safetensors")
    proxy.set_fault_plan(first(is_create, ResetResponse(0)))
    engine = make_engine(FAST, direct=target)
    job = engine.upload(sample.path)
    assert_stored_once(s3, sandbox, target, job, sample.sha256)
    assert len([r for r in proxy.stats.records("POST") if "uploads" in r.query]) == 2


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_refused_keys_fail_at_once_whatever_the_message_says(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, target: DirectTarget, proxy: Proxy
) -> None:
    """S3's error code decides, not its message: an AccessDenied whose message mentions expiry is still refused
    keys (not an expired link to re-sign), so it is said once, in words, and not retried."""
    sample = make_file(6 * MiB, name="refused.safetensors")
    denied = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    proxy.set_fault_plan(lambda r: Respond(403, denied, {"Content-Type": "application/xml"}) if is_create(r) else None)
    engine = make_engine(FAST, direct=target)
    job = engine.upload(sample.path)
    assert job.status == Status.FAILED
    assert job.message.endswith("refused your access key or secret (AccessDenied). Check them in Settings.")
    assert engine.of(job.id, Retrying) == []
    assert len([r for r in proxy.stats.records("POST") if is_create(r)]) == 1
    assert objects(s3, sandbox.bucket, target.prefix) == []


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_missing_bucket_is_said_plainly_and_not_retried(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, target: DirectTarget, proxy: Proxy
) -> None:
    """The sandbox's SeaweedFS creates buckets on demand, so the proxy answers as S3 does without the bucket."""
    sample = make_file(6 * MiB, name="no-bucket.safetensors")
    missing = b"<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>"
    proxy.set_fault_plan(lambda r: Respond(404, missing, {"Content-Type": "application/xml"}) if is_create(r) else None)
    engine = make_engine(FAST, direct=target)
    job = engine.upload(sample.path)
    assert job.status == Status.FAILED and not job.resumable
    assert job.message.startswith("The bucket does not exist at ") and job.message.endswith("in Settings.")
    assert engine.of(job.id, Retrying) == []
    assert engine.state.unfinished() == [], "nothing to resume, and nothing owed: there is no bucket to clean"


@pytest.mark.parametrize("then", ["retry", "cancel"])
@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_create_whose_answer_was_lost_is_cleaned_up_by_retry_or_cancel(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, target: DirectTarget, proxy: Proxy, then: str
) -> None:
    """Out of retries with the create's answer lost: storage holds an upload nobody was told the id of. The
    intent record written before the create names its key, so Retry or Cancel finds and aborts it."""
    sample = make_file(7 * MiB, name=f"lost-create-{then}.safetensors")
    proxy.set_fault_plan(first(is_create, ResetResponse(0)))
    engine = make_engine(FAST.replace(retries=1), direct=target)
    job = engine.upload(sample.path)
    assert job.status == Status.FAILED and job.resumable, job.message
    assert "Error" not in job.message, "a sentence, not a class name"
    assert len(open_multipart_uploads(s3, sandbox.bucket, f"{target.prefix}/")) == 1, "storage did create it"

    if then == "retry":
        engine.manager.retry(job.id)
        assert engine.manager.wait([job.id], 60)
        assert_stored_once(s3, sandbox, target, engine.manager.job(job.id), sample.sha256)
    else:
        engine.manager.cancel(job.id)
        engine.wait_for(lambda: engine.state.unfinished() == [])
        assert open_multipart_uploads(s3, sandbox.bucket, f"{target.prefix}/") == []
        assert objects(s3, sandbox.bucket, target.prefix) == []
