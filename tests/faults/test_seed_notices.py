"""What the app tells a person about the seed's server, which can't list uploads, when a start's answer is lost.

The seed's backend has no ``list``: an upload a lost start created can't be found again, so it stays
until someone (a bucket lifecycle rule) removes it. The person is told once per server and session,
with what the server needs, however many files meet it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Event, Notice, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.manager import ServerConnection, UploadManager
from desktop_uploader.engine.settings import Settings
from desktop_uploader.engine.state import StateStore
from tests.faults.harness import World, open_uploads, stored_objects
from tests.faults.scenario import api_action
from tests.support.logfail import FAULTS, UNLISTABLE
from tests.support.proxy import Action, RequestInfo, ResetResponse
from tests.support.storage import object_sha256

pytestmark = pytest.mark.allow_log(*FAULTS, *UNLISTABLE)

FAST = Settings(
    method="presigned",
    chunk_size=5 * MiB,
    concurrency=2,
    retries=2,
    backoff_base=0.05,
    backoff_cap=0.1,
    connect_timeout=1.0,
    read_timeout=1.0,
)


@pytest.fixture
def seed_manager(world: World, tmp_path: Path) -> Iterator[UploadManager]:
    world.install(None)
    state = StateStore.open(tmp_path / "state.sqlite3")
    connection = ServerConnection(world.seed_api_proxy.url, world.sandbox.token, "seed-api", "seed")
    manager = UploadManager(FAST, state, connection)
    try:
        yield manager
    finally:
        manager.close(timeout=10)
        state.close()
        world.install(None)


def lose_each_files_first_start(request: RequestInfo, lost: set[str]) -> Action | None:
    """The server creates the upload, and its answer to the first start of each file is cut."""
    if api_action(request) != "presigned:start":
        return None
    name = json.loads(request.body)["fileName"]
    if name in lost:
        return None
    lost.add(name)
    return ResetResponse(0)


def test_a_seed_server_without_list_is_explained_once_for_two_lost_starts(
    world: World, seed_manager: UploadManager, make_file: Any
) -> None:
    samples = [make_file(6 * MiB, name=f"seed-notice-{n}.safetensors") for n in (1, 2)]
    lost: set[str] = set()
    world.seed_api_proxy.set_fault_plan(lambda request: lose_each_files_first_start(request, lost))
    notices: list[Notice] = []

    def listen(event: Event) -> None:
        if isinstance(event, Notice):
            notices.append(event)

    seed_manager.subscribe(listen)
    jobs = [seed_manager.add(sample.path) for sample in samples]
    finished = seed_manager.wait(jobs, 120)
    leftovers = {u: k for sample in samples for u, k in open_uploads(world, sample.path.name).items()}
    try:
        assert finished
        for job, sample in zip(jobs, samples, strict=True):
            view = seed_manager.job(job)
            assert view.status == Status.COMPLETED, view.message
            [key] = stored_objects(world, sample.path.name)
            assert object_sha256(world.s3, world.sandbox.bucket, key) == sample.sha256
        assert lost == {sample.path.name for sample in samples}, "each file's first start answer was lost"
        told = [n for n in notices if "can't list uploads" in n.message]
        assert len(told) == 1, [n.message for n in notices]
        assert told[0].level == "warning"
        assert "'list' action" in told[0].message and "AbortIncompleteMultipartUpload" in told[0].message
        assert len(leftovers) == 2, "what the notice warns about: each lost start left an upload nobody can find"
    finally:
        for upload_id, key in leftovers.items():  # as the lifecycle rule the notice names would
            with contextlib.suppress(Exception):
                world.s3.abort_multipart_upload(Bucket=world.sandbox.bucket, Key=key, UploadId=upload_id)
