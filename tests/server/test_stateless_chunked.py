"""Chunked uploads keep their state in object storage: any instance takes any chunk, and none is missed.

Two API instances over the same SeaweedFS, each with its own (empty) local spool dir, as two
containers behind a load balancer would be: the test itself spreads the requests between them.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from desktop_uploader.engine.limits import MiB
from desktop_uploader.server.chunked import ChunkedService
from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.presigned import PresignedService
from desktop_uploader.server.storage import Storage
from tests.support.api import Api
from tests.support.api_servers import api_server
from tests.support.haproxy import BINARY as HAPROXY
from tests.support.haproxy import CHECK_CUT_AT_STOP, haproxy
from tests.support.proxy import Forward, Proxy, RequestInfo
from tests.support.storage import object_sha256, open_multipart_uploads


@pytest.fixture
def two_instances(sandbox: Any, tmp_path: Path) -> Iterator[tuple[Api, Api]]:
    with api_server(sandbox, tmp_path / "a") as first, api_server(sandbox, tmp_path / "b") as second:
        yield Api(first, sandbox.token), Api(second, sandbox.token)


def staged_objects(s3: Any, bucket: str, upload_id: str) -> list[str]:
    stage = f"loras/.chunked/{hashlib.sha256(upload_id.encode()).hexdigest()[:40]}/"
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=stage).get("Contents", [])]


def test_any_instance_takes_any_chunk(two_instances: tuple[Api, Api], s3: Any, sandbox: Any, make_file: Any) -> None:
    a, b = two_instances
    sample = make_file(21 * MiB + 5)  # parts of 8 MiB from chunks of 3 MiB: chunks straddle part boundaries
    data = sample.read()
    started = a.ok(a.chunked({"action": "start", "fileName": "spread.safetensors", "fileSize": sample.size}))
    upload_id, key = started["uploadId"], started["s3Key"]
    offset, turn = 0, 0
    while offset < sample.size:
        instance = (a, b)[turn % 2]
        offset = instance.ok(instance.chunk(upload_id, key, offset, data[offset : offset + 3 * MiB]))["received"]
        if offset == 9 * MiB:  # part 1 is stored, and the tail of the chunk that straddled it is staged
            assert len(staged_objects(s3, sandbox.bucket, upload_id)) == 2  # the layout marker and that tail
        other = (a, b)[(turn + 1) % 2]
        assert other.ok(other.chunked({"action": "status", "uploadId": upload_id, "s3Key": key}))["received"] == offset
        turn += 1
    # A retried chunk reaching the other instance is told where to go on, like on one instance.
    assert b.chunk(upload_id, key, 0, data[: 3 * MiB]).json()["expectedOffset"] == sample.size
    done = b.ok(b.chunked({"action": "complete", "uploadId": upload_id, "s3Key": key}))
    assert done["size"] == sample.size
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    etag = s3.head_object(Bucket=sandbox.bucket, Key=key)["ETag"].strip('"')
    assert etag.endswith("-3"), "8 MiB parts: 8 + 8 + 5 MiB"
    # The complete's answer was lost: asked again on the other instance, it answers the same.
    assert a.ok(a.chunked({"action": "complete", "uploadId": upload_id, "s3Key": key}))["size"] == sample.size
    assert not open_multipart_uploads(s3, sandbox.bucket, key)
    assert not staged_objects(s3, sandbox.bucket, upload_id)


def test_an_instance_going_away_between_chunks_loses_nothing(
    sandbox: Any, s3: Any, tmp_path: Path, make_file: Any
) -> None:
    sample = make_file(10 * MiB + 1)
    data = sample.read()
    with api_server(sandbox, tmp_path / "gone") as url:
        first = Api(url, sandbox.token)
        started = first.ok(first.chunked({"action": "start", "fileName": "m.gguf", "fileSize": sample.size}))
        upload_id, key = started["uploadId"], started["s3Key"]
        first.ok(first.chunk(upload_id, key, 0, data[: 2 * MiB]))
    # That instance is gone (and its disk with it): another one carries on from what storage says.
    with api_server(sandbox, tmp_path / "other") as url:
        second = Api(url, sandbox.token)
        offset = second.ok(second.chunked({"action": "status", "uploadId": upload_id, "s3Key": key}))["received"]
        assert offset == 2 * MiB
        while offset < sample.size:
            offset = second.ok(second.chunk(upload_id, key, offset, data[offset : offset + 4 * MiB]))["received"]
        second.ok(second.chunked({"action": "complete", "uploadId": upload_id, "s3Key": key}))
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256


def test_leftovers_of_a_flush_cut_short_are_ignored_and_cleared(
    api: Api, sandbox: Any, s3: Any, tmp_path: Path, make_file: Any
) -> None:
    """A flush stores the part, then deletes the chunks it used: if the instance dies between the two,
    the stale chunks must neither count as received nor end up in the file."""
    sample = make_file(12 * MiB)
    data = sample.read()
    started = api.ok(api.chunked({"action": "start", "fileName": "cut.safetensors", "fileSize": sample.size}))
    upload_id, key = started["uploadId"], started["s3Key"]
    for offset in (0, 4 * MiB):
        api.ok(api.chunk(upload_id, key, offset, data[offset : offset + 4 * MiB]))  # the second flushes part 1
    config = ServerConfig(
        bucket=sandbox.bucket,
        s3_endpoint=sandbox.s3_endpoint,
        s3_access_key=sandbox.access_key,
        s3_secret_key=sandbox.secret_key,
        tokens_file=tmp_path / "unused.json",
        spool_dir=tmp_path / "spool",
    )
    storage = Storage(config)
    stage = ChunkedService(config, storage, PresignedService(config, storage)).stage_of(upload_id)
    stale = f"{stage}chunk-{0:020d}"
    storage.put_object(stale, io.BytesIO(b"X" * 4 * MiB), 4 * MiB, "application/octet-stream", {})

    assert api.ok(api.chunked({"action": "status", "uploadId": upload_id, "s3Key": key}))["received"] == 8 * MiB
    api.ok(api.chunk(upload_id, key, 8 * MiB, data[8 * MiB :]))
    api.ok(api.chunked({"action": "complete", "uploadId": upload_id, "s3Key": key}))
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert storage.existing(stale) is None


def chunked_200s(url: str) -> float:
    text = requests.get(url + "/metrics", timeout=30).text
    line = 'upload_api_requests_total{action="chunked-chunk",status="200"} '
    return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


@pytest.mark.skipif(not HAPROXY, reason="haproxy is not installed (.ci/run installs it)")
@pytest.mark.allow_log(CHECK_CUT_AT_STOP)
def test_behind_haproxy_round_robin_an_upload_survives_losing_an_instance(
    sandbox: Any, s3: Any, tmp_path: Path, make_file: Any
) -> None:
    """Three instances behind a real HAProxy, no sticky sessions; one is stopped mid-upload."""
    sample = make_file(26 * MiB + 9)
    data = sample.read()
    with ExitStack() as instances:
        urls = [instances.enter_context(api_server(sandbox, tmp_path / f"i{n}")) for n in range(2)]
        doomed = ExitStack()
        urls.append(doomed.enter_context(api_server(sandbox, tmp_path / "doomed")))
        with doomed, haproxy(tmp_path / "haproxy", urls) as balanced:
            api = Api(balanced, sandbox.token)
            api.session.headers["Connection"] = "close"  # a new connection, so a new pick, every request
            started = api.ok(api.chunked({"action": "start", "fileName": "lb.safetensors", "fileSize": sample.size}))
            upload_id, key = started["uploadId"], started["s3Key"]
            offset = 0
            while offset < 12 * MiB:
                offset = api.ok(api.chunk(upload_id, key, offset, data[offset : offset + 3 * MiB]))["received"]
            assert all(chunked_200s(url) >= 1 for url in urls), "round robin reached every instance"
            doomed.close()  # one instance goes away mid-upload; HAProxy re-dispatches to the others
            while offset < sample.size:
                offset = api.ok(api.chunk(upload_id, key, offset, data[offset : offset + 3 * MiB]))["received"]
            done = api.ok(api.chunked({"action": "complete", "uploadId": upload_id, "s3Key": key}))
            assert done["size"] == sample.size
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert not staged_objects(s3, sandbox.bucket, upload_id)


@pytest.mark.allow_log(r"desktop_uploader\.server\.storage: S3 GetObject failed: NoSuchKey")
def test_a_retry_racing_its_original_on_another_instance_is_answered_from_storage(
    sandbox: Any, s3: Any, tmp_path: Path, make_file: Any
) -> None:
    """Instance B reaches storage through the fault proxy, which holds B's staging of a chunk until
    instance A has taken the same chunk (a client's retry) and flushed the part it completes. B then
    finds the chunks it meant to flush gone, and must answer from storage, not with a 404."""
    sample = make_file(12 * MiB)
    data = sample.read()
    chunk_name = f"chunk-{4 * MiB:020d}"
    b_is_held, a_is_done = threading.Event(), threading.Event()
    held: list[str] = []

    def hold_bs_staging(request: RequestInfo) -> Forward | None:
        if request.method == "PUT" and request.path.endswith(chunk_name) and not held:
            held.append(request.path)
            b_is_held.set()
            a_is_done.wait(60)  # the test thread sets it: an event, not a timer
        return None

    with (
        Proxy.start(sandbox.s3_endpoint) as proxy,
        api_server(sandbox, tmp_path / "a") as url_a,
        api_server(sandbox, tmp_path / "b", s3_endpoint=proxy.url) as url_b,
    ):
        proxy.set_fault_plan(hold_bs_staging)
        a, b = Api(url_a, sandbox.token), Api(url_b, sandbox.token)
        started = a.ok(a.chunked({"action": "start", "fileName": "race.safetensors", "fileSize": sample.size}))
        upload_id, key = started["uploadId"], started["s3Key"]
        a.ok(a.chunk(upload_id, key, 0, data[: 4 * MiB]))
        answers: list[Any] = []
        original = threading.Thread(
            target=lambda: answers.append(b.chunk(upload_id, key, 4 * MiB, data[4 * MiB : 8 * MiB])), daemon=True
        )
        original.start()
        assert b_is_held.wait(60), "B never staged the chunk"
        assert a.ok(a.chunk(upload_id, key, 4 * MiB, data[4 * MiB : 8 * MiB]))["received"] == 8 * MiB  # the retry
        a_is_done.set()
        original.join(60)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert answers[0].json()["received"] == 8 * MiB
        assert not proxy.plan_errors
        b.ok(b.chunk(upload_id, key, 8 * MiB, data[8 * MiB :]))
        b.ok(b.chunked({"action": "complete", "uploadId": upload_id, "s3Key": key}))
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert not staged_objects(s3, sandbox.bucket, upload_id)


@pytest.mark.allow_log(r"desktop_uploader\.server\.storage: S3 GetObject failed: NoSuchKey")
def test_a_complete_racing_its_retry_on_another_instance_answers_with_the_completed_object(
    sandbox: Any, s3: Any, tmp_path: Path, make_file: Any
) -> None:
    """B's complete is held (in the fault proxy) while reading the last staged chunk; A completes the
    upload meanwhile. B must answer with the object, as a retried complete does, not a 404 or a 500."""
    sample = make_file(12 * MiB)
    data = sample.read()
    last_chunk = f"chunk-{8 * MiB:020d}"
    b_is_held, a_is_done = threading.Event(), threading.Event()
    held: list[str] = []

    def hold_bs_read(request: RequestInfo) -> Forward | None:
        if request.method == "GET" and request.path.endswith(last_chunk) and not held:
            held.append(request.path)
            b_is_held.set()
            a_is_done.wait(60)
        return None

    with (
        Proxy.start(sandbox.s3_endpoint) as proxy,
        api_server(sandbox, tmp_path / "a") as url_a,
        api_server(sandbox, tmp_path / "b", s3_endpoint=proxy.url) as url_b,
    ):
        proxy.set_fault_plan(hold_bs_read)
        a, b = Api(url_a, sandbox.token), Api(url_b, sandbox.token)
        started = a.ok(a.chunked({"action": "start", "fileName": "race.safetensors", "fileSize": sample.size}))
        upload_id, key = started["uploadId"], started["s3Key"]
        for offset in (0, 4 * MiB, 8 * MiB):
            a.ok(a.chunk(upload_id, key, offset, data[offset : offset + 4 * MiB]))
        ids = {"uploadId": upload_id, "s3Key": key}
        answers: list[Any] = []
        original = threading.Thread(
            target=lambda: answers.append(b.chunked({"action": "complete", **ids})), daemon=True
        )
        original.start()
        assert b_is_held.wait(60), "B never read the last chunk"
        assert a.ok(a.chunked({"action": "complete", **ids}))["size"] == sample.size  # the retry
        a_is_done.set()
        original.join(60)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert answers[0].json()["size"] == sample.size and answers[0].json()["success"] is True
        assert not proxy.plan_errors
    assert object_sha256(s3, sandbox.bucket, key) == sample.sha256
    assert not staged_objects(s3, sandbox.bucket, upload_id)


@pytest.mark.parametrize("path", ["chunked", "presigned"])
def test_an_abort_by_either_path_removes_the_upload_and_its_staged_chunks(
    api: Api, s3: Any, sandbox: Any, path: str
) -> None:
    started = api.ok(api.chunked({"action": "start", "fileName": "gone.safetensors", "fileSize": 3 * MiB}))
    upload_id, key = started["uploadId"], started["s3Key"]
    api.ok(api.chunk(upload_id, key, 0, bytes(MiB)))  # less than a part: it waits, staged in storage
    assert staged_objects(s3, sandbox.bucket, upload_id), "the chunk is staged"
    abort = {"action": "abort", "uploadId": upload_id, "s3Key": key}
    api.ok(api.chunked(abort) if path == "chunked" else api.presigned(abort))
    assert not open_multipart_uploads(s3, sandbox.bucket, key)
    assert not staged_objects(s3, sandbox.bucket, upload_id)
    assert api.chunk(upload_id, key, MiB, bytes(MiB)).status_code == 404  # nothing takes chunks any more
