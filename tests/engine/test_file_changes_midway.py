"""A file deleted or grown while it uploads: said as it happened, and Retry sends it as it is now.

From a GUI audit: a file deleted mid-upload was told to "start the upload again to send the new
version"; both rows went on saying "15.0 MiB of 47.7 MiB stored" after their parts were aborted; and
the grown file, retried, still showed its old size at 100 %. Real API and storage; the row is folded
from the engine's own events, as the window does.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from desktop_uploader.engine.events import Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.rows import Row
from desktop_uploader.engine.settings import Settings
from tests.support.logfail import UPLOAD_FAILED
from tests.support.storage import object_sha256, open_multipart_uploads

# 2 MB/s: a 40 MiB file takes about 20 s, and a change is seen within the 2 s between the engine's checks.
SLOW = Settings(method="presigned", chunk_size=5 * MiB, concurrency=2, bandwidth_limit=2 * MiB)


def row_of(engine: Any, job_id: str, sample: Any) -> Row:
    row = Row(job_id, sample.path, sample.path.name, sample.size)
    for event in engine.events:
        if event.job_id == job_id:
            row.apply(event, now=0.0)
    return row


def started_and_stored(engine: Any, sample: Any) -> tuple[str, str]:
    job_id = engine.manager.add(sample.path)
    engine.wait_for(lambda: engine.manager.job(job_id).confirmed >= 5 * MiB)
    record = engine.state.get(job_id)
    assert record is not None and record.s3_key
    return job_id, record.s3_key


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_file_deleted_while_it_uploads_is_said_deleted_and_goes_on_once_it_is_back(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    sample = make_file(40 * MiB, name="deleted.safetensors")
    binned = sample.path.with_name("in-the-bin.bin")
    engine = make_engine(SLOW)
    job_id, key = started_and_stored(engine, sample)
    sample.path.rename(binned)  # deleted to the bin (a move, on every desktop)
    assert engine.manager.wait([job_id], 30)
    view = engine.manager.job(job_id)
    assert (view.status, view.resumable) == (Status.FAILED, True), "kept: the parts stored wait for the file"
    assert view.message == (
        "deleted.safetensors was deleted or moved. "
        "Put it back to go on, or discard the upload to delete any of it already stored."
    )
    kept = view.confirmed
    assert kept >= 5 * MiB and row_of(engine, job_id, sample).confirmed == kept
    assert open_multipart_uploads(s3, sandbox.bucket, key), "its upload is kept on the server"

    binned.rename(sample.path)  # restored from the bin
    engine.manager.update_settings(SLOW.replace(bandwidth_limit=0))
    engine.manager.retry(job_id)
    assert engine.manager.wait([job_id], 60)
    done = engine.manager.job(job_id)
    assert done.status == Status.COMPLETED and done.result is not None, done.message
    assert done.result.s3_key == key, "the same upload went on"
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, key)


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_file_grown_while_it_uploads_is_sent_again_whole_at_its_new_size(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    sample = make_file(40 * MiB, name="grown.safetensors")
    engine = make_engine(SLOW)
    job_id, key = started_and_stored(engine, sample)
    with open(sample.path, "ab") as handle:  # a training run writes its checkpoint on
        handle.write(b"\x07" * 3 * MiB)
    assert engine.manager.wait([job_id], 30)
    failed = engine.manager.job(job_id)
    assert failed.status == Status.FAILED and failed.message.startswith("grown.safetensors was changed while")
    assert (failed.confirmed, row_of(engine, job_id, sample).confirmed) == (0, 0)
    assert not open_multipart_uploads(s3, sandbox.bucket, key)

    engine.manager.update_settings(SLOW.replace(bandwidth_limit=0))
    engine.manager.retry(job_id)
    assert engine.manager.wait([job_id], 60)
    done = engine.manager.job(job_id)
    assert done.status == Status.COMPLETED and done.result is not None, done.message
    assert done.size == done.result.size == 43 * MiB
    assert object_sha256(s3, sandbox.bucket, done.result.s3_key) == hashlib.sha256(sample.read()).hexdigest()
    row = row_of(engine, job_id, sample)
    assert (row.size, row.progress_text()) == (43 * MiB, "43.0 MiB · 100%")


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_file_cut_short_while_it_uploads_says_what_to_do(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    """A CLI audit's truncated file was told only that it "became shorter", with no next step."""
    sample = make_file(40 * MiB, name="cut.safetensors")
    engine = make_engine(SLOW)
    job_id, key = started_and_stored(engine, sample)
    with open(sample.path, "r+b") as handle:
        handle.truncate(12 * MiB)
    assert engine.manager.wait([job_id], 30)
    failed = engine.manager.job(job_id)
    assert failed.status == Status.FAILED and failed.message.startswith("cut.safetensors ")
    assert failed.message.endswith(" while it was uploading. Start the upload again to send the new version.")
    assert not open_multipart_uploads(s3, sandbox.bucket, key)


def overwrite_keeping_mtime(path: Any, offset: int, data: bytes) -> None:
    """An edit in place that puts the modification time back, as ``touch -r`` does."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_file_edited_in_the_middle_with_its_mtime_put_back_is_never_stored_mixed(
    make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    """A big-file audit paused, overwrote 1 MiB of what was stored, restored the mtime, and resumed: "completed",
    and storage held a mix of both versions. Size, mtime, head and tail all matched; the change time did not."""
    sample = make_file(40 * MiB, name="edited.safetensors")
    engine = make_engine(SLOW)
    job_id, key = started_and_stored(engine, sample)
    engine.manager.pause(job_id)
    engine.wait_for(lambda: engine.manager.job(job_id).status == Status.PAUSED)
    overwrite_keeping_mtime(sample.path, 2 * MiB, b"\x5a" * MiB)  # inside the first part, stored already
    engine.manager.update_settings(SLOW.replace(bandwidth_limit=0))
    engine.manager.resume(job_id)
    assert engine.manager.wait([job_id], 60)
    failed = engine.manager.job(job_id)
    assert failed.status == Status.FAILED, failed.message
    assert failed.message == (
        "edited.safetensors was changed while it was uploading, so the parts already stored no longer match it. "
        "Start the upload again to send the new version."
    )
    assert "Contents" not in s3.list_objects_v2(Bucket=sandbox.bucket, Prefix=key), "nothing mixed is stored"
    assert not open_multipart_uploads(s3, sandbox.bucket, key)

    engine.manager.retry(job_id)
    assert engine.manager.wait([job_id], 60)
    done = engine.manager.job(job_id)
    assert done.status == Status.COMPLETED and done.result is not None, done.message
    assert object_sha256(s3, sandbox.bucket, done.result.s3_key) == hashlib.sha256(sample.path.read_bytes()).hexdigest()
