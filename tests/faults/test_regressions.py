"""Each bug the seeded runs found, pinned down by a deterministic test of its own (the seed is in the name)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Event, Status, StatusChanged
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.manager import ServerConnection, UploadManager
from desktop_uploader.engine.rows import Row
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore
from tests.faults.harness import World, open_uploads, stored_objects
from tests.support.logfail import FAULTS
from tests.support.proxy import Delay, Replace, RequestInfo, ResetResponse, Respond
from tests.support.storage import object_sha256
from tests.support.waiting import wait_until

# Faults are injected on purpose here: the retries and failures they cause are logged, and expected.
pytestmark = pytest.mark.allow_log(*FAULTS)

FAST = Settings(
    chunk_size=5 * MiB,
    concurrency=2,
    retries=2,
    backoff_base=0.05,
    backoff_cap=0.1,
    connect_timeout=1.0,
    read_timeout=1.0,
    complete_timeout=10.0,
)
BUSY = Respond(503, b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>")


@pytest.fixture
def engine(world: World, tmp_path: Path) -> Iterator[Callable[..., tuple[UploadManager, StateStore]]]:
    made: list[tuple[UploadManager, StateStore]] = []

    def make(settings: Settings = FAST) -> tuple[UploadManager, StateStore]:
        state = StateStore.open(tmp_path / f"state-{len(made)}.sqlite3")
        connection = ServerConnection(world.api_url, world.sandbox.token, "fault-api", "faults")
        manager = UploadManager(settings, state, connection)
        made.append((manager, state))
        return manager, state

    world.install(None)
    yield make
    world.install(None)
    for manager, state in made:
        manager.close(timeout=10)
        state.close()


def test_seed_0_cancelling_a_failed_resumable_upload_aborts_it(world: World, engine: Any, make_file: Any) -> None:
    """A failure kept for Retry still holds a multipart upload; Cancel (and the GUI's Discard) used to do nothing."""
    sample = make_file(12 * MiB, name="regression-cancel.safetensors")
    world.storage_proxy.set_fault_plan(
        lambda r: BUSY if r.method == "PUT" and r.query.get("partNumber") == "2" else None
    )
    manager, state = engine(FAST.replace(method="presigned"))
    job = manager.add(sample.path)
    assert manager.wait([job], 60)
    view = manager.job(job)
    assert view.status == Status.FAILED and view.resumable, view.message
    assert open_uploads(world, sample.path.name), "the failure keeps the upload for Retry"

    manager.cancel(job)
    assert manager.job(job).status == Status.CANCELLED
    wait_until(lambda: state.get(job) is None)
    assert not open_uploads(world, sample.path.name)
    assert state.unfinished() == []


def api_action_is(name: str) -> Callable[[RequestInfo], bool]:
    from tests.faults.scenario import api_action

    return lambda request: api_action(request) == name


GATEWAY_PAGE = Replace(502, b"<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"})


@pytest.mark.parametrize(("method", "complete"), [("presigned", "presigned:complete"), ("chunked", "chunked:complete")])
def test_seeds_37_and_1030_a_complete_whose_answers_were_lost_resumes_without_a_second_copy(
    world: World, engine: Any, make_file: Any, method: str, complete: str
) -> None:
    """The server completed the upload, every answer was lost; Retry used to find the upload gone and store the
    file again under a new key (found by seed 37 for presigned, by seed 1030's kill -9 for chunked)."""
    sample = make_file(12 * MiB, name=f"regression-complete-{method}.safetensors")
    is_complete = api_action_is(complete)
    world.api_proxy.set_fault_plan(lambda r: GATEWAY_PAGE if is_complete(r) else None)
    manager, state = engine(FAST.replace(method=method))
    job = manager.add(sample.path)
    assert manager.wait([job], 60)
    view = manager.job(job)
    assert view.status == Status.FAILED and view.resumable, view.message

    world.api_proxy.set_fault_plan(None)
    manager.retry(job)
    assert manager.wait([job], 60)
    view = manager.job(job)
    assert view.status == Status.COMPLETED, view.message
    keys = stored_objects(world, sample.path.name)
    assert keys == [view.result.s3_key if view.result else ""], "one object, the one the first attempt completed"
    assert object_sha256(world.s3, world.sandbox.bucket, keys[0]) == sample.sha256
    assert state.unfinished() == []


