"""A full disk under the resume store, on a real (small) tmpfs: nothing is sent twice, and it is said once.

A completed upload whose record can't be cleared (no room to write the deletion) must not be uploaded
again: resuming it finds every part confirmed, completes it again, and storage answers with the object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Notice, Started, Status, StatusChanged
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.disks import fill
from tests.support.storage import object_sha256

FULL = "Your disk is full, so upload progress can't be saved for resuming. Free some space."


@pytest.mark.allow_log(r"engine\.methods\.base: .*: Your disk is full")
def test_a_completed_upload_whose_record_cant_be_cleared_is_not_sent_again(
    make_engine: Any, make_file: Any, small_disk: Path, s3: Any, sandbox: Any
) -> None:
    sample = make_file(12 * MiB, name="full-disk.ckpt")
    state_path = small_disk / "data" / "uploads.sqlite3"
    engine = make_engine(Settings(chunk_size=5 * MiB, concurrency=2), state_path=state_path)
    fillers: list[Path] = []

    def fill_when_completing(event: Any) -> None:
        # Every part is recorded by now; only clearing the record at the end is left to write.
        if isinstance(event, StatusChanged) and event.status == Status.COMPLETING and not fillers:
            fillers.append(fill(small_disk))

    engine.manager.subscribe(fill_when_completing)
    first = engine.upload(sample.path)
    assert first.status == Status.COMPLETED, first.message
    assert fillers, "the disk was filled before completion"
    full = [e.message for e in engine.of(first.id, Notice) if "disk is full" in e.message]
    assert full == [FULL], "the person hears about the full disk, once"
    assert object_sha256(s3, sandbox.bucket, first.result.s3_key) == sample.sha256
    assert [r.id for r in engine.state.unfinished()] == [first.id], "the record could not be cleared"

    second = engine.upload(make_file(6 * MiB, name="while-full.ckpt").path)  # the disk is still full
    assert second.status == Status.COMPLETED, second.message
    said = [e.message for e in engine.events if isinstance(e, Notice) and "disk is full" in e.message]
    assert said == [FULL], "one full disk is said once, not once per file"

    engine.manager.close(timeout=10)
    engine.state.close()
    os.unlink(fillers[0])
    again = make_engine(Settings(chunk_size=5 * MiB, concurrency=2), state_path=state_path)
    [restored] = again.manager.restore_interrupted()
    again.manager.resume(restored)
    assert again.manager.wait([restored], 60)
    resumed = again.manager.job(restored)
    assert resumed.status == Status.COMPLETED, resumed.message
    assert resumed.result is not None and resumed.result.bytes_sent == 0, "nothing was sent a second time"
    assert resumed.result.s3_key == first.result.s3_key
    assert again.state.unfinished() == []


@pytest.mark.allow_log(r"engine\.methods\.base: .*: Your disk is full")
def test_an_upload_completed_while_the_disk_was_full_is_found_in_storage_not_sent_again(
    make_engine: Any, make_file: Any, small_disk: Path, s3: Any, sandbox: Any
) -> None:
    """The disk fills as the upload starts: no part is recorded, and the record outlives the upload.

    Whether SQLite's last write fails depends on pages it happens to hold already; that is not what
    this test is about. So the first phase is run until the record did outlive the upload (at most
    five times), and everything after is checked in that state.
    """
    sample = make_file(12 * MiB, name="full-from-the-start.ckpt")

    def first_phase(attempt: int) -> tuple[Any, Path, list[str], dict[int, Any]] | None:
        state_path = small_disk / f"data-{attempt}" / "uploads.sqlite3"
        engine = make_engine(Settings(chunk_size=5 * MiB, concurrency=2), state_path=state_path)
        fillers: list[Path] = []

        def fill_when_started(event: Any) -> None:
            if isinstance(event, Started) and not fillers:  # the record exists; none of its parts will
                fillers.append(fill(small_disk))
            elif isinstance(event, StatusChanged) and event.status == Status.COMPLETING:
                fill(small_disk)  # a failed write may have freed a page or two: full again for the last one

        engine.manager.subscribe(fill_when_started)
        first = engine.upload(sample.path)
        assert first.status == Status.COMPLETED, first.message
        kept = engine.state.get(first.id) is not None
        notices = [e.message for e in engine.of(first.id, Notice) if "disk is full" in e.message]
        parts = engine.state.parts(first.id)
        engine.manager.close(timeout=10)
        engine.state.close()
        os.unlink(fillers[0])
        return (first, state_path, notices, parts) if kept else None

    established = next(filter(None, (first_phase(attempt) for attempt in range(5))), None)
    assert established is not None, "in five tries the full disk never kept SQLite from clearing the record"
    first, state_path, notices, parts = established
    assert notices == [FULL]
    assert parts == {}, "no part could be recorded"

    # The first engine is closed: its run has let go of the upload's lock, so this is not "running elsewhere".
    again = make_engine(Settings(chunk_size=5 * MiB, concurrency=2), state_path=state_path)
    assert again.manager.restore_interrupted() == [first.id], "the record that outlived the upload is offered"
    restored = first.id
    again.manager.resume(restored)
    assert again.manager.wait([restored], 60)
    resumed = again.manager.job(restored)
    assert resumed.status == Status.COMPLETED, resumed.message
    assert resumed.result is not None and resumed.result.bytes_sent == 0, "storage had it: nothing sent again"
    assert resumed.result.s3_key == first.result.s3_key
    assert resumed.result.comfyui_path == first.result.comfyui_path
    assert object_sha256(s3, sandbox.bucket, resumed.result.s3_key) == sample.sha256
    assert again.state.unfinished() == []


def test_an_upload_whose_lock_file_cant_be_made_fails_resumable_instead_of_hanging(
    make_engine: Any, make_file: Any, inodeless_disk: Path, tmp_path: Path
) -> None:
    """The first upload on a full disk can't create its lock file: it used to sit in 'Starting' for ever."""
    store = tmp_path / "store" / "state.sqlite3"
    store.parent.mkdir()
    (store.parent / "locks").symlink_to(inodeless_disk, target_is_directory=True)
    sample = make_file(1024 * 1024, name="no-room-for-a-lock.safetensors")
    engine = make_engine(state_path=store)

    job = engine.upload(sample.path, timeout=30)

    assert (job.status, job.resumable) == (Status.FAILED, True)
    assert job.message.startswith("Your disk is full"), job.message
    assert engine.manager.restore_interrupted() == [], "checking for a lock nobody could make is not an error"
