"""Retry after switching between the upload API and your own S3: go on where the parts are, or start afresh.

A GUI audit's user sent a file direct to their own S3 with a wrong secret, switched the method back to
Automatic and pressed Retry: the row said the upload "was started on another server
(s3:http://…/uploads)", though nothing had been stored there. Real storage and a real API throughout.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from desktop_uploader.engine.elsewhere import StartedElsewhereError, route_for
from desktop_uploader.engine.events import Started, Status
from desktop_uploader.engine.fileid import FileIdentity
from desktop_uploader.engine.ledger import AbortLedger
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.rows import Row
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore, UploadRecord
from tests.support.logfail import UPLOAD_FAILED
from tests.support.storage import object_sha256, open_multipart_uploads

DIRECT = Settings(method="direct-s3", chunk_size=5 * MiB, concurrency=2, retries=2, backoff_base=0.05, backoff_cap=0.1)
AUTO = dataclasses.replace(DIRECT, method="auto")


def own_prefix(target: DirectTarget) -> DirectTarget:
    return dataclasses.replace(target, prefix=f"switch-{uuid.uuid4().hex[:12]}")


def objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])]


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_nothing_stored_on_your_s3_so_retry_through_the_server_starts_afresh(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, direct_target: DirectTarget
) -> None:
    sample = make_file(6 * MiB)
    wrong = dataclasses.replace(own_prefix(direct_target), secret_key="not-the-secret")
    engine = make_engine(DIRECT, direct=wrong)
    job = engine.upload(sample.path)
    assert (job.status, job.resumable) == (Status.FAILED, False), "storage refused the start: nothing to go on with"
    assert "refused your access key or secret" in job.message
    row = Row(job.id, sample.path, sample.path.name, sample.size)
    for event in engine.events:
        row.apply(event, now=0.0)
    assert row.method == "direct-s3", "the row's badge names the method that failed before sending a byte"

    engine.manager.update_settings(AUTO)  # the person gives up on their own S3 and goes back to Automatic
    engine.manager.set_direct(None)
    engine.manager.retry(job.id)
    assert engine.manager.wait([job.id], 60)
    done = engine.manager.job(job.id)
    assert done.status == Status.COMPLETED, done.message
    assert done.result is not None and done.result.method == "presigned-s3"
    assert object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, done.result.s3_key)
    assert objects(s3, sandbox.bucket, wrong.prefix) == []


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_parts_stored_on_your_s3_are_named_and_kept_until_you_switch_back(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, direct_target: DirectTarget
) -> None:
    sample = make_file(30 * MiB)
    target = own_prefix(direct_target)
    engine = make_engine(dataclasses.replace(DIRECT, bandwidth_limit=4 * MiB), direct=target)
    job_id = engine.manager.add(sample.path)
    engine.wait_for(lambda: engine.manager.job(job_id).confirmed >= 5 * MiB)
    engine.manager.pause(job_id)
    assert engine.manager.wait([job_id], 30)
    stored = engine.manager.job(job_id).confirmed

    engine.manager.update_settings(AUTO)
    engine.manager.set_direct(None)
    engine.manager.retry(job_id)
    assert engine.manager.wait([job_id], 30)
    refused = engine.manager.job(job_id)
    assert (refused.status, refused.resumable) == (Status.FAILED, True), "kept: Retry or Discard, nothing lost"
    host = target.endpoint.removeprefix("http://")
    assert refused.message == (
        f"{stored // MiB}.0 MiB of this file is stored on the S3 bucket {target.bucket} (http://{host}), where its "
        "upload started. Switch back to it to go on, or discard the upload to start again here."
    )

    engine.manager.update_settings(DIRECT)  # back to their own S3: the upload goes on from its stored parts
    engine.manager.set_direct(target)
    engine.manager.retry(job_id)
    assert engine.manager.wait([job_id], 60)
    done = engine.manager.job(job_id)
    assert done.status == Status.COMPLETED, done.message
    assert done.result is not None and objects(s3, sandbox.bucket, target.prefix) == [done.result.s3_key]
    assert object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    assert open_multipart_uploads(s3, sandbox.bucket, f"{target.prefix}/") == []
    assert any(e.resumed_bytes >= stored for e in engine.of(job_id, Started)), "went on from the stored parts"


def test_a_paused_upload_goes_on_its_own_way_after_the_method_is_changed(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any, direct_target: DirectTarget
) -> None:
    """A GUI audit paused a presigned upload with 119 MiB stored, chose direct-s3 in Settings and pressed
    Resume: the file started again over there, and the 119 MiB were left behind, an orphan."""
    sample = make_file(40 * MiB)
    target = own_prefix(direct_target)
    engine = make_engine(dataclasses.replace(AUTO, bandwidth_limit=4 * MiB), direct=target)
    job_id = engine.manager.add(sample.path)
    engine.wait_for(lambda: len(engine.state.parts(job_id)) >= 2, timeout=60)
    engine.manager.pause(job_id)
    assert engine.manager.wait([job_id], 60)
    kept = engine.manager.job(job_id).confirmed
    assert kept >= 10 * MiB

    engine.manager.update_settings(DIRECT)  # the person switches to their own S3, then resumes
    engine.manager.resume(job_id)
    assert engine.manager.wait([job_id], 60)
    done = engine.manager.job(job_id)
    assert done.status == Status.COMPLETED, done.message
    assert done.result is not None and done.result.method == "presigned-s3", "on the way its parts were stored"
    assert object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, done.result.s3_key), "nothing left behind"
    assert objects(s3, sandbox.bucket, target.prefix) == [], "not sent again to your S3"
    assert engine.of(job_id, Started)[-1].resumed_bytes == kept  # it went on; it did not start again


def test_stored_parts_whose_way_cant_run_now_are_kept_not_given_up(tmp_path: Any) -> None:
    """Going on its own way needs that way here (an upload API for presigned parts); without it the
    record and its parts are kept for later, and the person is told, rather than aborted to start again."""
    state = StateStore.open(tmp_path / "state.sqlite3")
    record = UploadRecord(
        id="0123456789abcdef",
        path=str(tmp_path / "model.safetensors"),
        display_name="model.safetensors",
        identity=FileIdentity(20 * MiB, 1, "a", "b"),
        method="presigned-s3",
        server="http://127.0.0.1:9",
        status="paused",
        upload_id="upload",
        s3_key="loras/model.safetensors",
    )
    state.create(record)
    state.record_part(record.id, 1, '"etag"', 5 * MiB)
    ledger = AbortLedger(state, dict, lambda _record: None)
    with pytest.raises(StartedElsewhereError) as refused:
        route_for(record, ["direct-s3"], state, ledger, lambda _method: False)
    assert refused.value.message == (
        "5.0 MiB of this file was sent by presigned-s3, which can't run now. "
        "Switch back to it to go on, or discard the upload to start again."
    )
    assert state.get(record.id) is not None and state.parts(record.id), "kept, parts and all"
    state.close()