@pytest.mark.parametrize("method", ["presigned", "chunked"])
def test_seed_41_uploads_created_by_starts_whose_answers_were_lost_are_aborted(
    world: World, engine: Any, make_file: Any, method: str
) -> None:
    """Every answer to start was lost after the server created an upload: each attempt left an upload nobody
    knew the id of (found by seed 41). Now the intent the job wrote before starting finds and aborts them."""
    sample = make_file(7 * MiB, name=f"regression-start-{method}.safetensors")
    is_start = api_action_is(f"{method}:start")
    world.api_proxy.set_fault_plan(lambda r: ResetResponse(0) if is_start(r) else None)
    manager, state = engine(FAST.replace(method=method))
    job = manager.add(sample.path)
    assert manager.wait([job], 60)
    view = manager.job(job)
    assert view.status == Status.FAILED, view.message
    # The starts are the requests the plan reset (a presigned job also asks the server to list uploads first).
    starts = [r for r in world.api_proxy.stats.records() if is_start_record(r, method) and r.action == "ResetResponse"]
    assert len(starts) == FAST.retries
    assert open_uploads(world, sample.path.name), "the server did create uploads for the lost starts"

    world.api_proxy.set_fault_plan(None)
    manager.cancel(job) if view.resumable else manager.remove(job)
    wait_until(lambda: not open_uploads(world, sample.path.name) and state.unfinished() == [])
    assert manager.sweep_owed_aborts().still_owed == 0


def test_seed_41_a_start_retried_after_lost_answers_keeps_one_upload(world: World, engine: Any, make_file: Any) -> None:
    sample = make_file(7 * MiB, name="regression-start-retried.safetensors")
    is_start = api_action_is("chunked:start")
    lost: list[int] = []

    def lose_two(request: RequestInfo) -> Any:
        if is_start(request) and len(lost) < 2:
            lost.append(request.seq)
            return ResetResponse(0)
        return None

    world.api_proxy.set_fault_plan(lose_two)
    manager, state = engine(FAST.replace(method="chunked", retries=3))
    job = manager.add(sample.path)
    assert manager.wait([job], 60)
    view = manager.job(job)
    assert view.status == Status.COMPLETED, view.message
    assert open_uploads(world, sample.path.name) == {}, "the two uploads whose answers were lost are aborted"
    assert state.unfinished() == []


def is_start_record(record: Any, method: str) -> bool:
    return record.method == "POST" and record.path.endswith(f"{method}-upload") and "offset" not in record.query


def test_retry_right_after_a_failure_is_not_refused_as_running_elsewhere(
    world: World, engine: Any, make_file: Any
) -> None:
    """Retry the moment a failure is reported: the failed run was still letting go of the upload's lock, and the
    retry failed with "already running in another window" (found while pinning down seed 37)."""
    sample = make_file(6 * MiB, name="regression-retry-race.safetensors")
    world.storage_proxy.set_fault_plan(lambda r: BUSY if r.method == "PUT" else None)
    manager, _ = engine(FAST.replace(method="presigned", retries=1, fallback=False))
    job = manager.add(sample.path)
    for _ in range(5):
        assert manager.wait([job], 60)
        view = manager.job(job)
        assert view.status == Status.FAILED and "another" not in view.message, view.message
        manager.retry(job)
    world.storage_proxy.set_fault_plan(None)
    assert manager.wait([job], 60)
    assert manager.job(job).status == Status.COMPLETED


