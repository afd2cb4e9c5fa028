"""Storage that has no room left: said in words, not retried, and nothing stored is lost.

MinIO answers ``507 XMinioStorageFull`` when its disks are full; a RunPod volume or a quota fills the
same way. SeaweedFS can't be told to say so (full, it answers ``500 InternalError``), so a proxy in
front of its S3 port answers every part past the second as MinIO does; the engine, the API and the
store are real. Before, the app read the answer as a busy store: every part was sent five times over,
the chunked method through the API was tried next, and the row said "busy or unavailable".
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_uploader.engine.events import Failed, FallingBack, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.methods.direct_s3 import DirectTarget
from desktop_uploader.engine.settings import Settings
from tests.support.api_servers import api_server
from tests.support.logfail import STORAGE_REFUSED, UPLOAD_FAILED
from tests.support.nextjs_route import nextjs_route
from tests.support.proxy import Proxy, RequestInfo, Respond
from tests.support.storage import object_sha256, open_multipart_uploads
from tests.support.waiting import wait_until

FULL = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>XMinioStorageFull</Code><Message>Storage backend has '
    b"reached its minimum free disk threshold. Please delete a few objects to proceed.</Message></Error>"
)
PARTS = Settings(chunk_size=5 * MiB, auto_part_size=False, concurrency=2, retries=3, backoff_base=0.05, backoff_cap=0.1)


class FullAfterTwoParts:
    """A fault plan: parts 1 and 2 are stored, every later part is refused as MinIO refuses on a full disk."""

    def __init__(self) -> None:
        self.refused: Counter[int] = Counter()

    def __call__(self, request: RequestInfo) -> Respond | None:
        part = int(request.query.get("partNumber", "0"))
        if request.method == "PUT" and part > 2:
            self.refused[part] += 1
            return Respond(507, FULL, {"Content-Type": "application/xml"})
        return None


@pytest.fixture
def storage(sandbox: Any) -> Iterator[Proxy]:
    with Proxy.start(sandbox.s3_endpoint) as started:
        yield started


def stored_bytes(s3: Any, bucket: str, key: str) -> int:
    [upload] = open_multipart_uploads(s3, bucket, key)
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"]).get("Parts", [])
    return sum(int(part["Size"]) for part in parts)


def assert_full_and_kept(engine: Any, job_id: str, plan: FullAfterTwoParts) -> Failed:
    """What the person reads and is offered, and that no part was sent again to be refused again."""
    view = engine.manager.job(job_id)
    assert view.status == Status.FAILED, view.message
    [failed] = engine.of(job_id, Failed)
    assert "is full (XMinioStorageFull)" in failed.message, failed.message
    assert failed.message.endswith("What is already stored is kept: free some space there, then retry.")
    assert (failed.resumable, failed.retry_helps) == (True, True)
    assert plan.refused and max(plan.refused.values()) == 1, f"a refused part was sent again: {plan.refused}"
    assert not engine.of(job_id, FallingBack), "another method writes to the same full store"
    return failed


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_full_store_stops_the_upload_and_retry_after_space_is_freed_sends_only_the_rest(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage: Proxy, tmp_path: Path
) -> None:
    sample = make_file(20 * MiB, name=f"full-{uuid.uuid4().hex[:8]}.safetensors")
    plan = FullAfterTwoParts()
    storage.set_fault_plan(plan)
    with api_server(sandbox, tmp_path / "api", s3_public_endpoint=storage.url) as url:
        engine = make_engine(PARTS, api_url=url, token=sandbox.token)
        view = engine.upload(sample.path)
        assert_full_and_kept(engine, view.id, plan)
        record = engine.state.get(view.id)
        assert record is not None and record.s3_key
        kept = stored_bytes(s3, sandbox.bucket, record.s3_key)
        assert kept >= 5 * MiB, "the parts stored before the store filled are still there"

        storage.set_fault_plan(None)  # space was freed
        storage.stats.reset()
        engine.manager.retry(view.id)
        assert engine.manager.wait([view.id], 60)
    done = engine.manager.job(view.id)
    assert done.status == Status.COMPLETED and done.result is not None, done.message
    assert storage.stats.body_bytes("PUT") == sample.size - kept, "what was stored was not sent again"
    assert object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    listed = s3.list_objects_v2(Bucket=sandbox.bucket, Prefix=done.result.s3_key).get("Contents", [])
    assert [o["Key"] for o in listed] == [done.result.s3_key], "exactly one object"
    assert open_multipart_uploads(s3, sandbox.bucket, done.result.s3_key) == []


@pytest.mark.allow_log(*UPLOAD_FAILED)
def test_a_full_store_is_said_the_same_way_on_direct_s3(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage: Proxy, direct_target: DirectTarget
) -> None:
    target = dataclasses.replace(direct_target, endpoint=storage.url, prefix=f"full-{uuid.uuid4().hex[:12]}")
    plan = FullAfterTwoParts()
    storage.set_fault_plan(plan)
    engine = make_engine(PARTS.replace(method="direct-s3"), direct=target)
    view = engine.upload(make_file(20 * MiB, name="full-direct.safetensors").path)
    assert_full_and_kept(engine, view.id, plan)
    assert len(open_multipart_uploads(s3, sandbox.bucket, f"{target.prefix}/")) == 1, "kept for Retry"
    discard(engine, view.id, storage, s3, sandbox.bucket, f"{target.prefix}/")


def discard(engine: Any, job_id: str, storage: Proxy, s3: Any, bucket: str, prefix: str) -> None:
    """What a person does with an upload they won't finish: its parts leave the shared sandbox with it (the
    abort runs in the background, so it is waited for)."""
    storage.set_fault_plan(None)
    engine.manager.cancel(job_id)
    assert engine.manager.job(job_id).status == Status.CANCELLED
    wait_until(lambda: not open_multipart_uploads(s3, bucket, prefix), 60, "the discarded upload's abort")
    # And until the engine has heard its answer: storage aborts before the reply is relayed, and a busy proof
    # run stopped the proxy in between, so the client retried into a closed port and logged it.
    wait_until(lambda: engine.manager.state.get(job_id) is None, 60, "the abort's answer to reach the engine")


class FullAfterTwoPuts:
    """A fault plan for the API's own storage calls: two writes are stored, then every write is refused."""

    def __init__(self) -> None:
        self.puts = 0
        self.refused = 0

    def __call__(self, request: RequestInfo) -> Respond | None:
        if request.method != "PUT":
            return None
        self.puts += 1
        if self.puts <= 2:
            return None
        self.refused += 1
        return Respond(507, FULL, {"Content-Type": "application/xml"})


