"""Checksums signed into part URLs: storage refuses damaged bytes, at a fraction of MD5's CPU.

Against the sandbox's real SeaweedFS: it verifies ``x-amz-checksum-crc32c`` and ``-crc32`` as S3 does,
so a part whose bytes were damaged on the way is refused with BadDigest instead of being stored. As S3
requires, the upload is started with the algorithm and completed with every part's checksum.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
import requests

from desktop_uploader.engine import checksums
from desktop_uploader.engine.events import Progress, Retrying, Status
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.planner import PartPlan
from desktop_uploader.engine.settings import Settings
from tests.support.api import Api
from tests.support.api_servers import api_server
from tests.support.logfail import RETRIED
from tests.support.proxy import Proxy, RequestInfo, Respond
from tests.support.storage import object_sha256, open_multipart_uploads

REFERENCE = {
    "crc32": lambda data: base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(),
    "crc32c": lambda data: base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode(),
}
FIELD = {"crc32": "checksumCrc32", "crc32c": "checksumCrc32c"}


def test_capabilities_offer_crc32c_then_crc32_with_sign(api: Api) -> None:
    assert api.ok(api.capabilities())["checksums"] == ["crc32c", "crc32"]


def test_the_fast_crc32c_is_chosen_when_offered() -> None:
    assert checksums.choose(["crc32c", "crc32"]) == "crc32c"
    assert checksums.choose(["crc32"]) == "crc32"
    assert checksums.choose([]) is None


@pytest.mark.parametrize("algorithm", ["crc32c", "crc32"])
def test_a_checksum_signed_url_rejects_wrong_bytes(api: Api, algorithm: str) -> None:
    body = b"the right bytes" * 1000
    crc = REFERENCE[algorithm](body)
    started = api.ok(
        api.presigned(
            {
                "action": "start",
                "fileName": "a.onnx",
                "totalParts": 1,
                "fileSize": len(body),
                "checksumAlgorithm": algorithm,
            }
        )
    )
    assert started["checksumAlgorithm"] == algorithm
    ids = {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}
    signed = api.ok(api.presigned({"action": "sign", **ids, "partNumbers": [1], FIELD[algorithm]: {"1": crc}}))
    url = signed["presignedUrls"]["1"]
    header = f"x-amz-checksum-{algorithm}"
    assert header in urllib.parse.unquote(url).lower()
    wrong = requests.put(url, data=b"X" + body[1:], headers={header: crc}, timeout=30)
    assert wrong.status_code == 400 and "BadDigest" in wrong.text
    without_header = requests.put(url, data=body, timeout=30)
    assert without_header.status_code == 403
    right = requests.put(url, data=body, headers={header: crc}, timeout=30)
    assert right.status_code == 200
    part = {"PartNumber": 1, "ETag": right.headers["ETag"], f"Checksum{algorithm.upper()}": crc}
    done = api.ok(api.presigned({"action": "complete", **ids, "parts": [part]}))
    assert done["size"] == len(body)


def test_starting_with_an_algorithm_tells_storage(api: Api) -> None:
    """Storage then checksums every part itself (S3 would refuse a part without the checksum)."""
    body = b"x" * 1000
    for algorithm, expected in (("crc32c", REFERENCE["crc32c"](body)), (None, None)):
        wish = {"checksumAlgorithm": algorithm} if algorithm else {}
        started = api.ok(api.presigned({"action": "start", "fileName": "a.onnx", "totalParts": 1, **wish}))
        assert started["checksumAlgorithm"] == algorithm
        stored = requests.put(started["presignedUrls"][0], data=body, timeout=30)
        assert stored.status_code == 200
        assert stored.headers.get("x-amz-checksum-crc32c") == expected
        api.ok(api.presigned({"action": "abort", "uploadId": started["uploadId"], "s3Key": started["s3Key"]}))


def test_bad_checksum_requests_are_refused(api: Api) -> None:
    bad_start = api.presigned({"action": "start", "fileName": "a.onnx", "totalParts": 2, "checksumAlgorithm": "md5"})
    assert bad_start.status_code == 400 and "error" in bad_start.json()
    started = api.ok(api.presigned({"action": "start", "fileName": "a.onnx", "totalParts": 2}))
    ids = {"uploadId": started["uploadId"], "s3Key": started["s3Key"]}
    base = {"action": "sign", **ids, "partNumbers": [1]}
    md5 = base64.b64encode(bytes(16)).decode()
    crc = REFERENCE["crc32"](b"x")
    for extra in (
        {"checksumCrc32": {"1": "nope"}},
        {"checksumCrc32c": {"1": base64.b64encode(b"12345").decode()}},
        {"checksumCrc32": {"2": crc}},  # a part not in partNumbers
        {"checksumCrc32c": {"2": crc}},
        {"checksumCrc32": {"1": crc}, "contentMd5": {"1": md5}},
        {"checksumCrc32": {"1": crc}, "checksumCrc32c": {"1": crc}},
    ):
        answer = api.presigned({**base, **extra})
        assert answer.status_code == 400, (extra, answer.text)
        assert "error" in answer.json()
    bad_part = {"PartNumber": 1, "ETag": "abc", "ChecksumCRC32C": "not base64!"}
    refused = api.presigned({"action": "complete", **ids, "parts": [bad_part]})
    assert refused.status_code == 400 and "error" in refused.json()
    api.ok(api.presigned({"action": "abort", **ids}))


@pytest.mark.parametrize("algorithm", ["crc32c", "crc32"])
def test_checksum_of_span_matches_the_reference(tmp_path: Path, algorithm: str) -> None:
    data = bytes(range(256)) * 5000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert checksums.checksum_of_span(algorithm, path, 1000, 700_000) == REFERENCE[algorithm](data[1000:701_000])


def _completes(requests_seen: list[RequestInfo]) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in requests_seen if r.method == "POST" and r.body]
    return [b for b in bodies if b.get("action") == "complete"]


def _expected_checksums(path: Path, part_size: int, algorithm: str) -> dict[int, str]:
    data = path.read_bytes()
    plan = PartPlan(len(data), part_size, -(-len(data) // part_size))
    return {
        n: REFERENCE[algorithm](data[plan.span(n).offset : plan.span(n).offset + plan.span(n).size])
        for n in range(1, plan.part_count + 1)
    }


@pytest.mark.allow_log(*RETRIED)
def test_the_engine_signs_crc32c_resends_a_damaged_part_and_completes_with_every_checksum(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    sample = make_file(12 * MiB)
    seen: list[dict[str, str]] = []
    api_requests: list[RequestInfo] = []

    def damaged_once(request: RequestInfo) -> Any:
        if request.method == "PUT":
            seen.append(dict(request.headers))
            if len(seen) == 1:
                body = b"<Error><Code>BadDigest</Code><Message>The CRC32C you specified did not match</Message></Error>"
                return Respond(400, body, {"Content-Type": "application/xml"})
        return None

    with Proxy.start(sandbox.s3_endpoint) as proxy:
        proxy.set_fault_plan(damaged_once)
        with (
            api_server(sandbox, tmp_path / "api", s3_public_endpoint=proxy.url) as url,
            Proxy.start(url, peek_bytes=1 << 20) as api_proxy,
        ):
            api_proxy.set_fault_plan(api_requests.append)
            engine = make_engine(
                Settings(method="presigned", chunk_size=5 * MiB, backoff_base=0.05), api_url=api_proxy.url
            )
            job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    assert seen and all("x-amz-checksum-crc32c" in headers and "content-md5" not in headers for headers in seen)
    retries = engine.of(job.id, Retrying)
    assert len(retries) == 1 and "damaged" in retries[0].reason
    [complete] = _completes(api_requests)
    expected = _expected_checksums(sample.path, 5 * MiB, "crc32c")
    assert {p["PartNumber"]: p.get("ChecksumCRC32C") for p in complete["parts"]} == expected
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_a_resumed_upload_completes_with_the_checksums_of_parts_sent_before(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path
) -> None:
    """The checksums of parts stored in an earlier session come from the resume store."""
    sample = make_file(20 * MiB)
    api_requests: list[RequestInfo] = []
    with Proxy.start(sandbox.api_url, peek_bytes=1 << 20) as api_proxy:
        api_proxy.set_fault_plan(api_requests.append)
        first = make_engine(
            Settings(method="presigned", chunk_size=5 * MiB, concurrency=1, bandwidth_limit=8 * 1000 * 1000),
            api_url=api_proxy.url,
        )

        # Paused from the engine's own progress event once two parts are confirmed: a pause from the test's
        # thread could come after the last part on a busy machine, leaving nothing to resume.
        def pause_after_two_parts(event: Any) -> None:
            if isinstance(event, Progress) and event.confirmed >= 10 * MiB:
                first.manager.pause(event.job_id)

        first.manager.subscribe(pause_after_two_parts)
        job = first.manager.add(sample.path)
        assert first.manager.wait([job], 60)
        assert first.manager.job(job).status == Status.PAUSED
        record = first.state.get(job)
        assert record is not None and record.checksum == "crc32c"
        assert all(p.checksum for p in first.state.parts(job).values())
        first.manager.close()
        second = make_engine(Settings(), api_url=api_proxy.url)
        [restored] = second.manager.restore_interrupted()
        second.manager.resume(restored)
        assert second.manager.wait([restored], 60)
        done = second.manager.job(restored)
    assert done.status == Status.COMPLETED, done.message
    [complete] = _completes(api_requests)
    expected = _expected_checksums(sample.path, 5 * MiB, "crc32c")
    assert {p["PartNumber"]: p.get("ChecksumCRC32C") for p in complete["parts"]} == expected
    assert done.result is not None and object_sha256(s3, sandbox.bucket, done.result.s3_key) == sample.sha256
    assert not open_multipart_uploads(s3, sandbox.bucket, record.s3_key)


@pytest.mark.parametrize(
    ("offered", "header"),
    [((), "content-md5"), (("crc32",), "x-amz-checksum-crc32")],
    ids=["no-checksums-content-md5", "crc32-only"],
)
def test_servers_offering_fewer_checksums_get_what_they_can_check(
    make_engine: Any, make_file: Any, sandbox: Any, s3: Any, tmp_path: Path, offered: tuple[str, ...], header: str
) -> None:
    """A server of an earlier version (no ``checksums``) gets Content-MD5; one with only CRC32 gets CRC32."""
    sample = make_file(7 * MiB)
    seen: list[dict[str, str]] = []

    def record(request: RequestInfo) -> Any:
        if request.method == "PUT":
            seen.append(dict(request.headers))
        return None

    with Proxy.start(sandbox.s3_endpoint) as proxy:
        proxy.set_fault_plan(record)
        with api_server(sandbox, tmp_path / "api", s3_public_endpoint=proxy.url) as url:
            engine = make_engine(Settings(method="presigned", chunk_size=5 * MiB), api_url=url)
            assert engine.manager.api is not None
            caps = engine.manager.api.capabilities()
            object.__setattr__(caps, "checksums", offered)  # what such a server's document parses to
            job = engine.upload(sample.path)
    assert job.status == Status.COMPLETED, job.message
    others = {"content-md5", "x-amz-checksum-crc32", "x-amz-checksum-crc32c"} - {header}
    assert seen and all(header in headers and not others & set(headers) for headers in seen)
    assert job.result is not None and object_sha256(s3, sandbox.bucket, job.result.s3_key) == sample.sha256


def test_a_part_body_reads_whole_blocks_within_its_budget(tmp_path: Path) -> None:
    """Many parts in flight get smaller blocks, each read into the part's one buffer, and every byte arrives."""
    from desktop_uploader.engine.control import Control
    from desktop_uploader.engine.partbody import BLOCK_BUDGET, PartBody, block_for

    data = bytes(range(256)) * 40_000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    for parts in (1, 6, 24, 64):
        limit = block_for(parts)
        assert limit * parts <= max(BLOCK_BUDGET, parts * 64 * 1024)
        body = PartBody(path, 1000, 9_000_000, control=Control(), on_sent=lambda _: None, max_block=limit)
        received = bytearray()
        while block := body.read(1 << 20):
            assert len(block) <= limit
            received += block
        body.close()
        assert bytes(received) == data[1000:9_001_000]
