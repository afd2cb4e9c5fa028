"""The client against our users' backend's ways: a server that knows only start, complete, abort.

Its links expire (after an hour) and it has no ``sign`` to renew them, nor does it answer an ``expiresAt``.
The client reads each link's deadline from the link, and starts over once, aborting the old upload.

The server here is our reference server reduced to the seed's three actions, with a proxy in front of
storage that counts the parts and, where asked, moves a fake clock. The pinned checksum of AWS SDK v3's
defaults is tested against the real Next.js route instead (tests/nextjs/test_client_three_actions.py),
as are these links expiring for real under a short ``UPLOAD_API_URL_EXPIRY_SECONDS``.

Nothing here waits on the wall clock: the links' expiry comes from a fake clock the API client and the URL
book share, moved forward by the storage proxy while a chosen part is on its way.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Notice, Retrying, Started, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import Settings
from tests.support.api_servers import OwnUser, own_user_server
from tests.support.logfail import STARTED_OVER, UPLOAD_FAILED
from tests.support.proxy import Action, Proxy, RequestInfo, Respond
from tests.support.storage import object_sha256, open_multipart_uploads

SEED = {"actions": ("start", "complete", "abort"), "capabilities_enabled": False}
SEQUENTIAL = Settings(method="presigned", chunk_size=5 * MiB, concurrency=1, retries=2, backoff_base=0.05)
RESTARTED = "The server's upload links expired after 1 h and it can't renew them: started again."


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self._now = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass
class Backend:
    own: OwnUser
    storage: Proxy
    part_puts: list[RequestInfo] = field(default_factory=list)  # every part that reached storage's door


@pytest.fixture
def backend(sandbox: Any, tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    with contextlib.ExitStack() as stack:

        def make(on_part: Callable[[RequestInfo], None] = lambda _: None) -> Backend:
            storage = stack.enter_context(Proxy.start(sandbox.s3_endpoint))
            own = stack.enter_context(
                own_user_server(sandbox, tmp_path / "seed", s3_public_endpoint=storage.url, **SEED)
            )
            made = Backend(own, storage)

            def parts(request: RequestInfo) -> None:
                if request.method == "PUT" and "partNumber" in request.query:
                    made.part_puts.append(request)
                    on_part(request)

            storage.set_fault_plan(parts)
            return made

        yield make


def stored_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


@pytest.mark.allow_log(*STARTED_OVER)
def test_links_that_expire_on_a_server_without_sign_start_the_upload_over_once(
    backend: Callable[..., Backend], make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    clock = FakeClock()
    moved: list[str] = []

    def an_hour_passes_during_the_first_part_2(request: RequestInfo) -> None:
        if request.query["partNumber"] == "2" and not moved:
            moved.append(request.query["uploadId"])
            clock.advance(2 * 3600)

    world = backend(an_hour_passes_during_the_first_part_2)
    sample = make_file(18 * MiB, name="expiring.safetensors")  # 4 parts: 3 of 5 MiB and 3 MiB
    engine = make_engine(SEQUENTIAL, api_url=world.own.url, token=world.own.token)
    assert engine.manager.api is not None
    engine.manager.api.clock = clock

    job = engine.upload(sample.path)

    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
    assert stored_keys(s3, sandbox.bucket, world.own.prefix) == [job.result.s3_key], "exactly one object"
    assert not open_multipart_uploads(s3, sandbox.bucket, world.own.prefix), "the first upload was aborted"
    assert [n.message for n in engine.of(job.id, Notice)] == [RESTARTED]
    assert len(engine.of(job.id, Started)) == 2
    first, second = (
        {r.query["uploadId"] for r in world.part_puts[:2]},
        {r.query["uploadId"] for r in world.part_puts[2:]},
    )
    assert first == set(moved) and len(second) == 1 and first != second
    assert [r.query["partNumber"] for r in world.part_puts] == ["1", "2", "1", "2", "3", "4"], "part 3 never went"
    assert engine.state.get(job.id) is None


@pytest.mark.allow_log(*STARTED_OVER, *UPLOAD_FAILED)
def test_links_that_expire_again_after_starting_over_end_the_upload_and_say_why(
    backend: Callable[..., Backend], make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    clock = FakeClock()

    def an_hour_passes_during_every_part_2(request: RequestInfo) -> None:
        if request.query["partNumber"] == "2":
            clock.advance(2 * 3600)

    world = backend(an_hour_passes_during_every_part_2)
    sample = make_file(18 * MiB, name="too-slow.safetensors")
    engine = make_engine(SEQUENTIAL, api_url=world.own.url, token=world.own.token)
    assert engine.manager.api is not None
    engine.manager.api.clock = clock

    job = engine.upload(sample.path)

    assert job.status == Status.FAILED
    assert job.message.startswith("The server's upload links expire after 1 h and it can't renew them"), job.message
    assert "'sign' action" in job.message
    assert [n.message for n in engine.of(job.id, Notice)] == [RESTARTED], "started over once, not again"
    assert len({r.query["uploadId"] for r in world.part_puts}) == 2
    assert not open_multipart_uploads(s3, sandbox.bucket, world.own.prefix), "both uploads were aborted"
    assert stored_keys(s3, sandbox.bucket, world.own.prefix) == []
    assert job.resumable is False and engine.state.get(job.id) is None


EXPIRED = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"


@pytest.mark.allow_log(*STARTED_OVER)
def test_storage_saying_a_link_expired_starts_over_at_once_instead_of_resending_to_it(
    backend: Callable[..., Backend], make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    refused: list[str] = []

    def storage_says_part_2_expired(request: RequestInfo) -> Action | None:
        if request.method == "PUT" and request.query.get("partNumber") == "2" and not refused:
            refused.append(request.query["uploadId"])
            return Respond(403, EXPIRED, {"Content-Type": "application/xml"})
        return None

    world = backend()
    world.storage.set_fault_plan(storage_says_part_2_expired)
    sample = make_file(18 * MiB, name="storage-clock.safetensors")
    engine = make_engine(SEQUENTIAL, api_url=world.own.url, token=world.own.token)

    job = engine.upload(sample.path)

    assert job.status == Status.COMPLETED, job.message
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256
    assert stored_keys(s3, sandbox.bucket, world.own.prefix) == [job.result.s3_key], "exactly one object"
    assert not open_multipart_uploads(s3, sandbox.bucket, world.own.prefix), "the first upload was aborted"
    assert [n.message for n in engine.of(job.id, Notice)] == [RESTARTED]
    assert not engine.of(job.id, Retrying), "a link that can't be renewed is not sent to again"


@pytest.mark.allow_log(*STARTED_OVER)
def test_a_paused_upload_whose_links_expired_meanwhile_starts_over_and_says_so(
    backend: Callable[..., Backend], make_engine: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    world = backend()
    sample = make_file(40 * MiB, name="slept.safetensors")
    slow = SEQUENTIAL.replace(bandwidth_limit=10 * MiB)
    engine = make_engine(slow, api_url=world.own.url, token=world.own.token)
    job = engine.manager.add(sample.path)
    engine.wait_for(lambda: engine.manager.job(job).confirmed >= 10 * MiB)
    engine.manager.pause(job)
    assert engine.manager.wait([job], 10)
    assert engine.manager.job(job).status == Status.PAUSED
    first = engine.state.get(job)
    assert first is not None and engine.state.parts(job), "the record promises a resume with parts stored"
    # The computer slept past the links' hour: the deadlines kept with them are behind us now.
    kept = engine.state.urls(job)
    assert kept, "the seed's links are kept for a resume"
    engine.state.save_urls(job, {n: (link, time.time() - 1) for n, (link, _) in kept.items()})

    engine.manager.resume(job)
    assert engine.manager.wait([job], 120)

    done = engine.manager.job(job)
    assert done.status == Status.COMPLETED, done.message
    assert done.result is not None and object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    assert done.result.s3_key != first.s3_key, "a new upload, not the one whose links were gone"
    assert stored_keys(s3, sandbox.bucket, world.own.prefix) == [done.result.s3_key], "exactly one object"
    assert not open_multipart_uploads(s3, sandbox.bucket, world.own.prefix), "the paused upload was aborted"
    assert [n.message for n in engine.of(job, Notice)] == [
        "The server's upload links expired and it can't renew them: started again."
    ]