def test_seed_1122_cancel_right_after_a_failure_aborts_the_upload(world: World, engine: Any, make_file: Any) -> None:
    """Cancel the moment a failure is reported: the abort found the upload's lock still held by the failed run,
    gave up with a warning, and left the record and the multipart upload behind (seeds 1084 and 1122)."""
    world.storage_proxy.set_fault_plan(
        lambda r: BUSY if r.method == "PUT" and r.query.get("partNumber") == "2" else None
    )
    manager, state = engine(FAST.replace(method="presigned", retries=1))
    for round_ in range(3):
        sample = make_file(7 * MiB, name=f"regression-cancel-race-{round_}.safetensors")
        job = manager.add(sample.path)
        assert manager.wait([job], 60)
        assert manager.job(job).resumable
        manager.cancel(job)
        wait_until(lambda: state.get(job) is None)  # noqa: B023 - used before the loop moves on
        assert not open_uploads(world, sample.path.name)


def test_seed_1039_a_lost_start_the_server_handles_after_the_resume_swept_is_aborted(
    world: World, engine: Any, make_file: Any
) -> None:
    """Killed right after sending start, resumed at once: the server created the lost start's upload only
    after the resume had swept for it, and it stayed behind (seed 1039). The server handles requests
    concurrently, so a request sent earlier can land later; once the resume's own start has been answered,
    it sweeps again. Here the lost start is held 0.4 s on its way, the resume's own 0.8 s."""
    import threading
    import time

    import requests

    from desktop_uploader.engine.fileid import identify
    from desktop_uploader.engine.filenames import safe_basename
    from desktop_uploader.engine.state import UploadRecord

    sample = make_file(7 * MiB, name="regression-late-start.safetensors")
    is_start = api_action_is("presigned:start")
    starts: list[int] = []

    def late_starts(request: RequestInfo) -> Any:
        if not is_start(request):
            return None
        starts.append(1)
        return Delay(0.4 if len(starts) == 1 else 0.8)

    world.api_proxy.set_fault_plan(late_starts)
    manager, state = engine()
    # What the killed run left: its intent in the resume store, and its start on the way to the server.
    state.create(
        UploadRecord(
            id="killed-run",
            path=str(sample.path),
            display_name=sample.path.name,
            identity=identify(sample.path),
            method="presigned-s3",
            server="fault-api",
            unique_file_name=safe_basename(sample.path.name),
            created_at=time.time(),
        )
    )
    lost = threading.Thread(
        target=requests.post,
        args=(f"{world.api_url}/api/user/influencers/presigned-upload",),
        kwargs={
            "json": {"action": "start", "fileName": sample.path.name, "totalParts": 2, "fileSize": sample.size},
            "headers": {"Authorization": f"Bearer {world.sandbox.token}"},
            "timeout": 30,
        },
    )
    lost.start()
    wait_until(lambda: len(starts) == 1)
    [job] = manager.restore_interrupted()
    manager.resume(job)
    assert manager.wait([job], 60)
    lost.join(30)
    view = manager.job(job)
    assert view.status == Status.COMPLETED, view.message
    assert len(starts) == 2
    assert view.result is not None
    assert object_sha256(world.s3, world.sandbox.bucket, view.result.s3_key) == sample.sha256
    assert open_uploads(world, sample.path.name) == {}, "the lost start's upload was left behind"
    assert state.unfinished() == []