@pytest.mark.allow_log(*UPLOAD_FAILED, *STORAGE_REFUSED)
@pytest.mark.parametrize("server", ["fastapi", "nextjs"])
def test_a_full_store_behind_the_api_is_said_as_full_through_the_chunked_upload(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, storage: Proxy, tmp_path: Path, server: str
) -> None:
    """The chunked method sends the bytes through the API, which writes them to storage itself: the API says
    507 with a sentence (docs/api.md), where it said 502 "Storage answered with an error", which the app
    retried as a busy server five times over and then called "busy or having trouble"."""
    plan = FullAfterTwoPuts()
    storage.set_fault_plan(plan)
    settings = PARTS.replace(method="chunked")
    with contextlib.ExitStack() as stack:
        if server == "fastapi":
            url, token = stack.enter_context(api_server(sandbox, tmp_path / "api", s3_endpoint=storage.url)), None
        else:
            route = stack.enter_context(
                nextjs_route(
                    sandbox, tmp_path / "route", UPLOAD_API_S3_ENDPOINT=storage.url, UPLOAD_API_CHUNKED_ENABLED="1"
                )
            )
            url, token = route.url, route.alice.token
        engine = make_engine(settings, api_url=url, token=token or sandbox.token)
        view = engine.upload(make_file(20 * MiB, name=f"full-chunked-{server}.safetensors").path)
        record = engine.state.get(view.id)
        assert record is not None and record.s3_key
        assert len(open_multipart_uploads(s3, sandbox.bucket, record.s3_key)) == 1, "kept for Retry"
        discard(engine, view.id, storage, s3, sandbox.bucket, record.s3_key)
    assert view.status == Status.FAILED, view.message
    [failed] = engine.of(view.id, Failed)
    assert failed.message == (
        "Storage is full: it has no room for more data. Free some space there, then retry. "
        "What is already stored is kept."
    )
    assert (failed.resumable, failed.retry_helps) == (True, True)
    assert plan.refused == 1, "the refused write was not tried again"