@pytest.mark.parametrize("other", ["another server", "no server"])
def test_an_upload_discarded_while_connected_elsewhere_stays_owed_to_its_server(
    world: World, tmp_path: Path, make_file: Any, other: str
) -> None:
    """Discard (and the sweep) in a session connected to another server, or to none, must not drop an abort
    owed to the server that holds the upload: an abort sent elsewhere reads "no such upload" and the real one
    would be orphaned for good. Once connected back to its own server, the sweep aborts it."""
    from tests.faults.targets import direct_target

    sample = make_file(7 * MiB, name=f"regression-elsewhere-{other.replace(' ', '-')}.safetensors")
    database = tmp_path / "state.sqlite3"
    home = ServerConnection(world.api_url, world.sandbox.token, world.api_url, "faults")
    elsewhere = ServerConnection(world.seed_api_proxy.url, world.sandbox.token, world.seed_api_proxy.url, "seed")
    world.install(None)
    world.storage_proxy.set_fault_plan(
        lambda r: BUSY if r.method == "PUT" and r.query.get("partNumber") == "2" else None
    )

    def session(connection: ServerConnection | None) -> tuple[UploadManager, StateStore]:
        state = StateStore.open(database)
        # direct-s3 to another bucket: a direct target that is not the presigned upload's server either
        other_bucket = direct_target(world, "x")
        return UploadManager(FAST.replace(method="presigned"), state, connection, direct=other_bucket), state

    manager, state = session(home)
    try:
        job = manager.add(sample.path)
        assert manager.wait([job], 60)
        assert manager.job(job).resumable, manager.job(job).message
    finally:
        manager.close(timeout=10)
        state.close()
    world.storage_proxy.set_fault_plan(None)
    [upload_id] = open_uploads(world, sample.path.name)

    manager, state = session(elsewhere if other == "another server" else None)
    try:
        [record] = state.unfinished()
        settled = manager.discard_record(record.id)
        assert not settled.aborted and settled.target == world.api_url
        sweep = manager.sweep_owed_aborts()
        assert (sweep.settled, sweep.still_owed, sweep.elsewhere) == (0, 0, 1)
        [owed] = manager.owed_aborts()
        assert owed.upload_id == upload_id and owed.server == world.api_url
    finally:
        manager.close(timeout=10)
        state.close()
    assert list(open_uploads(world, sample.path.name)) == [upload_id], "the upload was dropped, not aborted"

    manager, state = session(home)
    try:
        sweep = manager.sweep_owed_aborts()
        assert (sweep.settled, sweep.still_owed, sweep.elsewhere) == (1, 0, 0)
        assert state.unfinished() == []
    finally:
        manager.close(timeout=10)
        state.close()
    assert open_uploads(world, sample.path.name) == {}


def test_cancelling_an_upload_held_by_another_server_says_its_parts_stay_there(
    world: World, tmp_path: Path, make_file: Any
) -> None:
    """The row read "Cancelled" (and no stored size, as for parts deleted) while the parts stayed on the server
    the upload began on: the person had switched servers since, and only the log said so."""
    sample = make_file(7 * MiB, name="cancel-elsewhere.safetensors")
    home = ServerConnection(world.api_url, world.sandbox.token, world.api_url, "faults")
    elsewhere = ServerConnection(world.seed_api_proxy.url, world.sandbox.token, world.seed_api_proxy.url, "seed")
    world.install(None)
    world.storage_proxy.set_fault_plan(
        lambda r: BUSY if r.method == "PUT" and r.query.get("partNumber") == "2" else None
    )
    state = StateStore.open(tmp_path / "state.sqlite3")
    manager = UploadManager(FAST.replace(method="presigned"), state, home)
    seen: list[Event] = []
    manager.subscribe(seen.append)
    try:
        job = manager.add(sample.path)
        assert manager.wait([job], 60)
        assert manager.job(job).resumable, manager.job(job).message
        world.storage_proxy.set_fault_plan(None)
        [upload_id] = open_uploads(world, sample.path.name)

        manager.set_connection(elsewhere)  # the person switched servers, then discards the failed upload
        manager.cancel(job)
        wait_until(lambda: manager.owed_aborts() != [], timeout=30)
        wait_until(lambda: isinstance(seen[-1], StatusChanged) and seen[-1].status is Status.CANCELLED, timeout=10)
    finally:
        manager.close(timeout=10)
        state.close()

    row = Row(job, sample.path, sample.path.name, sample.path.stat().st_size)
    for event in seen:
        if event.job_id == job:
            row.apply(event, 0.0)
    assert row.status is Status.CANCELLED
    assert row.status_text(0) == (
        f"Cancelled. Its partial upload on {world.api_url} could not be removed now; "
        "the app tries again each time it connects there."
    )
    assert list(open_uploads(world, sample.path.name)) == [upload_id], "kept for its own server to abort"
